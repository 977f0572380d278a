#!/usr/bin/env bash
# The test command: sets up the machine (once), builds everything, runs every test project.
set -uo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh || exit 1
out=$(mktemp)
dotnet test Rlhf.sln -c Release -nologo --tl:off 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# One plain closing line over all projects: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1));
       if ($i == "Passed:") p += $(i+1); if ($i == "Failed:") f += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "Total: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
rm -f "$out"
exit "$rc"
