# Renders the unit templates with absolute install paths. One renderer for
# both users: systemd/install.cmake includes it at install time, and
# check_units.sh runs it with `cmake -P` to verify the units the install makes.
#   FORKWATCH_BINDIR  absolute directory holding forkwatchd
#   FORKWATCH_DOCDIR  absolute directory holding operations.md
#   FORKWATCH_CONFIG  absolute path of programs.json
#   FORKWATCH_UNITS_OUT  where the rendered forkwatchd.service and .socket go
foreach(var FORKWATCH_BINDIR FORKWATCH_DOCDIR FORKWATCH_CONFIG FORKWATCH_UNITS_OUT)
  if(NOT ${var})
    message(FATAL_ERROR "render_units.cmake: ${var} is not set")
  endif()
endforeach()
foreach(unit forkwatchd.service forkwatchd.socket forkwatchd-unix.socket)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${unit}.in ${FORKWATCH_UNITS_OUT}/${unit} @ONLY)
endforeach()
