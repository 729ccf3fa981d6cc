# What `cmake --install` adds beside the library, command, headers and
# plugins (installed where they are built): the kernels' sources, the CMake
# package (find_package(hiercl) -> hiercl::hiercl, hiercl::sdk,
# hiercl_add_plugin) and hiercl.pc for pkg-config.
include(CMakePackageConfigHelpers)
set(HCL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hiercl)
set(HCL_PKG_PLUGIN_DIR ${CMAKE_INSTALL_LIBDIR}/hiercl/plugins)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/kernels/ DESTINATION ${CMAKE_INSTALL_DATADIR}/hiercl/kernels
        FILES_MATCHING PATTERN "*.cl")
target_include_directories(hiercl INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
install(TARGETS hiercl_sdk EXPORT hiercl-targets)
install(EXPORT hiercl-targets NAMESPACE hiercl:: DESTINATION ${HCL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hiercl-config.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/hiercl-config.cmake INSTALL_DESTINATION ${HCL_CMAKE_DIR}
  PATH_VARS HCL_PKG_PLUGIN_DIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/hiercl-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/hiercl-config.cmake
  ${CMAKE_BINARY_DIR}/cmake/hiercl-config-version.cmake
  ${PROJECT_SOURCE_DIR}/cmake/hiercl_plugin.cmake ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
  DESTINATION ${HCL_CMAKE_DIR})
# relative to the .pc file, so an installation moved with --prefix still fits
file(RELATIVE_PATH HCL_PC_UP /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${PROJECT_SOURCE_DIR}/cmake/hiercl.pc.in ${CMAKE_BINARY_DIR}/hiercl.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hiercl.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
