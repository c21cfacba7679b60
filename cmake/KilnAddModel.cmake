# KilnAddModel.cmake: kiln_add_model(), shipped in the kiln CMake package.
#
#   kiln_add_model(TARGET MODEL model.yaml
#                  [NAME prefix]          symbol prefix and header name (kiln compile --name);
#                                         default: the model's `name:`
#                  [PRECISION p]          kiln compile --precision p
#                  [CPU cpu]              kiln compile --cpu cpu (e.g. x86-64-v3); default:
#                                         the CPU of the machine that builds
#                  [OPTIONS args...])     any other kiln compile arguments, as they are
#
# adds a static library TARGET holding the compiled model. Linking it gives
# the header <NAME.h> on the include path, libkiln_rt (kiln::runtime), and
# libkiln_rt_blas only when the model's code calls OpenBLAS (the library is
# linked with --as-needed, so a model without sgemm does not depend on it).
#
# The model is compiled at build time by `kiln compile --depfile`, so editing
# the YAML, a weights file it names, or anything else kiln read rebuilds it.
# The YAML is also a configure dependency (its `name:` gives the header's
# name).
#
# Target properties set on TARGET: KILN_MODEL_NAME, KILN_MODEL_HEADER,
# KILN_MODEL_OBJECT.
#
# Needs CMake 3.24 (LINK_LIBRARY) and a GNU-compatible linker (ld.bfd, gold,
# lld: --push-state/--as-needed).

if(CMAKE_VERSION VERSION_LESS 3.24)
  message(FATAL_ERROR "kiln's kiln_add_model needs CMake 3.24 or newer (this is ${CMAKE_VERSION})")
endif()

# The link feature kiln_add_model uses for the BLAS glue: link the library
# only if something uses it. Read in the directory of the target being
# linked: this file is included where find_package(kiln) runs, so that
# directory and those below it see it.
set(CMAKE_LINK_LIBRARY_USING_KILN_AS_NEEDED "LINKER:--push-state,--as-needed" "<LINK_ITEM>" "LINKER:--pop-state")
set(CMAKE_LINK_LIBRARY_USING_KILN_AS_NEEDED_SUPPORTED TRUE)

# The model's name as the frontend reads it: the top-level `name:` of a YAML
# model, the `graph @name` of an IR file. Empty when not found.
function(_kiln_model_name path out)
  set(name "")
  if(path MATCHES "\\.kir$")
    file(STRINGS "${path}" lines REGEX "^graph @[A-Za-z_][A-Za-z0-9_]*" LIMIT_COUNT 1)
    if(lines MATCHES "^graph @([A-Za-z_][A-Za-z0-9_]*)")
      set(name "${CMAKE_MATCH_1}")
    endif()
  else()
    file(STRINGS "${path}" lines REGEX "^name[ \t]*:")
    foreach(line IN LISTS lines)
      if(line MATCHES "^name[ \t]*:[ \t]*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?[ \t]*(#.*)?$")
        set(name "${CMAKE_MATCH_1}")
        break()
      endif()
    endforeach()
  endif()
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

function(kiln_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 KAM "" "MODEL;NAME;PRECISION;CPU" "OPTIONS")
  if(KAM_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kiln_add_model(${target}): unexpected arguments: ${KAM_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT KAM_MODEL)
    message(FATAL_ERROR "kiln_add_model(${target}): MODEL file.yaml is required")
  endif()
  if(TARGET ${target})
    message(FATAL_ERROR "kiln_add_model(${target}): a target of that name exists already")
  endif()
  if(NOT TARGET kiln::compiler)
    message(FATAL_ERROR "kiln_add_model(${target}): kiln::compiler is not defined (find_package(kiln) first)")
  endif()
  get_filename_component(model "${KAM_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "kiln_add_model(${target}): the model ${model} does not exist")
  endif()

  set(name "${KAM_NAME}")
  if(name STREQUAL "")
    _kiln_model_name("${model}" name)
    if(name STREQUAL "")
      message(FATAL_ERROR "kiln_add_model(${target}): cannot read the model's name from ${model}; "
                          "give NAME prefix")
    endif()
    # The header is named after the model: re-read it when the model changes.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${model}")
  elseif(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "kiln_add_model(${target}): NAME '${name}' is not a C identifier")
  endif()

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/kiln_models/${target}")
  file(MAKE_DIRECTORY "${dir}")
  set(obj "${dir}/${name}.o")
  set(hdr "${dir}/${name}.h")
  set(dep "${dir}/${name}.d")
  set(args compile "${model}" -o "${obj}" --header "${hdr}" --depfile "${dep}")
  if(KAM_NAME)
    list(APPEND args --name "${KAM_NAME}")
  endif()
  if(KAM_PRECISION)
    list(APPEND args --precision "${KAM_PRECISION}")
  endif()
  if(KAM_CPU)
    list(APPEND args --cpu "${KAM_CPU}")
  endif()
  list(APPEND args ${KAM_OPTIONS})

  add_custom_command(
    OUTPUT "${obj}" "${hdr}"
    COMMAND kiln::compiler ${args}
    DEPENDS "${model}" kiln::compiler
    DEPFILE "${dep}"
    COMMENT "kiln: compiling ${KAM_MODEL} (model ${name})"
    VERBATIM)
  set_source_files_properties("${obj}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  set_source_files_properties("${hdr}" PROPERTIES HEADER_FILE_ONLY TRUE GENERATED TRUE)
  add_library(${target} STATIC "${obj}" "${hdr}")
  set_target_properties(${target} PROPERTIES
    LINKER_LANGUAGE C
    KILN_MODEL_NAME "${name}"
    KILN_MODEL_HEADER "${hdr}"
    KILN_MODEL_OBJECT "${obj}")
  target_include_directories(${target} INTERFACE "${dir}")
  target_link_libraries(${target} INTERFACE kiln::runtime "$<LINK_LIBRARY:KILN_AS_NEEDED,kiln::runtime_blas>")
endfunction()
