if(TASKHUBD_SANITIZE)
  # Applied globally so that generated code and every test binary are instrumented too.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
