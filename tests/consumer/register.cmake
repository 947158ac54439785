# find_package_consumer: installs the current build into a scratch prefix under the build
# directory, then configures, builds and runs tests/consumer against that prefix with
# find_package(midatlas CONFIG REQUIRED). Any failing step fails the test.
#
# This file plays two parts. Included from tests/CMakeLists.txt, it registers the test. Run
# with `cmake -P` (by that test), it performs the steps; CMAKE_SCRIPT_MODE_FILE tells which.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  # Lists travel through the command line with '|' in place of ';' (add_test would otherwise
  # split them into separate arguments).
  string(REPLACE ";" "|" _midatlas_consumer_prefix_path "${CMAKE_PREFIX_PATH}")
  add_test(NAME find_package_consumer
    COMMAND ${CMAKE_COMMAND}
      -DMIDATLAS_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DCONSUMER_SOURCE_DIR=${CMAKE_CURRENT_LIST_DIR}
      -DWORK_DIR=${PROJECT_BINARY_DIR}/find_package_consumer
      -DCONFIG=$<CONFIG>
      -DGENERATOR=${CMAKE_GENERATOR}
      -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
      -DCXX_FLAGS=${CMAKE_CXX_FLAGS}
      -DEXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}
      -DPREFIX_PATH=${_midatlas_consumer_prefix_path}
      -DABSL_DIR=${absl_DIR}
      -P ${CMAKE_CURRENT_LIST_FILE})
  # Configuring a fresh project dominates: allow for slow, loaded machines.
  set_tests_properties(find_package_consumer PROPERTIES TIMEOUT 600)
  unset(_midatlas_consumer_prefix_path)
  return()
endif()

# ---- Script mode: the test itself. -----------------------------------------------------------

foreach(required MIDATLAS_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${required} OR "${${required}}" STREQUAL "")
    message(FATAL_ERROR "find_package_consumer: -D${required}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(config_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config "${CONFIG}")
endif()

function(check_step result what)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "find_package_consumer: ${what} failed (${result})")
  endif()
  message(STATUS "find_package_consumer: ${what}: ok")
endfunction()

# 1. Install the current build.
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${MIDATLAS_BUILD_DIR}" --prefix "${prefix}" ${config_args}
  RESULT_VARIABLE result)
check_step("${result}" "install into ${prefix}")

# 2. Configure the consumer against it, with the same compiler and flags (sanitizer builds
#    must link the consumer with the same runtime).
string(REPLACE "|" ";" prefix_path "${PREFIX_PATH}")
list(PREPEND prefix_path "${prefix}")
set(configure_args
  -S "${CONSUMER_SOURCE_DIR}"
  -B "${build}"
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
  "-DMIDATLAS_EXPECTED_PREFIX=${prefix}")
if(NOT "${CONFIG}" STREQUAL "")
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
if(NOT "${ABSL_DIR}" STREQUAL "" AND NOT ABSL_DIR MATCHES "NOTFOUND$")
  list(APPEND configure_args "-Dabsl_DIR=${ABSL_DIR}")
endif()
# The prefix path is a list: pass it as one quoted argument so that its ';' survive.
execute_process(
  COMMAND "${CMAKE_COMMAND}" ${configure_args} "-DCMAKE_PREFIX_PATH=${prefix_path}"
  RESULT_VARIABLE result)
check_step("${result}" "configure the consumer")

# 3. Build it.
execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${build}" ${config_args}
  RESULT_VARIABLE result)
check_step("${result}" "build the consumer")

# 4. Run it (single-config generators put it in the build directory, multi-config ones in a
#    per-configuration folder).
set(program)
foreach(candidate "${build}/consumer" "${build}/consumer.exe"
                  "${build}/${CONFIG}/consumer" "${build}/${CONFIG}/consumer.exe")
  if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
    set(program "${candidate}")
    break()
  endif()
endforeach()
if(NOT program)
  message(FATAL_ERROR "find_package_consumer: the consumer program was not built in ${build}")
endif()
execute_process(COMMAND "${program}" RESULT_VARIABLE result)
check_step("${result}" "run the consumer")
