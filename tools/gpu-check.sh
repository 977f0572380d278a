#!/usr/bin/env bash
# GPU check in two phases, so that one short run on a lent GPU machine (no .NET, no network there) does it all.
#
#   tools/gpu-check.sh prepare   # here: publishes the CLI and the bench self-contained for linux-x64 into
#                                # shared/gpu-check/ (compressed; the .NET runtime travels inside, < 64 MiB)
#   tools/gpu-check.sh device    # there (run tool, carry shared/gpu-check): builds native/ against the image's
#                                # libtorch (RLHF_TORCH_PREFIX from torch.utils.cmake_prefix_path), then runs
#                                # `rlhf doctor` and the bench suites and writes $OUT/gpu-check.md (one table).
#
# Known gaps (see the report of the perf branch): the xunit v2 test assemblies need a test host that is not in the
# device image, and the models/generation suites have no device or bf16 option yet, so the device phase runs what
# exists (doctor on cuda's libtorch, binding suite, models and generation suites on the CPU side of that libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=shared/gpu-check

prepare() {
  rm -rf "$STAGE" && mkdir -p "$STAGE"
  local tmp; tmp=$(mktemp -d)
  for proj in src/Rlhf.Cli bench/Rlhf.Bench; do
    RLHF_SKIP_NATIVE=1 dotnet publish "$proj" -c Release -r linux-x64 --self-contained -nologo -v q --tl:off \
      -p:PublishTrimmed=false -p:DebugType=none -o "$tmp/app"
  done
  tar -C "$tmp" -cJf "$STAGE/app.tar.xz" app
  rm -rf "$tmp"
  local size; size=$(du -m "$STAGE/app.tar.xz" | cut -f1)
  echo "prepared $STAGE/app.tar.xz (${size} MiB; the run tool carries at most 64 MiB in all)"
  [ "$size" -lt 60 ] || { echo "too large to carry" >&2; exit 1; }
}

device() {
  local out=${OUT:-/tmp/gpu-check-out}; mkdir -p "$out"
  local prefix; prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  echo "libtorch prefix: $prefix"
  cmake -S native -B native/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > "$out/cmake.log" 2>&1
  cmake --build native/build-gpu -j 16 >> "$out/cmake.log" 2>&1 || { tail -50 "$out/cmake.log"; exit 1; }
  local app; app=$(mktemp -d); tar -C "$app" -xJf "$STAGE/app.tar.xz"
  export RLHF_NATIVE_DIR="$PWD/native/build-gpu"
  export LD_LIBRARY_PATH="$prefix/../../lib:${LD_LIBRARY_PATH:-}"
  {
    echo "# GPU check ($(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
    echo; echo '```'
    "$app/app/rlhf" doctor 2>&1 || true
    for suite in binding "models --quick" "generation --prompts 16 --skip-static"; do
      echo "## bench $suite"; timeout 240 "$app/app/Rlhf.Bench" $suite 2>&1 || echo "(suite failed: $?)"
    done
    echo '```'
  } | tee "$out/gpu-check.md"
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: tools/gpu-check.sh prepare|device" >&2; exit 2 ;;
esac
