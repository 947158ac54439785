# midatlas_library_variant(<name> <definition>...): a copy of the library built with extra
# compile definitions - MIDATLAS_CHAOS (chaos points, src/instrumentation/chaos.h), the planted
# faults of src/instrumentation/fault_injection.h, MIDATLAS_TEST_HOOKS (the hook points of
# src/instrumentation/test_hooks.h). The sources, definitions and dependencies are read from
# the real `midatlas` target when the variant is defined, so each copy is the shipped code,
# not a hand copy. Used by tests/ and stress/, whichever includes this first.
include_guard(GLOBAL)

function(midatlas_library_variant name)
  get_target_property(_sources midatlas SOURCES)
  get_target_property(_definitions midatlas COMPILE_DEFINITIONS)
  get_target_property(_links midatlas LINK_LIBRARIES)
  get_target_property(_source_dir midatlas SOURCE_DIR)
  set(_variant_sources)
  foreach(_source IN LISTS _sources)
    if(IS_ABSOLUTE "${_source}")
      list(APPEND _variant_sources "${_source}")
    else()
      list(APPEND _variant_sources "${_source_dir}/${_source}")
    endif()
  endforeach()

  add_library(${name} STATIC ${_variant_sources})
  target_include_directories(${name}
    PUBLIC ${PROJECT_SOURCE_DIR}/include
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(${name} PUBLIC cxx_std_20)
  target_compile_options(${name} PRIVATE ${MIDATLAS_WARNINGS})
  if(_definitions)
    target_compile_definitions(${name} PRIVATE ${_definitions})
  endif()
  target_compile_definitions(${name} PRIVATE ${ARGN})
  target_link_libraries(${name} PUBLIC ${_links})
  # Kept out of compile_commands.json, so that scripts/lint checks each source file once, as
  # the real library compiles it.
  set_target_properties(${name} PROPERTIES EXPORT_COMPILE_COMMANDS OFF)
endfunction()
