#!/usr/bin/env bash
# Is this GPU ready for the harness? On one GPU in under 10 minutes: the CUDA-marked tests, then
# `python -m harness gpu-check` (a few hundred AMP fp16 steps of every learned method, torch.compile parity against
# eager, full-size DIAS evaluation cached vs uncached, peak memory) → results/bench/<device>.json.
#
#   scripts/gpu-check.sh                                  # cuda, 300 steps per method
#   scripts/gpu-check.sh --device cpu --steps 3 --compile-backend eager --eval-images 2 --batch-size 4
#                                                         # the CPU path (tests/test_gpu_check.py runs it)
# Other options: python -m harness gpu-check --help. Exit status non-zero if a test or a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py
exec "$PYTHON" -m harness gpu-check "$@"
