# hcl_add_plugin(NAME SOURCES a.c ... [KERNELS k.cl ...])
# Builds one of hiercl's own plugins into the shared plugin folder of the
# build tree, through hiercl_add_plugin (hiercl_plugin.cmake): the function
# find_package(hiercl) gives out-of-tree plugins.
include(${CMAKE_CURRENT_LIST_DIR}/hiercl_plugin.cmake)

# hiercl::sdk: what a plugin compiles and links against (plugin.h, OpenCL).
add_library(hiercl_sdk INTERFACE)
add_library(hiercl::sdk ALIAS hiercl_sdk)
set_target_properties(hiercl_sdk PROPERTIES EXPORT_NAME sdk)
target_include_directories(hiercl_sdk INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                                $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(hiercl_sdk INTERFACE OpenCL::OpenCL m)

function(hcl_add_plugin name)
  hiercl_add_plugin(${name} ${ARGN} OUTPUT_DIRECTORY ${HCL_PLUGIN_OUT_DIR})
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
