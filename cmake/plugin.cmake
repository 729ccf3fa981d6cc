# hcl_add_plugin(NAME SOURCES a.c ... [KERNELS k.cl ...])
# Builds a MODULE into the shared plugin folder of the build tree. Each
# kernel file k.cl is embedded as `const char hcl_cl_k[]` (see embed.cmake).
# Plugins see include/hiercl/plugin.h only and link OpenCL, never libhiercl.
function(hcl_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;KERNELS" ${ARGN})
  set(gen)
  foreach(k ${P_KERNELS})
    get_filename_component(stem ${k} NAME_WE)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/cl_${stem}.c)
    hcl_embed_cl(${out} hcl_cl_${stem} ${CMAKE_CURRENT_SOURCE_DIR}/${k})
    list(APPEND gen ${out})
  endforeach()
  add_library(${name} MODULE ${P_SOURCES} ${gen})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE OpenCL::OpenCL ${M_LIB})
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME ${name}
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${HCL_PLUGIN_OUT_DIR})
  install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/hiercl/plugins)
endfunction()

# Every subfolder with a CMakeLists.txt is one plugin.
function(hcl_add_plugin_dirs)
  file(GLOB children LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  foreach(c ${children})
    if(IS_DIRECTORY ${c} AND EXISTS ${c}/CMakeLists.txt)
      add_subdirectory(${c})
    endif()
  endforeach()
endfunction()
