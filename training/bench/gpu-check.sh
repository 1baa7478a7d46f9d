#!/usr/bin/env bash
# Every figure of issue 14 on a lent GPU machine, in one go (python -m two_tower.bench gpu): prints them and,
# when $OUT is set, writes them as JSON to $OUT/gpu-bench.json. Run from the repository root or training/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
args=(-m two_tower.bench gpu --device cuda)
if [[ -n "${OUT:-}" ]]; then
  args+=(--json "$OUT/gpu-bench.json")
fi
timeout 470 "$PYTHON" "${args[@]}"
