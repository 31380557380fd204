#!/usr/bin/env bash
# install-deps.sh - installs what building, testing and benchmarking adasplash-cl needs on Debian:
# compiler and CMake, the OpenCL headers and ICD loader, PoCL (a CPU OpenCL device for machines
# without a GPU), CLBlast (dense baseline), oclgrind (kernel checking), clinfo, clang-format,
# gnuplot and jq (plots), MPI and the ssh client Open MPI's launcher looks for (the
# sequence-parallel example), clang's sanitizer and libFuzzer runtimes (libclang-rt-14-dev, only a
# Recommends of clang; scripts/ci/fuzz.sh). Used by scripts/setup/quickstart.sh and .ci/run.
# Needs root or sudo.
set -euo pipefail
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo > /dev/null 2>&1 || { echo "install-deps.sh: need root or sudo" >&2; exit 1; }
  SUDO=(sudo)
fi
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  build-essential cmake pkg-config pocl-opencl-icd ocl-icd-opencl-dev opencl-c-headers \
  libclblast-dev oclgrind clinfo clang clang-format gnuplot-nox jq \
  libclang-rt-14-dev mpi-default-dev mpi-default-bin openssh-client
