# cmake/KilnInstall.cmake: what `cmake --install` puts into the prefix
# (included by the top-level CMakeLists.txt when KILN_INSTALL is on):
#
#   bin/kiln                                the compiler        kiln::compiler
#   lib/libkiln_rt.so.0.2 (+ .so, .a)       the runtime         kiln::runtime, kiln::runtime_static
#   lib/libkiln_rt_blas.so.0.2 (+ .so, .a)  the BLAS glue       kiln::runtime_blas, kiln::runtime_blas_static
#   include/kiln/*.h                        runtime.h, instance.h, status.h, version.h, blas.h
#   lib/cmake/kiln/                         kilnConfig.cmake, kilnConfigVersion.cmake,
#                                           kilnTargets*.cmake, KilnAddModel.cmake
#   lib/pkgconfig/kiln-rt.pc, kiln-rt-blas.pc
#
# Everything is relocatable: the package and the .pc files find the prefix
# from their own location, so `cmake --install build --prefix ANYWHERE` works.
# Included by the top-level CMakeLists.txt, or by runtime/CMakeLists.txt
# when the runtime is built on its own (then: the runtime libraries, the
# headers and the .pc files; no kiln, no CMake package).
include(CMakePackageConfigHelpers)

set(KILN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/kiln" CACHE STRING
    "Where the CMake package goes, relative to the prefix")
set(KILN_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where kiln-rt.pc goes, relative to the prefix")
set(_kiln_cmake_dir "${CMAKE_CURRENT_LIST_DIR}")

set_target_properties(kiln_rt_shared PROPERTIES EXPORT_NAME runtime)
set_target_properties(kiln_rt_static PROPERTIES EXPORT_NAME runtime_static)
set(_kiln_install_targets kiln_rt_shared kiln_rt_static)
set(_kiln_headers runtime.h instance.h status.h version.h)
set(_kiln_pcs kiln-rt)
if(TARGET kiln_rt_blas_shared)
  set_target_properties(kiln_rt_blas_shared PROPERTIES EXPORT_NAME runtime_blas)
  set_target_properties(kiln_rt_blas_static PROPERTIES EXPORT_NAME runtime_blas_static)
  list(APPEND _kiln_install_targets kiln_rt_blas_shared kiln_rt_blas_static)
  list(APPEND _kiln_headers blas.h)
  list(APPEND _kiln_pcs kiln-rt-blas)
endif()
foreach(_t ${_kiln_install_targets})
  target_include_directories(${_t} INTERFACE "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
endforeach()
if(TARGET kiln)
  set_target_properties(kiln PROPERTIES EXPORT_NAME compiler)
  list(APPEND _kiln_install_targets kiln)
endif()

install(TARGETS ${_kiln_install_targets}
  EXPORT kilnTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
list(TRANSFORM _kiln_headers PREPEND "${KILN_RT_INCLUDE_DIR}/kiln/")
install(FILES ${_kiln_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kiln)

if(TARGET kiln)
  install(EXPORT kilnTargets NAMESPACE kiln:: DESTINATION ${KILN_INSTALL_CMAKEDIR})
  configure_package_config_file(${_kiln_cmake_dir}/kilnConfig.cmake.in
    ${PROJECT_BINARY_DIR}/kilnConfig.cmake
    INSTALL_DESTINATION ${KILN_INSTALL_CMAKEDIR})
  # 0.x: a new minor version may change the ABI, so only 0.MINOR.* satisfies
  # find_package(kiln 0.MINOR).
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/kilnConfig.cmake ${PROJECT_BINARY_DIR}/kilnConfigVersion.cmake
                ${_kiln_cmake_dir}/KilnAddModel.cmake
          DESTINATION ${KILN_INSTALL_CMAKEDIR})
endif()

# pkg-config: the prefix is found from the .pc file's own directory.
if(IS_ABSOLUTE "${KILN_INSTALL_PKGCONFIGDIR}")
  set(KILN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _kiln_pc_up "/kiln/${KILN_INSTALL_PKGCONFIGDIR}" "/kiln")
  string(REGEX REPLACE "/$" "" _kiln_pc_up "${_kiln_pc_up}")
  set(KILN_PC_PREFIX "\${pcfiledir}/${_kiln_pc_up}")
endif()
get_filename_component(KILN_PC_OPENBLAS "${KILN_OPENBLAS_LIBRARY}" NAME_WE)
string(REGEX REPLACE "^lib" "" KILN_PC_OPENBLAS "${KILN_PC_OPENBLAS}")
foreach(_pc ${_kiln_pcs})
  configure_file(${_kiln_cmake_dir}/${_pc}.pc.in ${PROJECT_BINARY_DIR}/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${_pc}.pc DESTINATION ${KILN_INSTALL_PKGCONFIGDIR})
endforeach()
