#!/usr/bin/env bash
# One prepared run on a lent GPU machine: build for sm_90, run the CUDA tests, run the GPU
# benchmarks, print a short roofline table. Usage (repo root): bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Budget (device tool: one command <= 10 min, at most 8 files back from $OUT): build (not bounded
# here; sm_90 only, 16 jobs), CUDA tests <= 120 s, training steps <= 120 s, benchmarks <= 225 s in five pytest runs (one per
# file, each with its own timeout, so that one slow file loses only its own cases: on the timeout
# pytest gets SIGINT and still writes its JSON), then the table. Give the call timeout_s >= 600 (it needs about 7 minutes).
# Environment (defaults in brackets): GPU_CHECK_STAGES [tests train bench profile] picks stages after the
# build; GPU_CHECK_BENCHES [weighted_ce:60 pint:70 metrics:40 morphology:30 elastic:25] the benchmark
# files and their limits; GPU_CHECK_K [cuda] their -k expression ("cuda or monai" also times MONAI's
# CPU path there, when a MONAI wheel travels in .whl/: carry it, it is installed first);
# GPU_PROFILE_CASES [weighted_ce pint other] the profile's case groups (read by gpu_profile.py).
# Stage "probe" (not in the default) builds and runs benchmarks/cuda_probe_pint.cu (thread-mapping
# variants of PINT's kernels beside the library's, finer part splits, the small operations around
# the passes and a last-block finish) before the package build, which it does not need:
# GPU_CHECK_STAGES=probe alone skips the build.
# Stage "train" runs benchmarks/gpu_train_steps.py: every method's training steps under
# torch.cuda.set_sync_debug_mode("error"), then a short fit; a failure sets the exit status.
# Files left in OUT: info.txt, build.log, tests.log, train.txt, bench.log, bench.json, roofline.txt, profile.txt, probe.txt.
# Exit status: non-zero when the build fails, when a CUDA test fails (or the test stage times out),
# or when a benchmark's own correctness check fails; a benchmark file cut short by its time limit
# only loses its remaining cases. Every stage still runs, so the files come back either way.
# python -P: from the repo root, the source tree (no compiled _C) must not shadow the installed package;
# python -m pip / pytest: the image's bare `pip` belongs to another interpreter.
set -uo pipefail
status=0
out="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16
t0=$SECONDS
stage() { echo "== $1 (t=$((SECONDS - t0)) s)"; }
stage "device"
nvcc --version | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee "$out/info.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/info.txt"
stages="${GPU_CHECK_STAGES:-tests train bench profile}"
benches="${GPU_CHECK_BENCHES:-weighted_ce:60 pint:70 metrics:40 morphology:30 elastic:25}"
kexpr="${GPU_CHECK_K:-cuda}"
if [ -d .whl ]; then  # wheels the GPU image lacks (MONAI), carried by the call
  python -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
if [[ " $stages " == *" probe "* ]]; then
  stage "probe"
  nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -Icsrc benchmarks/cuda_probe_pint.cu -o /tmp/cuda_probe_pint \
    && timeout -k 5 120 /tmp/cuda_probe_pint 2>&1 | tee "$out/probe.txt"
  [[ "$stages" == "probe" ]] && { stage "done"; exit 0; }  # the probe's own output is the result
fi
stage "build"
NOISYSEG_CUDA_ARCHS=90 python -m pip install --no-build-isolation --no-deps . >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
cd python_tests
python -c "import noisyseg_ext, json; print(json.dumps(noisyseg_ext.build_info()))" | tee -a "$out/info.txt"
if [[ " $stages " == *" tests "* ]]; then
stage "CUDA tests"
# CUDA-parametrised tests only (the CPU ones ran in CI). No -x: a first run of kernels that never ran
# on a GPU should report every failure, not the first; the ops the issues measure come first, and
# pytest-xdist (in the GPU image) spreads them over 8 workers when it is there.
xdist=""; python -c "import xdist" 2>/dev/null && xdist="-n 8"
OMP_NUM_THREADS=2 timeout -s INT -k 15 120 python -m pytest -q $xdist --maxfail=40 -rfE --tb=short -k cuda -p no:cacheprovider \
  test_weighted_ce.py test_pint.py test_metrics.py test_distance_transform.py test_morphology.py \
  test_elastic.py test_noise.py test_ramps.py test_cli.py test_direct_calls.py >"$out/tests.log" 2>&1
tests_rc=$?
grep -E "^(FAILED|ERROR)|passed|failed" "$out/tests.log" | tail -25
if [ "$tests_rc" -ne 0 ]; then echo "CUDA tests FAILED (pytest exit status $tests_rc)"; status=1; fi
fi
cd ..
if [[ " $stages " == *" train "* ]]; then
stage "training steps under set_sync_debug_mode('error') (limit 120 s)"
# every method's Trainer steps on CUDA must not wait for the device (issue 14, section 8)
OMP_NUM_THREADS=2 timeout -s INT -k 10 120 python -P benchmarks/gpu_train_steps.py 2>&1 | tee "$out/train.txt"
train_rc=${PIPESTATUS[0]}
if [ "$train_rc" -ne 0 ]; then echo "training steps FAILED (exit status $train_rc)"; status=1; fi
fi
# GPU benchmarks: the "cuda" cases of every benchmark file. Per-file limits in seconds; JSON per
# file in a scratch folder, merged into bench.json.
json_dir="$(mktemp -d)"
: >"$out/bench.log"
[[ " $stages " == *" bench "* ]] || benches=""
for spec in $benches; do
  name="${spec%%:*}" limit="${spec##*:}"
  stage "benchmarks: $name (limit ${limit} s)"
  timeout -s INT -k 15 "$limit" python -P -m pytest "benchmarks/test_bench_$name.py" --benchmark-only -q -k "$kexpr" -p no:cacheprovider -rfEs \
    --benchmark-columns=median,iqr,rounds --benchmark-sort=name --benchmark-json="$json_dir/$name.json" 2>&1 \
    | tee -a "$out/bench.log" | grep -E "passed|failed|error|skipped|Error|Timeout|KeyboardInterrupt" | tail -5
  bench_rc=${PIPESTATUS[0]}
  # 1: a case failed its check; 2 (SIGINT from the timeout) and 5 (nothing selected) are not failures
  if [ "$bench_rc" -eq 1 ] || [ "$bench_rc" -eq 3 ] || [ "$bench_rc" -eq 4 ]; then
    echo "benchmarks $name FAILED (pytest exit status $bench_rc)"; status=1
  fi
done
stage "roofline table"
python -P benchmarks/roofline.py "$json_dir"/*.json --save-merged "$out/bench.json" 2>&1 | tee "$out/roofline.txt"
if [[ " $stages " == *" profile "* ]]; then
  stage "device time profile (limit 90 s)"
  timeout -s INT -k 10 90 python -P benchmarks/gpu_profile.py 2>&1 | tee "$out/profile.txt"
fi
stage "done (exit status $status)"
exit "$status"
