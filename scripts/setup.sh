#!/bin/sh
# Install what is missing (Debian 12, as root or with sudo), then configure
# and build hiercl into ./build. Safe to run again: it installs nothing twice.
# OpenMPI builds the MPI sweeps (HCL_MPI); the Slurm and munge packages let
# tests/test_slurm.c start a private single-node Slurm (no service is set up).
set -eu
cd "$(dirname "$0")/.."
pkgs="build-essential cmake ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd \
libiniparser-dev libcmocka-dev clinfo python3-matplotlib clblast-utils \
libopenmpi-dev openmpi-bin slurmctld slurmd slurm-client munge"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
fi
# HCL_CMAKE_ARGS: the name before HIERCL_CMAKE_ARGS, still read
if [ -z "${HIERCL_CMAKE_ARGS:-}" ] && [ -n "${HCL_CMAKE_ARGS:-}" ]; then
  echo "setup: warning: HCL_CMAKE_ARGS is deprecated; set HIERCL_CMAKE_ARGS instead" >&2
  HIERCL_CMAKE_ARGS="$HCL_CMAKE_ARGS"
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${HIERCL_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
