# Included by the top-level CMakeLists.txt with -DTASKHUBD_FUZZ=ON, before any target: every C file (product code,
# the SDK, the generated protobuf-c code) gets libFuzzer's coverage instrumentation and ASan+UBSan, so the fuzz
# targets see and check the code they drive. Only the targets in fuzz/ link libFuzzer itself.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TASKHUBD_FUZZ needs clang (libFuzzer): configure with CC=clang")
endif()
if(TASKHUBD_SANITIZE)
  message(FATAL_ERROR "TASKHUBD_FUZZ brings its own sanitizers: leave TASKHUBD_SANITIZE off")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)
