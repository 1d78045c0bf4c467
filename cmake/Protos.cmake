# Compiles protos/*.proto and the well-known types they import with protoc-c at build time.
# The generated C lives only in the build tree.
find_program(PROTOC_C protoc-c REQUIRED)
find_path(WKT_INCLUDE google/protobuf/timestamp.proto PATHS /usr/include /usr/local/include REQUIRED)

set(TH_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${TH_GEN_DIR})

set(_th_protos
  ${CMAKE_SOURCE_DIR}/protos/orchestrator_service.proto
  ${CMAKE_SOURCE_DIR}/protos/health.proto
  ${CMAKE_SOURCE_DIR}/protos/taskhubd_store.proto
  ${CMAKE_SOURCE_DIR}/protos/taskhubd_admin.proto)
set(_th_wkt timestamp duration wrappers empty struct)

set(_th_sidecar_srcs)
foreach(p IN LISTS _th_protos)
  get_filename_component(n ${p} NAME_WE)
  if(NOT n STREQUAL "orchestrator_service")
    list(APPEND _th_sidecar_srcs ${TH_GEN_DIR}/${n}.pb-c.c)
  endif()
  add_custom_command(
    OUTPUT ${TH_GEN_DIR}/${n}.pb-c.c ${TH_GEN_DIR}/${n}.pb-c.h
    COMMAND ${PROTOC_C} --c_out=${TH_GEN_DIR} -I${CMAKE_SOURCE_DIR}/protos -I${WKT_INCLUDE} ${p}
    DEPENDS ${p} ${_th_protos}
    COMMENT "protoc-c ${n}.proto" VERBATIM)
endforeach()
set(_th_wire_srcs ${TH_GEN_DIR}/orchestrator_service.pb-c.c)
foreach(n IN LISTS _th_wkt)
  set(p ${WKT_INCLUDE}/google/protobuf/${n}.proto)
  list(APPEND _th_wire_srcs ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.c)
  add_custom_command(
    OUTPUT ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.c ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.h
    COMMAND ${PROTOC_C} --c_out=${TH_GEN_DIR} -I${WKT_INCLUDE} ${p}
    DEPENDS ${p}
    COMMENT "protoc-c google/protobuf/${n}.proto" VERBATIM)
endforeach()

# The wire contract the C SDK speaks (orchestrator_service and the well-known types it imports) is compiled once,
# as objects, because it goes into three libraries: th_protos here, and the installed libdurabletask (shared and
# static, sdk-c/CMakeLists.txt), which must carry it inside since the generated code is not installed.
add_library(th_wire_protos OBJECT ${_th_wire_srcs})
target_include_directories(th_wire_protos PUBLIC ${TH_GEN_DIR})
target_link_libraries(th_wire_protos PUBLIC PkgConfig::PROTOBUFC)
set_target_properties(th_wire_protos PROPERTIES POSITION_INDEPENDENT_CODE ON)

add_library(th_protos STATIC $<TARGET_OBJECTS:th_wire_protos> ${_th_sidecar_srcs})
target_include_directories(th_protos PUBLIC ${TH_GEN_DIR})
target_link_libraries(th_protos PUBLIC PkgConfig::PROTOBUFC)
set_target_properties(th_protos PROPERTIES POSITION_INDEPENDENT_CODE ON)
