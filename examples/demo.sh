#!/usr/bin/env bash
# `make demo`: build the example's image, train it in a hermetic container, show the record.
# Called by the Makefile after docker/engine.sh, with REPRISE_BASE_IMAGE and REPRISE_CA_BUNDLE set.
set -euo pipefail
cd "$(dirname "$0")/spiral"
reprise() { ../../.venv/bin/reprise "$@"; }

echo "== reprise build (first time: about a minute; then reused)" >&2
reprise build
echo "== reprise run" >&2
run_json=$(reprise run --json)
run_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])' <<<"$run_json")
status=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' <<<"$run_json")
run_dir="$PWD/runs/spiral/$run_id"
echo
echo "run        $run_id"
echo "status     $status"
echo "directory  $run_dir"
echo "record     $run_dir/run.json"
echo "manifest   $run_dir/manifest.json"
[ "$status" = succeeded ]
