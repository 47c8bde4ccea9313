#!/usr/bin/env bash
# One prepared GPU check that fits a short device call (about 8 minutes on one GPU): installs the gpu extra
# when an index is reachable (the device machine may have none: then what is installed is used), checks the
# emulator on torch-CUDA against the CPU path, and prints cells/s for a 256^3 cube of snapshot-like states in
# fp32 and with TF32 matmuls (and their accuracy cost). Results go to $OUT (or benchmarks/results/gpu).
# Run: bash benchmarks/gpu/run.sh            (from the repository root)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
PY="${PY:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv && .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch 2>&1 | tail -1
  .venv/bin/python -m pip install -q -e . 2>&1 | tail -1
fi
.venv/bin/python -m pip install -q -e ".[gpu]" 2>&1 | tail -1 || echo "gpu extra not installed (no index reachable)"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 450 .venv/bin/python benchmarks/gpu/gpu_check.py --out "$OUT" 2>&1 | tee "$OUT/gpu_check.log"
