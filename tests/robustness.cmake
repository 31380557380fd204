# Reliability tests (included from tests/CMakeLists.txt), names robustness_*: numerics at the edges
# (NaN, +-inf, scores of 1e4, single-key and all-equal rows) for attention and the row operator,
# many threads on one context, racing processes on one disk cache entry, a simulated small device.

# Numerics at the edges, against the double reference (with the library's documented NaN rules).
add_executable(test_robustness test_robustness.c)
target_link_libraries(test_robustness PRIVATE adasplash_test_util)
add_test(NAME robustness_numerics COMMAND test_robustness)
set_tests_properties(robustness_numerics PROPERTIES SKIP_RETURN_CODE 77
                                                    ENVIRONMENT "${ADASPLASH_TEST_ENV}" TIMEOUT 600)

# 8 threads on one context, each on its own queue, mixed attention / rows workload: bitwise the
# single-threaded results with the split backward; with the fused one (the default) dQ, summed by
# float atomics, within a reordering tolerance.
add_executable(test_concurrency test_concurrency.c)
target_link_libraries(test_concurrency PRIVATE adasplash_test_util Threads::Threads)
add_test(NAME robustness_threads COMMAND test_concurrency)
set_tests_properties(robustness_threads PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
                     ENVIRONMENT "${ADASPLASH_TEST_ENV};ADASPLASH_TUNE=attn_bwd_fused=0")
add_test(NAME robustness_threads_fused COMMAND test_concurrency --atomic-dq)
set_tests_properties(robustness_threads_fused PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
                     ENVIRONMENT "${ADASPLASH_TEST_ENV}")

# A simulated small device (tuning override local_mem=32768,max_wg=256): smaller tiles, same
# results.
add_executable(test_small_device test_small_device.c)
target_link_libraries(test_small_device PRIVATE adasplash_test_util)
add_test(NAME robustness_small_device COMMAND test_small_device)
set_tests_properties(robustness_small_device PROPERTIES SKIP_RETURN_CODE 77
                                                        ENVIRONMENT "${ADASPLASH_TEST_ENV}"
                                                        TIMEOUT 600)

# 8 processes racing on one disk cache entry, and entries made for another device under this
# device's name (test_cache's own modes; its cache directories are its own temp dirs).
add_test(NAME robustness_cache COMMAND test_cache --race 8)
set_tests_properties(robustness_cache PROPERTIES SKIP_RETURN_CODE 77
                                                 ENVIRONMENT "${ADASPLASH_TEST_ENV}" TIMEOUT 900)
