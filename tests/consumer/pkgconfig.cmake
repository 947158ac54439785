# pkgconfig_consumer: installs the current build into a scratch prefix under the build
# directory, then compiles pkgconfig_consumer.c as C11 with the C compiler and nothing but
# `pkg-config --cflags --libs --static midatlas` (PKG_CONFIG_PATH pointing at the scratch
# prefix), and runs it. Any failing step fails the test; a missing pkg-config fails it too,
# with a message saying so, rather than skipping it.
#
# This file plays two parts, like register.cmake. Included from tests/CMakeLists.txt, it
# registers the test. Run with `cmake -P` (by that test), it performs the steps;
# CMAKE_SCRIPT_MODE_FILE tells which.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  find_program(MIDATLAS_PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf
    DOC "pkg-config, for the pkgconfig_consumer test")
  add_test(NAME pkgconfig_consumer
    COMMAND ${CMAKE_COMMAND}
      -DMIDATLAS_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DSOURCE=${CMAKE_CURRENT_LIST_DIR}/pkgconfig_consumer.c
      -DWORK_DIR=${PROJECT_BINARY_DIR}/pkgconfig_consumer
      -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
      -DCONFIG=$<CONFIG>
      -DPKG_CONFIG=${MIDATLAS_PKG_CONFIG_EXECUTABLE}
      -DC_COMPILER=${CMAKE_C_COMPILER}
      -DC_FLAGS=${CMAKE_C_FLAGS}
      -DEXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(pkgconfig_consumer PROPERTIES TIMEOUT 300)
  return()
endif()

# ---- Script mode: the test itself. -----------------------------------------------------------

foreach(required MIDATLAS_BUILD_DIR SOURCE WORK_DIR LIBDIR C_COMPILER)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "pkgconfig_consumer: -D${required}=... is required")
  endif()
endforeach()
if("${PKG_CONFIG}" STREQUAL "" OR PKG_CONFIG MATCHES "NOTFOUND$")
  message(FATAL_ERROR
    "pkgconfig_consumer: pkg-config was not found when the project was configured; install "
    "it (Debian: apt-get install pkg-config) and configure again")
endif()

set(prefix "${WORK_DIR}/prefix")
set(program "${WORK_DIR}/pkgconfig_consumer")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(config_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config "${CONFIG}")
endif()

function(check_step result what)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "pkgconfig_consumer: ${what} failed (${result})")
  endif()
  message(STATUS "pkgconfig_consumer: ${what}: ok")
endfunction()

# 1. Install the current build.
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${MIDATLAS_BUILD_DIR}" --prefix "${prefix}" ${config_args}
  RESULT_VARIABLE result)
check_step("${result}" "install into ${prefix}")

# 2. Ask pkg-config, searching the scratch prefix first (Abseil's .pc files come from the
#    system directories or a PKG_CONFIG_PATH already set), and make sure the midatlas.pc it
#    reads is the one just installed and not some other midatlas on the system.
set(pc_dir "${prefix}/${LIBDIR}/pkgconfig")
if("$ENV{PKG_CONFIG_PATH}" STREQUAL "")
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
else()
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}:$ENV{PKG_CONFIG_PATH}")
endif()
execute_process(
  COMMAND "${PKG_CONFIG}" --variable=pcfiledir midatlas
  RESULT_VARIABLE result
  OUTPUT_VARIABLE found_dir
  OUTPUT_STRIP_TRAILING_WHITESPACE)
check_step("${result}" "pkg-config finds midatlas")
file(REAL_PATH "${found_dir}" found_dir)
file(REAL_PATH "${pc_dir}" pc_dir)
if(NOT found_dir STREQUAL pc_dir)
  message(FATAL_ERROR "pkgconfig_consumer: midatlas.pc found in ${found_dir}, expected ${pc_dir}")
endif()

execute_process(
  COMMAND "${PKG_CONFIG}" --cflags --libs --static midatlas
  RESULT_VARIABLE result
  OUTPUT_VARIABLE pc_flags
  OUTPUT_STRIP_TRAILING_WHITESPACE)
check_step("${result}" "pkg-config --cflags --libs --static midatlas")
message(STATUS "pkgconfig_consumer: pkg-config gives: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")

# 3. Compile and link in one step, as a user would. C_FLAGS and EXE_LINKER_FLAGS are the build's
#    own (empty but for the sanitizer presets, whose runtime the archive needs): they say how
#    this build compiles, not where midatlas is.
separate_arguments(c_flags UNIX_COMMAND "${C_FLAGS}")
separate_arguments(linker_flags UNIX_COMMAND "${EXE_LINKER_FLAGS}")
set(compile_command
  "${C_COMPILER}" ${c_flags} -std=c11 -Wall -Wextra -Wpedantic -Werror
  "${SOURCE}" -o "${program}" ${pc_flags} ${linker_flags})
list(JOIN compile_command " " shown)
message(STATUS "pkgconfig_consumer: ${shown}")
execute_process(COMMAND ${compile_command} RESULT_VARIABLE result)
check_step("${result}" "compile and link the consumer")

# 4. Run it.
execute_process(COMMAND "${program}" RESULT_VARIABLE result)
check_step("${result}" "run the consumer")
