#!/usr/bin/env bash
# `make demo`: build the example's image, train it in a hermetic container, reproduce the run
# and prove it bit-for-bit identical, then show where everything is.
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
[ "$status" = succeeded ] || { echo "the run did not succeed: $run_dir/FAILED" >&2; exit 1; }
echo "== reprise reproduce $run_id" >&2
verdict_json=$(reprise reproduce "$run_id" --json) || true
verdict=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["verdict"])' <<<"$verdict_json")
rerun_dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["rerun_dir"])' <<<"$verdict_json")
echo
echo "run        $run_id ($status)"
echo "directory  $run_dir"
echo "record     $run_dir/run.json"
echo "manifest   $run_dir/manifest.json"
echo "rerun      $rerun_dir"
echo "verdict    $verdict"
[ "$verdict" = identical ]
