# adasplash-tune (included by tools/CMakeLists.txt): searches launch parameters on the current
# device, verifies each candidate against the double reference and writes the per-device tuned
# file (docs/TUNING.md). The reference and the benchmark input generator come from devtools.
add_executable(adasplash-tune
  adasplash_tune.c tune_space.c tune_verify.c tune_timing.c tune_file.c)
target_include_directories(adasplash-tune PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(adasplash-tune PRIVATE adasplash_devtools adasplash::adasplash)
if(UNIX)
  target_link_libraries(adasplash-tune PRIVATE m)
endif()
install(TARGETS adasplash-tune RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

if(ADASPLASH_BUILD_TESTS)
  add_test(NAME tune_help COMMAND adasplash-tune --help)
  set_tests_properties(tune_help PROPERTIES PASS_REGULAR_EXPRESSION "--budget-seconds")
  add_test(NAME tune_bad_option COMMAND adasplash-tune --no-such-option)
  set_tests_properties(tune_bad_option PROPERTIES WILL_FAIL TRUE)
  # A quick search on tiny shapes with a tiny budget into a temporary file, then a context that
  # reads that file (ADASPLASH_TUNE_FILE) runs verified attention and row calls (--check).
  add_test(NAME tune_smoke
           COMMAND ${CMAKE_COMMAND} -DTUNE=$<TARGET_FILE:adasplash-tune>
                   -DOUT=${CMAKE_CURRENT_BINARY_DIR}/tune-smoke
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/tune_smoke.cmake)
  set_tests_properties(tune_smoke PROPERTIES
    SKIP_REGULAR_EXPRESSION "no OpenCL device is available"
    PASS_REGULAR_EXPRESSION "tuned file .* accepted"
    ENVIRONMENT "ADASPLASH_CACHE_DIR=off"
    TIMEOUT 300)
endif()
