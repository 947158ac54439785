# Generates ${PROJECT_BINARY_DIR}/midatlas.pc from cmake/midatlas.pc.in at configure time.
# Included from the top-level CMakeLists.txt after the midatlas target and its links are
# declared; the install rule for the file sits there, next to the other install rules.
#
# The dependencies are read from the target rather than written out again, so that a library
# added to target_link_libraries(midatlas ...) reaches the .pc too, or stops the configure
# step if it has no pkg-config spelling yet.

# ---- Paths: relative to the .pc file's own directory wherever GNUInstallDirs allows. --------
# pkg-config defines ${pcfiledir} for every file it reads. An install with --prefix, a DESTDIR
# staging tree or a moved tree then needs no regeneration; CMAKE_INSTALL_PREFIX at configure
# time may not be where the files end up.
set(_midatlas_pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  # An absolute libdir says nothing about where the prefix lies relative to it.
  set(MIDATLAS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(MIDATLAS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _midatlas_pc_up "/root/${_midatlas_pc_dir}" "/root")
  string(REGEX REPLACE "/$" "" _midatlas_pc_up "${_midatlas_pc_up}")
  set(MIDATLAS_PC_PREFIX "\${pcfiledir}/${_midatlas_pc_up}")
  set(MIDATLAS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(MIDATLAS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(MIDATLAS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# ---- Requires.private and Libs.private: everything midatlas links, public or private. ------
# A static archive carries none of its dependencies, so the public/private split of
# target_link_libraries does not matter here: all of them are needed at link time.
#
# Abseil's own .pc files are named after its CMake targets (absl::statusor is absl_statusor)
# and require the rest of Abseil themselves. Abseil versions are ABI-incompatible (each LTS
# release has its own inline namespace), so the version the library was built against is
# required exactly: a mismatch is reported by pkg-config rather than by the linker.
set(_midatlas_pc_requires)
set(_midatlas_pc_libs)
get_target_property(_midatlas_pc_links midatlas LINK_LIBRARIES)
foreach(_midatlas_pc_link IN LISTS _midatlas_pc_links)
  if(_midatlas_pc_link MATCHES "^absl::([A-Za-z0-9_]+)$")
    set(_midatlas_pc_module "absl_${CMAKE_MATCH_1}")
    if(NOT "${absl_VERSION}" STREQUAL "")
      string(APPEND _midatlas_pc_module " = ${absl_VERSION}")
    endif()
    list(APPEND _midatlas_pc_requires "${_midatlas_pc_module}")
  elseif(_midatlas_pc_link STREQUAL "Threads::Threads")
    # -pthread, -lpthread, or nothing where the C library provides the threads (glibc 2.34+).
    if(NOT "${CMAKE_THREAD_LIBS_INIT}" STREQUAL "")
      list(APPEND _midatlas_pc_libs "${CMAKE_THREAD_LIBS_INIT}")
    endif()
  else()
    message(FATAL_ERROR
      "midatlas.pc: no pkg-config spelling for the link dependency '${_midatlas_pc_link}'; "
      "teach cmake/midatlasPkgConfig.cmake about it")
  endif()
endforeach()

# The C++ runtime: what a C++ link adds to a C link (with g++, -lstdc++ -lm; with libc++,
# -lc++ and its companions). A C program linking the archive with the C driver needs them.
set(_midatlas_pc_runtime ${CMAKE_CXX_IMPLICIT_LINK_LIBRARIES})
if(_midatlas_pc_runtime)
  list(REMOVE_ITEM _midatlas_pc_runtime ${CMAKE_C_IMPLICIT_LINK_LIBRARIES})
endif()
list(REMOVE_DUPLICATES _midatlas_pc_runtime)
if(NOT _midatlas_pc_runtime)
  message(FATAL_ERROR
    "midatlas.pc: found no C++ runtime library in CMAKE_CXX_IMPLICIT_LINK_LIBRARIES "
    "('${CMAKE_CXX_IMPLICIT_LINK_LIBRARIES}'); a C program could not link libmidatlas.a")
endif()
foreach(_midatlas_pc_lib IN LISTS _midatlas_pc_runtime)
  if(_midatlas_pc_lib MATCHES "^-" OR IS_ABSOLUTE "${_midatlas_pc_lib}")
    list(APPEND _midatlas_pc_libs "${_midatlas_pc_lib}")
  else()
    list(APPEND _midatlas_pc_libs "-l${_midatlas_pc_lib}")
  endif()
endforeach()

list(JOIN _midatlas_pc_requires ", " MIDATLAS_PC_REQUIRES_PRIVATE)
list(JOIN _midatlas_pc_libs " " MIDATLAS_PC_LIBS_PRIVATE)
configure_file(${CMAKE_CURRENT_LIST_DIR}/midatlas.pc.in ${PROJECT_BINARY_DIR}/midatlas.pc @ONLY)

unset(_midatlas_pc_dir)
unset(_midatlas_pc_up)
unset(_midatlas_pc_requires)
unset(_midatlas_pc_libs)
unset(_midatlas_pc_links)
unset(_midatlas_pc_link)
unset(_midatlas_pc_module)
unset(_midatlas_pc_runtime)
unset(_midatlas_pc_lib)
