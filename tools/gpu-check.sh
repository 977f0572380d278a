#!/usr/bin/env bash
# GPU check in two phases, so that one short run on a lent GPU machine (no .NET, no network there) does it all.
#
#   tools/gpu-check.sh prepare   # here: publishes the CLI, the bench and the test runner self-contained for linux-x64
#                                # (the .NET runtime travels inside) and the binding's test assembly into
#                                # shared/gpu-check/app.tar.xz (< 64 MiB, what the run tool carries)
#   tools/gpu-check.sh device    # there (run tool, carry shared/gpu-check): builds native/ against the image's PyTorch
#                                # libtorch (prefix from torch.utils.cmake_prefix_path, nccl.h from the nvidia-nccl
#                                # wheel), then runs, each under its own time limit and going on when one fails:
#                                #   1. rlhf doctor
#                                #   2. the binding tests (rlhf-testrunner, xunit's engine) on the CPU of that libtorch,
#                                #      then with RLHF_DEFAULT_DEVICE=cuda:0 (every tensor made without a device on the GPU)
#                                #   3. bench `gpu`: matmul peaks, GPU-vs-CPU parity, bf16 training steps, paged
#                                #      generation vs static batch, a single-rank NCCL group
#                                #   4. the PyTorch eager peer of those training steps (bench/peers/gpu_pytorch.py)
#                                #   5. `rlhf quickstart --quick`, then the whole default quickstart (training.device auto → cuda)
#                                # and writes $OUT/gpu-check.md (the tables) and $OUT/gpu-check.log (everything).
#   tools/gpu-check.sh device-tests  # there: the binding tests on cuda:0 only, one process per test class
#   tools/gpu-check.sh local     # here, no GPU: the device phase's steps against the staged app and this machine's
#                                # shim, on the CPU — checks the script and the staging up to the point that needs a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=shared/gpu-check

prepare() {
  set -e
  rm -rf "$STAGE" && mkdir -p "$STAGE"
  local tmp; tmp=$(mktemp -d)
  for proj in src/Rlhf.Cli bench/Rlhf.Bench tests/Rlhf.TestRunner; do
    RLHF_SKIP_NATIVE=1 dotnet publish "$proj" -c Release -r linux-x64 --self-contained -nologo -v q --tl:off \
      -p:PublishTrimmed=false -p:DebugType=none -o "$tmp/app"
  done
  # The binding's tests, framework-dependent (the runner's runtime runs them); no VSTest host, no CPU shim.
  dotnet publish tests/Rlhf.Torch.Tests -c Release -nologo -v q --tl:off -p:DebugType=none -o "$tmp/app/tests/torch" >/dev/null
  find "$tmp/app" \( -name 'librlhf_torch.so' -o -name 'Microsoft.TestPlatform.*' -o -name 'Microsoft.VisualStudio.*' \
    -o -name 'testhost*' -o -name 'xunit.runner.visualstudio*' \) -delete
  find "$tmp/app/tests" -mindepth 2 -maxdepth 2 -type d -exec rm -rf {} +   # satellite resource folders
  tar -C "$tmp" -cJf "$STAGE/app.tar.xz" app
  rm -rf "$tmp"
  local size; size=$(du -m "$STAGE/app.tar.xz" | cut -f1)
  echo "prepared $STAGE/app.tar.xz (${size} MiB; the run tool carries at most 64 MiB with the working tree)"
  [ "$size" -lt 56 ] || { echo "too large to carry" >&2; exit 1; }
}

# Step runner: a heading, the command under a time limit, its status in the summary; never stops the script.
SUMMARY=()
step() {
  local name=$1 limit=$2; shift 2
  echo; echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  SUMMARY+=("| $name | $([ $rc -eq 0 ] && echo ok || echo "exit $rc") | $((SECONDS - t0)) s |")
  return 0
}

build_shim() {
  local prefix=$1 nccl=$2 std
  for std in "" 17; do
    echo "=== native shim against $prefix ${std:+(C++$std)}"
    rm -rf native/build-gpu
    if cmake -S native -B native/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
         ${nccl:+-DNCCL_INCLUDE_DIR="$nccl"} ${std:+-DRLHF_CXX_STANDARD=$std} > "$OUTDIR/cmake.log" 2>&1 &&
       cmake --build native/build-gpu -j "$(nproc)" -- -k 0 >> "$OUTDIR/cmake.log" 2>&1; then
      grep -E "rlhf_torch:" "$OUTDIR/cmake.log"
      return 0
    fi
    grep -E "rlhf_torch:|error|Error" "$OUTDIR/cmake.log" | head -60
  done
  return 1
}

run_checks() {   # $1: app folder, $2: device for the bench (cuda:0 or cpu)
  local app=$1 dev=$2
  step "rlhf doctor" 120 "$app/rlhf" doctor
  step "binding tests, libtorch's CPU" 150 "$app/rlhf-testrunner" --report "$OUTDIR/tests-cpu.md" "$app/tests/torch/Rlhf.Torch.Tests.dll"
  if [ "$dev" != cpu ]; then
    # Index_select_and_gather asserts that an out-of-range index throws: on CUDA that is a device-side assert, which
    # (as in PyTorch) leaves the CUDA context unusable for every later test, so it runs in the CPU pass only.
    step "binding tests, default device $dev" 150 \
      env RLHF_DEFAULT_DEVICE="$dev" "$app/rlhf-testrunner" --exclude Index_select_and_gather --report "$OUTDIR/tests-cuda.md" "$app/tests/torch/Rlhf.Torch.Tests.dll"
  fi
  step "bench gpu ($dev, bf16)" 240 "$app/Rlhf.Bench" gpu --device "$dev" --report "$OUTDIR/bench-gpu.md"
  if [ "$dev" != cpu ]; then
    step "PyTorch eager peer" 150 bash -c 'cd bench/peers && PYTHONUNBUFFERED=1 python3 gpu_pytorch.py | tee "$0"' "$OUTDIR/peer-gpu.txt"
  fi
  step "rlhf quickstart --quick" 300 "$app/rlhf" quickstart --quick --quiet --output "$WORK/quickstart-quick"
  if [ "$dev" != cpu ]; then   # the whole default pipeline (./rlhf.sh) too: on a GPU it takes about as long as --quick on a CPU
    step "rlhf quickstart" 240 "$app/rlhf" quickstart --quiet --output "$WORK/quickstart"
    cp "$WORK/quickstart/summary.json" "$OUTDIR/quickstart-summary.json" 2>/dev/null || true
  fi
}

report() {
  {
    echo "# GPU check ($(date -u +%F), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo 'no GPU'))"
    echo; echo "| step | status | time |"; echo "|---|---|---|"; printf '%s\n' "${SUMMARY[@]}"
    for f in tests-cpu tests-cuda bench-gpu; do [ -f "$OUTDIR/$f.md" ] && { echo; echo "## $f"; echo; cat "$OUTDIR/$f.md"; }; done
    [ -f "$OUTDIR/peer-gpu.txt" ] && { echo; echo "## PyTorch eager peer"; echo; grep '^|' "$OUTDIR/peer-gpu.txt"; }
  } > "$OUTDIR/gpu-check.md"
  cat "$OUTDIR/gpu-check.md"
}

unpack() {
  WORK=$(mktemp -d)
  tar -C "$WORK" -xJf "$STAGE/app.tar.xz" || { echo "no staged app: run tools/gpu-check.sh prepare here first" >&2; exit 1; }
}

device() {
  OUTDIR=${OUT:-/tmp/gpu-check-out}; mkdir -p "$OUTDIR"
  exec > >(tee "$OUTDIR/gpu-check.log") 2>&1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  unpack
  local prefix nccl
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  echo "libtorch prefix: $prefix; nccl.h in: ${nccl:-(not found)}"
  build_shim "$prefix" "$nccl" || { echo "the shim did not build against this libtorch (errors above; full log cmake.log)"; exit 1; }
  export RLHF_NATIVE_DIR="$PWD/native/build-gpu"
  export LD_LIBRARY_PATH="$prefix/../../lib:${LD_LIBRARY_PATH:-}"
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0
  run_checks "$WORK/app" cuda:0
  report
}

# The binding tests on cuda:0 one test class per process: a device-side assert (an out-of-range index reaching a CUDA
# kernel) leaves that process's CUDA context unusable, so isolating classes keeps one such test from failing the rest.
device_tests() {
  OUTDIR=${OUT:-/tmp/gpu-check-out}; mkdir -p "$OUTDIR"
  exec > >(tee "$OUTDIR/gpu-tests.log") 2>&1
  unpack
  local prefix nccl
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
  build_shim "$prefix" "$nccl" || exit 1
  export RLHF_NATIVE_DIR="$PWD/native/build-gpu" LD_LIBRARY_PATH="$prefix/../../lib:${LD_LIBRARY_PATH:-}" RLHF_DEFAULT_DEVICE=cuda:0
  local app=$WORK/app c
  echo "| class | passed | failed | skipped | seconds |" > "$OUTDIR/tests-cuda-by-class.md"
  echo "|---|---|---|---|---|" >> "$OUTDIR/tests-cuda-by-class.md"
  for c in $(sed -n 's/^public \(sealed \)\?class \([A-Za-z]*Tests\).*/\2/p' tests/Rlhf.Torch.Tests/*.cs | sort -u); do
    timeout 60 "$app/rlhf-testrunner" --filter "Rlhf.Torch.Tests.$c." --report "$WORK/$c.md" \
      --exclude Index_select_and_gather --exclude Cross_entropy_matches_log_sum_exp_minus_target_logit \
      "$app/tests/torch/Rlhf.Torch.Tests.dll" || true
    [ -f "$WORK/$c.md" ] && sed -n 3p "$WORK/$c.md" | sed "s/| Rlhf.Torch.Tests |/| $c |/" >> "$OUTDIR/tests-cuda-by-class.md" \
      || echo "| $c | (crashed) | | | |" >> "$OUTDIR/tests-cuda-by-class.md"
    [ -f "$WORK/$c.md" ] && sed -n '/^Failed/,$p' "$WORK/$c.md" >> "$OUTDIR/tests-cuda-failures.md"
  done
  cat "$OUTDIR/tests-cuda-by-class.md"; cat "$OUTDIR/tests-cuda-failures.md" 2>/dev/null
}

local_check() {
  OUTDIR=/tmp/gpu-check-local; rm -rf "$OUTDIR"; mkdir -p "$OUTDIR"
  unpack
  export RLHF_NATIVE_DIR="$PWD/native/build"
  run_checks "$WORK/app" cpu
  report
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  device-tests) device_tests ;;
  local) local_check ;;
  *) echo "usage: tools/gpu-check.sh prepare|device|device-tests|local" >&2; exit 2 ;;
esac
