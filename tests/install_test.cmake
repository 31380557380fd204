# install_test.cmake - checks the installed package end to end (run by the "install" CTest test):
#   cmake -DSOURCE_DIR=<repo> -DBINARY_DIR=<build> -DWORK_DIR=<scratch> [-DC_COMPILER=cc]
#         [-DCONFIG=Release] -P install_test.cmake
# 1. `cmake --install <build> --prefix <scratch>/prefix` of the already-built project;
# 2. the consumer project tests/install built with find_package(adasplash-cl CONFIG REQUIRED);
# 3. the same consumer built with the flags of `pkg-config --cflags --libs adasplash-cl`;
# 4. both executables (and the installed adasplash-info and adasplash-tune --version) run with the
#    installed library on LD_LIBRARY_PATH; each must exit 0 (a consumer that finds no OpenCL
#    device prints "adasplash-consumer: SKIP", which CTest reports as skipped).
# Every failing step stops the script with a message saying what failed and its output.
cmake_minimum_required(VERSION 3.16)

foreach(var SOURCE_DIR BINARY_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install test: -D${var}=... is required")
  endif()
endforeach()
if(NOT C_COMPILER)
  set(C_COMPILER cc)
endif()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs a command; stops with its output when it fails. Output goes to <name>_OUTPUT.
function(step name)
  cmake_parse_arguments(S "" "" "COMMAND" ${ARGN})
  string(REPLACE ";" " " shown "${S_COMMAND}")
  message(STATUS "install test: ${name}: ${shown}")
  execute_process(COMMAND ${S_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${name}_OUTPUT "${out}${err}" PARENT_SCOPE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${name} FAILED (exit ${rc})\n"
                        "command: ${shown}\n--- output ---\n${out}${err}--------------")
  endif()
endfunction()

# ---- 1. install ---------------------------------------------------------------------------------
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
step(install COMMAND "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}" ${config_args})

if(NOT EXISTS "${prefix}/include/adasplash.h")
  message(FATAL_ERROR "install test: ${prefix}/include/adasplash.h was not installed")
endif()
file(GLOB_RECURSE pc_files "${prefix}/*/adasplash-cl.pc")
file(GLOB_RECURSE config_files "${prefix}/*/adasplash-cl-config.cmake")
list(LENGTH pc_files n_pc)
list(LENGTH config_files n_config)
if(NOT n_pc EQUAL 1)
  message(FATAL_ERROR "install test: expected one adasplash-cl.pc under ${prefix}, found "
                      "${n_pc}: ${pc_files}")
endif()
if(NOT n_config EQUAL 1)
  message(FATAL_ERROR "install test: expected one adasplash-cl-config.cmake under ${prefix}, "
                      "found ${n_config}: ${config_files}")
endif()
get_filename_component(pc_dir "${pc_files}" DIRECTORY)
get_filename_component(libdir "${pc_dir}" DIRECTORY)
file(GLOB libs "${libdir}/libadasplash-cl.*")
if(NOT libs)
  message(FATAL_ERROR "install test: no libadasplash-cl.* in ${libdir}")
endif()
message(STATUS "install test: installed into ${prefix} (libdir ${libdir})")

set(ld_path "${libdir}")
if(DEFINED ENV{LD_LIBRARY_PATH} AND NOT "$ENV{LD_LIBRARY_PATH}" STREQUAL "")
  string(APPEND ld_path ":$ENV{LD_LIBRARY_PATH}")
endif()

# Runs an installed or consumer executable with the installed library on LD_LIBRARY_PATH.
function(run_program name)
  message(STATUS "install test: running ${name}: ${ARGN}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "LD_LIBRARY_PATH=${ld_path}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}${err}")
  if(rc EQUAL 77 AND "${out}" MATCHES "adasplash-consumer: SKIP")
    message(STATUS "install test: ${name} found no OpenCL device (skipped)")
  elseif(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${name} FAILED (exit ${rc})\n${out}${err}")
  endif()
endfunction()

# The installed tool, when the tools were built.
if(EXISTS "${BINARY_DIR}/tools/adasplash-info")
  if(NOT EXISTS "${prefix}/bin/adasplash-info")
    message(FATAL_ERROR "install test: adasplash-info was built but not installed to bin")
  endif()
  run_program("installed adasplash-info --version" "${prefix}/bin/adasplash-info" --version)
endif()
if(EXISTS "${BINARY_DIR}/tools/adasplash-tune")
  if(NOT EXISTS "${prefix}/bin/adasplash-tune")
    message(FATAL_ERROR "install test: adasplash-tune was built but not installed to bin")
  endif()
  run_program("installed adasplash-tune --version" "${prefix}/bin/adasplash-tune" --version)
endif()

# ---- 2. CMake consumer --------------------------------------------------------------------------
set(cmake_build "${WORK_DIR}/consumer-cmake")
step(configure_consumer COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/install"
     -B "${cmake_build}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${C_COMPILER}"
     -DCMAKE_BUILD_TYPE=Release)
# It must have found this prefix, not another installation.
if(NOT configure_consumer_OUTPUT MATCHES "adasplash-cl [0-9.]+ from ${prefix}/")
  message(FATAL_ERROR "install test: the consumer did not find adasplash-cl in ${prefix}:\n"
                      "${configure_consumer_OUTPUT}")
endif()
step(build_consumer COMMAND "${CMAKE_COMMAND}" --build "${cmake_build}")
set(cmake_exe "${cmake_build}/consumer")
if(NOT EXISTS "${cmake_exe}")
  message(FATAL_ERROR "install test: ${cmake_exe} was not built")
endif()

# ---- 3. pkg-config consumer ---------------------------------------------------------------------
find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG_EXECUTABLE)
  message(FATAL_ERROR "install test: pkg-config not found (install pkg-config)")
endif()
set(pc_env "PKG_CONFIG_PATH=${pc_dir}")
step(pkg_config_prefix COMMAND "${CMAKE_COMMAND}" -E env "${pc_env}" "${PKG_CONFIG_EXECUTABLE}"
     --variable=includedir adasplash-cl)
string(STRIP "${pkg_config_prefix_OUTPUT}" pc_includedir)
file(TO_CMAKE_PATH "${pc_includedir}" pc_includedir)
get_filename_component(pc_includedir "${pc_includedir}" REALPATH)
get_filename_component(want_includedir "${prefix}/include" REALPATH)
if(NOT pc_includedir STREQUAL want_includedir)
  message(FATAL_ERROR
    "install test: the installed adasplash-cl.pc points at includedir=${pc_includedir}, not at "
    "the install prefix (${want_includedir}). The .pc file is not relocatable: its prefix is "
    "fixed at configure time (CMAKE_INSTALL_PREFIX) and `cmake --install --prefix` does not "
    "change it. Fix: generate `prefix=\${pcfiledir}/<relative path to the prefix>` in "
    "cmake/adasplash-cl.pc.in (see the foundation report).")
endif()
step(pkg_config COMMAND "${CMAKE_COMMAND}" -E env "${pc_env}" "${PKG_CONFIG_EXECUTABLE}" --cflags
     --libs adasplash-cl)
string(STRIP "${pkg_config_OUTPUT}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
set(pc_exe "${WORK_DIR}/consumer-pkgconfig")
step(compile_pkg_config_consumer COMMAND "${C_COMPILER}" -std=c11
     "${SOURCE_DIR}/tests/install/consumer.c" ${pc_flags} -o "${pc_exe}")

# ---- 4. run both ------------------------------------------------------------------------------
run_program("consumer (find_package)" "${cmake_exe}")
run_program("consumer (pkg-config)" "${pc_exe}")
message(STATUS "install test: PASSED")
