#!/usr/bin/env bash
# One table, measured side by side in one run: `bench/run.sh [--quick]` (see bench/Rlhf.Bench/Suites/AllBench.cs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec dotnet run -c Release --project bench/Rlhf.Bench -- all "$@"
