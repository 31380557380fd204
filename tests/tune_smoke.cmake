# tune_smoke.cmake - the tune_smoke test (cmake -DTUNE=<adasplash-tune> -DOUT=<dir> -P ...):
# a --quick search on tiny shapes with a tiny budget writing OUT/tuned.conf, then
# `adasplash-tune --check` with ADASPLASH_TUNE_FILE pointing at that file: the library must read
# it, apply every key and give verified attention (fwd+bwd) and row results with it.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
set(file ${OUT}/tuned.conf)
execute_process(
  COMMAND ${TUNE} --quick --n 64 --heads 1 --d 16 --dtype f32 --rows 64 --cols 256 --repeats 2
          --budget-seconds 20 --output ${file}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${err}")
message("${out}")
if(err MATCHES "no OpenCL device is available")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "adasplash-tune exited with ${rc}")
endif()
if(NOT EXISTS ${file})
  message(FATAL_ERROR "adasplash-tune did not write ${file}")
endif()
file(READ ${file} text)
message("--- ${file} ---\n${text}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env ADASPLASH_TUNE_FILE=${file} ${TUNE} --check --d 16
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${err}${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the library did not accept ${file} (adasplash-tune --check exited with ${rc})")
endif()
