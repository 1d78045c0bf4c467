# TH_SANITIZE_LINK_FLAGS is also what programs outside the build must link with to use this build's SDK
# (sdk-c/CMakeLists.txt puts it into the installed pkg-config file and CMake targets); empty without sanitizers.
set(TH_SANITIZE_LINK_FLAGS)
if(TASKHUBD_SANITIZE)
  set(TH_SANITIZE_LINK_FLAGS -fsanitize=address,undefined)
  # Applied globally so that generated code and every test binary are instrumented too.
  add_compile_options(${TH_SANITIZE_LINK_FLAGS} -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(${TH_SANITIZE_LINK_FLAGS})
endif()
