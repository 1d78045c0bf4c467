# Warnings for our own code only; generated protobuf-c sources are compiled without them.
add_library(th_warnings INTERFACE)
target_compile_options(th_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
  -Wwrite-strings -Wundef -Wformat=2 -Wno-unused-parameter)
if(TASKHUBD_WERROR)
  target_compile_options(th_warnings INTERFACE -Werror)
endif()
