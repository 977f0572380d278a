#!/usr/bin/env bash
# Installs what Rlhf needs from Debian's packages, idempotently; silent when everything is present.
#   libtorch-dev          libtorch 1.13.1 (CPU) headers + libraries, with c10d Gloo compiled in
#   libgloo-dev           gloo headers that c10d's ProcessGroupGloo.hpp includes (libtorch-dev omits them)
#   libopenblas0-pthread  libtorch's BLAS; the reference BLAS Debian selects otherwise is ~30x slower on matmul
#   libopenblas0-openmp   optional: OpenBLAS's OpenMP build, which the shim links ahead of libtorch's libblas.so.3
#                         so that matmuls run on libtorch's own thread pool and follow each thread's thread count
#                         (see native/CMakeLists.txt; without it the shim uses the pthread build); installing it
#                         leaves the libblas.so.3 alternative on the pthread build
#   cmake, g++            to build the native shim (native/)
#   ccache                optional: CMake compiles through it when present, so rebuilding the shim after a checkout
#                         or a branch switch takes seconds; without it (no root, no network) the build just runs
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

need=(libtorch-dev libgloo-dev libopenblas0-pthread cmake g++)
optional=(libopenblas0-openmp ccache)
missing=()
for p in "${need[@]}"; do installed "$p" || missing+=("$p"); done
optional_missing=()
for p in "${optional[@]}"; do installed "$p" || optional_missing+=("$p"); done

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: missing ${missing[*]}, and this machine has no apt-get." >&2
    echo "bootstrap: install libtorch 1.13 (with Gloo), OpenBLAS, cmake and g++ by hand, then re-run." >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "bootstrap: missing ${missing[*]}; installing needs root. Run as root or: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "bootstrap: installing ${missing[*]} ${optional_missing[*]} (apt, once)..." >&2
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" "${optional_missing[@]}"; } >"$log" 2>&1; then
    echo "bootstrap: apt-get failed; its last lines:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  rm -f "$log"
elif ((${#optional_missing[@]})); then
  # Only optional packages are missing: try once per machine, silently, and never fail because of them.
  stamp="${XDG_CACHE_HOME:-$HOME/.cache}/rlhf/bootstrap-optional-tried-$(IFS=-; echo "${optional_missing[*]}")"
  if [ ! -e "$stamp" ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${optional_missing[@]}"; } >/dev/null 2>&1 || true
    mkdir -p "$(dirname "$stamp")" 2>/dev/null && touch "$stamp" 2>/dev/null || true
  fi
fi

# libtorch must pick OpenBLAS through the libblas.so.3 alternative (installing OpenBLAS selects it at priority 100).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [ -n "$blas" ] && [[ "$blas" != *openblas* ]]; then
  echo "bootstrap: warning: libblas.so.3 -> $blas (reference BLAS, ~30x slower)." >&2
  echo "bootstrap: select OpenBLAS: update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" >&2
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "bootstrap: the .NET SDK (dotnet, 10.0) is not on PATH; install it first." >&2
  exit 1
fi
