#!/usr/bin/env bash
# The main command: sets up the machine (once), builds the rlhf program when its sources changed, and runs it.
# With no arguments it runs the main job: `rlhf quickstart` (SFT → reward model → online DPO → gold evaluation).
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh
dll=src/Rlhf.Cli/bin/Release/net10.0/rlhf.dll
# Skip even the up-to-date check of dotnet build (seconds) when nothing it reads is newer than the program.
if [ ! -f "$dll" ] || [ -n "$(find src native configs/schema Directory.Build.props Directory.Packages.props global.json \
      -newer "$dll" -type f -not -path '*/bin/*' -not -path '*/obj/*' -not -path 'native/build*' -print -quit 2>/dev/null)" ]; then
  log=$(mktemp)
  if ! dotnet build src/Rlhf.Cli/Rlhf.Cli.csproj -c Release -nologo -v q --tl:off >"$log" 2>&1; then
    grep -E "error|Error" "$log" | sort -u >&2 || cat "$log" >&2
    echo "rlhf.sh: build failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$dll"
fi
if [ $# -eq 0 ]; then set -- quickstart; fi
exec dotnet "$dll" "$@"
