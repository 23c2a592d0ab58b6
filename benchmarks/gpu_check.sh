#!/usr/bin/env bash
# One prepared run on a lent GPU machine: build for sm_90, run the CUDA tests, run the GPU
# benchmarks, print a short table. Usage (repo root): bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
out="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
NOISYSEG_CUDA_ARCHS=90 pip install --no-build-isolation --no-deps . >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
cd python_tests
python -c "import noisyseg_ext, json; print(json.dumps(noisyseg_ext.build_info()))" | tee "$out/build_info.json"
# CUDA-parametrised tests only (the CPU ones ran in CI).
timeout 300 pytest -q -x -k cuda -p no:cacheprovider . 2>&1 | tee "$out/tests.log" | tail -15
cd ..
timeout 400 pytest benchmarks/ --benchmark-only -q -k cuda -p no:cacheprovider \
  --benchmark-columns=median,iqr,rounds --benchmark-sort=name --benchmark-json="$out/bench.json" 2>&1 \
  | tee "$out/bench.log" | grep -E "^test_|benchmark '" | tail -60
