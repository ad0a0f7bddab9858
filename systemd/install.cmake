# Installing forkwatch (`cmake --install build [--prefix DIR]`), its Debian
# package (`cd build && cpack -G DEB`), and the ctest checks of both.
# Included from the root CMakeLists.txt after every target exists.
#
#   <prefix>/bin/                          forkwatchd, forkwatch
#   <prefix>/libexec/forkwatch/            the worker programs
#   <prefix>/share/forkwatch/web/          the dashboard
#   <prefix>/share/doc/forkwatch/          operations.md
#   <prefix>/lib/systemd/system/           forkwatchd.service, forkwatchd.socket, forkwatchd-unix.socket
#   <prefix>/etc/forkwatch/programs.json   example config (/etc/... when the prefix is /usr)
include(GNUInstallDirs)

foreach(target forkwatchd forkwatch)
  if(TARGET ${target})
    install(TARGETS ${target} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
if(FORKWATCH_WORKER_TARGETS)
  install(TARGETS ${FORKWATCH_WORKER_TARGETS} RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/forkwatch)
endif()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/forkwatch/web
  PATTERN node_modules EXCLUDE
  PATTERN "package*.json" EXCLUDE)
install(FILES ${CMAKE_SOURCE_DIR}/docs/operations.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The units and the config go where the *install-time* prefix says, not the
# configure-time one: `cmake --install --prefix /tmp/stage` gets a unit whose
# ExecStart is /tmp/stage/bin/forkwatchd, and the .deb one with /usr/bin.
set(forkwatch_install_code [=[
  set(FORKWATCH_BINDIR "@CMAKE_INSTALL_BINDIR@")
  if(NOT IS_ABSOLUTE "${FORKWATCH_BINDIR}")
    set(FORKWATCH_BINDIR "${CMAKE_INSTALL_PREFIX}/${FORKWATCH_BINDIR}")
  endif()
  set(FORKWATCH_DOCDIR "@CMAKE_INSTALL_DOCDIR@")
  if(NOT IS_ABSOLUTE "${FORKWATCH_DOCDIR}")
    set(FORKWATCH_DOCDIR "${CMAKE_INSTALL_PREFIX}/${FORKWATCH_DOCDIR}")
  endif()
  # GNU's rule (as GNUInstallDirs applies it): prefix /usr keeps its config in
  # /etc, any other prefix in <prefix>/etc. ExecStart names that file.
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(forkwatch_etc "/etc/forkwatch")
  else()
    set(forkwatch_etc "${CMAKE_INSTALL_PREFIX}/etc/forkwatch")
  endif()
  set(FORKWATCH_CONFIG "${forkwatch_etc}/programs.json")
  # One render directory per destination, so concurrent installs (a test
  # staging while cpack runs) never write the same file.
  string(MD5 forkwatch_key "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
  set(FORKWATCH_UNITS_OUT "@CMAKE_BINARY_DIR@/systemd/units-${forkwatch_key}")
  include("@CMAKE_SOURCE_DIR@/systemd/render_units.cmake")
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
    FILES "${FORKWATCH_UNITS_OUT}/forkwatchd.service" "${FORKWATCH_UNITS_OUT}/forkwatchd.socket"
          "${FORKWATCH_UNITS_OUT}/forkwatchd-unix.socket")

  set(forkwatch_example "@CMAKE_SOURCE_DIR@/systemd/programs.json")
  set(forkwatch_config "$ENV{DESTDIR}${forkwatch_etc}/programs.json")
  if(EXISTS "${forkwatch_config}")
    file(SHA256 "${forkwatch_config}" forkwatch_old)
    file(SHA256 "${forkwatch_example}" forkwatch_new)
  endif()
  if(EXISTS "${forkwatch_config}" AND NOT forkwatch_old STREQUAL forkwatch_new)
    # Never overwrite a config someone edited; leave the example beside it.
    message(STATUS "Keeping ${forkwatch_config}; the example goes to programs.json.example")
    file(INSTALL DESTINATION "${forkwatch_etc}" TYPE FILE FILES "${forkwatch_example}"
      RENAME programs.json.example)
  else()
    file(INSTALL DESTINATION "${forkwatch_etc}" TYPE FILE FILES "${forkwatch_example}")
  endif()
]=])
string(CONFIGURE "${forkwatch_install_code}" forkwatch_install_code @ONLY)
install(CODE "${forkwatch_install_code}")

# ---- Debian package: cpack -G DEB ----
# cpack (and `make install`) must not start a build of everything: the
# package test runs cpack beside other tests and other builds of this tree.
# Build first, then package.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY TRUE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME forkwatch)
set(CPACK_PACKAGE_VENDOR "forkwatch")
set(CPACK_PACKAGE_CONTACT "forkwatch maintainers <forkwatch@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "process supervisor that shows every fork, exit and wait status")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "forkwatchd starts worker processes, restarts them by policy, reaps every child\n\
and orphan it is handed, records each wait status with its resource usage in\n\
SQLite, and shows the live process and thread tree in a browser and over a\n\
REST API. Runs under systemd with notify, watchdog, reload and socket\n\
activation. Includes the forkwatch client and the example worker programs.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # forkwatch_0.1.0_amd64.deb
# Library dependencies come from dpkg-shlibdeps (libc6, libstdc++6,
# libsqlite3-0, libssl3 for forkwatch-tls.so, ...); procps provides the /bin/kill of
# ExecReload=.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")
set(CPACK_STRIP_FILES ON)
# Install with DESTDIR and the real prefix, so the install code above sees
# CMAKE_INSTALL_PREFIX=/usr and puts the config in /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/systemd/debian/conffiles
  ${CMAKE_SOURCE_DIR}/systemd/debian/postinst
  ${CMAKE_SOURCE_DIR}/systemd/debian/prerm
  ${CMAKE_SOURCE_DIR}/systemd/debian/postrm)
include(CPack)

# ---- Checks ----
if(FORKWATCH_TESTS)
  # systemd-analyze needs ExecStart to exist: verify the units rendered for
  # the built daemon. Without it the test fails and says so.
  if(TARGET forkwatchd)
    set(forkwatch_daemon $<TARGET_FILE:forkwatchd>)
  else()
    set(forkwatch_daemon ${CMAKE_RUNTIME_OUTPUT_DIRECTORY}/forkwatchd)
  endif()
  set(forkwatch_check ${CMAKE_SOURCE_DIR}/systemd/check_units.sh)
  set(forkwatch_bins "")
  foreach(target forkwatchd forkwatch)
    if(TARGET ${target})
      list(APPEND forkwatch_bins ${target})
    endif()
  endforeach()
  string(JOIN " " forkwatch_bins_text ${forkwatch_bins})
  string(JOIN " " forkwatch_workers_text ${FORKWATCH_WORKER_TARGETS})
  set(forkwatch_check_env
    FORKWATCH_SOURCE_DIR=${CMAKE_SOURCE_DIR}
    FORKWATCH_BUILD_DIR=${CMAKE_BINARY_DIR}
    "FORKWATCH_INSTALLED_BINS=${forkwatch_bins_text}"
    "FORKWATCH_INSTALLED_WORKERS=${forkwatch_workers_text}")

  add_test(NAME "systemd: verify units" COMMAND sh ${forkwatch_check} verify ${forkwatch_daemon})
  add_test(NAME "systemd: security exposure" COMMAND sh ${forkwatch_check} security ${forkwatch_daemon})
  add_test(NAME "systemd: staged install" COMMAND sh ${forkwatch_check} staged)
  add_test(NAME "systemd: deb package installs and removes" COMMAND sh ${forkwatch_check} deb)
  set_tests_properties("systemd: verify units" "systemd: security exposure"
    "systemd: staged install" "systemd: deb package installs and removes"
    PROPERTIES ENVIRONMENT "${forkwatch_check_env}" TIMEOUT 300)
endif()
