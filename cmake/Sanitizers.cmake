# TH_SANITIZE_LINK_FLAGS is also what programs outside the build must link with to use this build's SDK
# (sdk-c/CMakeLists.txt puts it into the installed pkg-config file and CMake targets); empty without sanitizers.
set(TH_SANITIZE_LINK_FLAGS)
if(TASKHUBD_SANITIZE AND TASKHUBD_TSAN)
  message(FATAL_ERROR "TASKHUBD_SANITIZE (ASan+UBSan) and TASKHUBD_TSAN cannot be combined: use two build trees")
endif()
if(TASKHUBD_SANITIZE)
  set(TH_SANITIZE_LINK_FLAGS -fsanitize=address,undefined)
  # Applied globally so that generated code and every test binary are instrumented too.
  add_compile_options(${TH_SANITIZE_LINK_FLAGS} -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(${TH_SANITIZE_LINK_FLAGS})
endif()
if(TASKHUBD_TSAN)
  set(TH_SANITIZE_LINK_FLAGS -fsanitize=thread)
  # -O2 after the build type's flags: at -O0 TSan runs several times slower again, and the integration tests under
  # it must fit in the test command's time budget. Not -O1: gcc's -Wrestrict gives false positives there that
  # neither the -O0 nor the -O3 tree shows.
  add_compile_options(${TH_SANITIZE_LINK_FLAGS} -O2 -fno-omit-frame-pointer)
  add_link_options(${TH_SANITIZE_LINK_FLAGS})
endif()
