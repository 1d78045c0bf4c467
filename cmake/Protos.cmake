# Compiles protos/*.proto and the well-known types they import with protoc-c at build time.
# The generated C lives only in the build tree.
find_program(PROTOC_C protoc-c REQUIRED)
find_path(WKT_INCLUDE google/protobuf/timestamp.proto PATHS /usr/include /usr/local/include REQUIRED)

set(TH_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${TH_GEN_DIR})

set(_th_protos
  ${CMAKE_SOURCE_DIR}/protos/orchestrator_service.proto
  ${CMAKE_SOURCE_DIR}/protos/health.proto
  ${CMAKE_SOURCE_DIR}/protos/taskhubd_store.proto)
set(_th_wkt timestamp duration wrappers empty struct)

set(_th_gen_srcs)
foreach(p IN LISTS _th_protos)
  get_filename_component(n ${p} NAME_WE)
  list(APPEND _th_gen_srcs ${TH_GEN_DIR}/${n}.pb-c.c)
  add_custom_command(
    OUTPUT ${TH_GEN_DIR}/${n}.pb-c.c ${TH_GEN_DIR}/${n}.pb-c.h
    COMMAND ${PROTOC_C} --c_out=${TH_GEN_DIR} -I${CMAKE_SOURCE_DIR}/protos -I${WKT_INCLUDE} ${p}
    DEPENDS ${p} ${_th_protos}
    COMMENT "protoc-c ${n}.proto" VERBATIM)
endforeach()
foreach(n IN LISTS _th_wkt)
  set(p ${WKT_INCLUDE}/google/protobuf/${n}.proto)
  list(APPEND _th_gen_srcs ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.c)
  add_custom_command(
    OUTPUT ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.c ${TH_GEN_DIR}/google/protobuf/${n}.pb-c.h
    COMMAND ${PROTOC_C} --c_out=${TH_GEN_DIR} -I${WKT_INCLUDE} ${p}
    DEPENDS ${p}
    COMMENT "protoc-c google/protobuf/${n}.proto" VERBATIM)
endforeach()

add_library(th_protos STATIC ${_th_gen_srcs})
target_include_directories(th_protos PUBLIC ${TH_GEN_DIR})
target_link_libraries(th_protos PUBLIC PkgConfig::PROTOBUFC)
set_target_properties(th_protos PROPERTIES POSITION_INDEPENDENT_CODE ON)
