#!/usr/bin/env bash
# `make demo`: build the example's image, train it in a hermetic container, push the image to
# the local registry, reproduce the run and prove it bit-for-bit identical, then show where the
# run directory and its model card are. Called by the Makefile after docker/engine.sh, with
# REPRISE_BASE_IMAGE set.
set -euo pipefail
cd "$(dirname "$0")/spiral"
reprise() { ../../.venv/bin/reprise "$@"; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
registry="${REPRISE_DEMO_REGISTRY:-127.0.0.1:5000/demo}"

echo "== reprise build (the first time about a minute; then reused, no build call)" >&2
reprise build
echo "== reprise run" >&2
run_json=$(reprise run --json) || { echo "the run failed" >&2; exit 1; }
run_id=$(field run_id <<<"$run_json")
run_dir="$PWD/runs/spiral/$run_id"
echo "== reprise push $run_id --registry $registry" >&2
reprise push "$run_id" --registry "$registry"
echo "== reprise reproduce $run_id" >&2
verdict_json=$(reprise reproduce "$run_id" --json) || true
verdict=$(field verdict <<<"$verdict_json")
echo
echo "run         $run_id"
echo "directory   $run_dir"
echo "model card  $run_dir/model_card.md"
echo "rerun       $(field rerun_dir <<<"$verdict_json")"
echo "verdict     $verdict"
[ "$verdict" = identical ]
