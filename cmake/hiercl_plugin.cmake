# hiercl_add_plugin(NAME SOURCES a.c ... [KERNELS k.cl ...]
#                   [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir | NO_INSTALL])
# Builds a hiercl plugin: a MODULE named NAME.so (no "lib" prefix) that sees
# only include/hiercl/plugin.h and links only OpenCL (target hiercl::sdk).
# Each kernel file k.cl is embedded as `const char hcl_cl_k[]` (the text,
# NUL-terminated) for host->program(). Used by hiercl's own plugins and,
# installed, by out-of-tree ones through find_package(hiercl): the same
# function either way. INSTALL_DESTINATION defaults to
# ${CMAKE_INSTALL_LIBDIR}/hiercl/plugins, where an installed `hiercl` looks.
include(GNUInstallDirs)
set(HIERCL_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_file.cmake)

# hiercl_embed_cl(OUT_C VAR FILE): generate OUT_C defining `const char VAR[]`
# with the bytes of FILE, regenerated when FILE changes.
function(hiercl_embed_cl out_c var file)
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out_c} -DVAR=${var} -P ${HIERCL_EMBED_SCRIPT}
    DEPENDS ${file} ${HIERCL_EMBED_SCRIPT}
    COMMENT "Embedding ${file}")
endfunction()

function(hiercl_add_plugin name)
  cmake_parse_arguments(P "NO_INSTALL" "OUTPUT_DIRECTORY;INSTALL_DESTINATION" "SOURCES;KERNELS"
                        ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "hiercl_add_plugin(${name}): SOURCES is required")
  endif()
  set(gen)
  foreach(k ${P_KERNELS})
    get_filename_component(stem ${k} NAME_WE)
    get_filename_component(abs ${k} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    set(out ${CMAKE_CURRENT_BINARY_DIR}/cl_${stem}.c)
    hiercl_embed_cl(${out} hcl_cl_${stem} ${abs})
    list(APPEND gen ${out})
  endforeach()
  add_library(${name} MODULE ${P_SOURCES} ${gen})
  target_link_libraries(${name} PRIVATE hiercl::sdk)
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME ${name}
    C_STANDARD 11 C_VISIBILITY_PRESET hidden)
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY})
  endif()
  if(NOT P_NO_INSTALL)
    if(NOT P_INSTALL_DESTINATION)
      set(P_INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/hiercl/plugins)
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION ${P_INSTALL_DESTINATION})
  endif()
endfunction()
