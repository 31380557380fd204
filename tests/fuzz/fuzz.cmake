# Fuzzing (included from tests/CMakeLists.txt). fuzz_api.c is a libFuzzer target for the public
# API's argument validation (tests/fuzz/fuzz_api.c says what it checks). Every build replays the
# corpus through it with a plain driver (CTest fuzz_replay, any compiler); a clang build with
# -DADASPLASH_BUILD_FUZZ=ON also builds the coverage-guided fuzzer fuzz_api (scripts/ci/fuzz.sh).
set(ADASPLASH_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

add_executable(fuzz_replay ${ADASPLASH_FUZZ_DIR}/fuzz_replay.c ${ADASPLASH_FUZZ_DIR}/fuzz_api.c)
target_link_libraries(fuzz_replay PRIVATE adasplash::adasplash m)
add_test(NAME fuzz_replay
         COMMAND fuzz_replay --min-files 24 ${ADASPLASH_FUZZ_DIR}/corpus)
set_tests_properties(fuzz_replay PROPERTIES SKIP_RETURN_CODE 77 LABELS fuzz TIMEOUT 600
                                            ENVIRONMENT "${ADASPLASH_TEST_ENV}")

if(ADASPLASH_BUILD_FUZZ)
  add_executable(fuzz_api ${ADASPLASH_FUZZ_DIR}/fuzz_api.c)
  target_link_libraries(fuzz_api PRIVATE adasplash::adasplash m)
  target_compile_options(fuzz_api PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_api PRIVATE -fsanitize=fuzzer)
endif()
