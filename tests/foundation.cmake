# Foundation tests (included from tests/CMakeLists.txt): contexts and device selection, the disk
# program cache through the public API, argument validation of every public function, and the
# installed package (CMake config and pkg-config consumers). The OpenCL tests exit 77 (skipped)
# when no OpenCL device exists.

# Contexts: device selection, borrowed OpenCL objects, struct_size rules, threads.
add_executable(test_context test_context.c)
target_link_libraries(test_context PRIVATE adasplash_test_util Threads::Threads)
add_test(NAME context COMMAND test_context)
set_tests_properties(context PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "${ADASPLASH_TEST_ENV}"
                                        TIMEOUT 600)

# The disk cache through the library: store, load, corrupt entries, unwritable and disabled
# directories, concurrent processes. Its cache directories are its own temp dirs (options and
# ADASPLASH_CACHE_DIR set by the test itself), so ADASPLASH_TEST_ENV's "off" does not matter.
# sha256.c forges an entry whose checksum is right but whose payload the driver must refuse.
add_executable(test_cache test_cache.c ${PROJECT_SOURCE_DIR}/src/sha256.c)
target_include_directories(test_cache PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(test_cache PRIVATE adasplash_test_util)
target_compile_definitions(test_cache
  PRIVATE ADASPLASH_TEST_DISK_CACHE_DEFAULT=$<BOOL:${ADASPLASH_DISK_CACHE}>)
add_test(NAME cache COMMAND test_cache)
set_tests_properties(cache PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "${ADASPLASH_TEST_ENV}"
                                      TIMEOUT 900)

# Invalid arguments: exact status, a message naming the argument, outputs left untouched.
add_executable(test_api_errors test_api_errors.c)
target_link_libraries(test_api_errors PRIVATE adasplash_test_util)
add_test(NAME api_errors COMMAND test_api_errors)
set_tests_properties(api_errors PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "${ADASPLASH_TEST_ENV}"
                                           TIMEOUT 600)

# The installed package: `cmake --install` into a temp prefix, then a consumer built with
# find_package(adasplash-cl) and another with pkg-config, both run. Needs the whole build first.
add_test(NAME install
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DBINARY_DIR=${PROJECT_BINARY_DIR}
          -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install-test -DC_COMPILER=${CMAKE_C_COMPILER}
          -DCONFIG=$<CONFIG> -P ${CMAKE_CURRENT_SOURCE_DIR}/install_test.cmake)
set_tests_properties(install PROPERTIES
  ENVIRONMENT "${ADASPLASH_TEST_ENV}"
  SKIP_REGULAR_EXPRESSION "adasplash-consumer: SKIP"
  TIMEOUT 600)
