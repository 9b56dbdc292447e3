#!/usr/bin/env bash
# Wall time of the main job from raw CSV (ingest included), after install.
# Usage: bash benchmarks/time_demo.sh   (run on an otherwise idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
rm -rf data/shards/tcga-mirna-rpm runs/bench-demo
start=$(date +%s.%N)
.venv/bin/spiking run --data-dir "${DATA:-../shared/data/tcga-mirna}" --run-name bench-demo --no-progress
end=$(date +%s.%N)
echo "demo wall seconds: $(echo "$end - $start" | bc)  ($(date -u +%F), $(nproc) cores, $(uname -m))"
