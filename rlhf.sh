#!/usr/bin/env bash
# The main command: sets up the machine (once), builds, and runs the rlhf CLI.
# With no arguments it runs the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh
log=$(mktemp)
if ! dotnet build src/Rlhf.Shell/Rlhf.Shell.csproj -c Release -nologo -v q --tl:off >"$log" 2>&1; then
  grep -E "error|Error" "$log" | sort -u >&2 || cat "$log" >&2
  echo "rlhf.sh: build failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
exec dotnet src/Rlhf.Shell/bin/Release/net10.0/rlhf.dll "$@"
