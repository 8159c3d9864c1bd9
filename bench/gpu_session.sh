#!/usr/bin/env bash
# Every check that needs a GPU, in one bounded run on the device machine (an NVIDIA H200 or
# H100, Python 3.12 with torch, no network): the full `hpcx probe`, bench/gpu_copy.py (pinned
# H2D/D2H against torch, % of the link's theory), the native suite against the real driver,
# and the ViT studies (numa-study, scaling-study) on `cuda` through the local executor.
#
#     bash bench/gpu_wheels.sh                       # here, once: the wheels the image lacks
#     device run, carry [".whl"], timeout_s 600:   bash bench/gpu_session.sh
#
# Each step has its own time limit and writes its output under $OUT (or ./gpu-out), so a step
# that fails or runs long leaves the others' figures; the whole fits in about 9 minutes.
# The exit status is the number of steps that failed.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
failed=0
log() { printf '== %s  %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$out/session.txt"; }
step() {  # step NAME SECONDS CMD...: run CMD with a limit, output to $out/NAME.txt
  local name=$1 limit=$2; shift 2
  log "$name (limit ${limit}s): $*"
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.txt" 2>&1 || rc=$?
  log "$name: exit $rc after $((SECONDS - t0)) s"
  tail -n 25 "$out/$name.txt"
  [ "$rc" = 0 ] || failed=$((failed + 1))
}

export PYTHONUNBUFFERED=1 HPCX_GPU=1
log "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
  --format=csv | tee -a "$out/session.txt"

# 1. What the image lacks, from carried wheels; the native module built here for this Python.
if compgen -G ".whl/*.whl" > /dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { log "wheels failed to install"; exit 99; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step build 180 bash -c "cmake -S . -B /tmp/hpcx-build -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR=\$($py -m pybind11 --cmakedir) -DPython_EXECUTABLE=$(command -v "$py") \
  && cmake --build /tmp/hpcx-build -j 8 && cp /tmp/hpcx-build/_native*.so hpcx/"

# 2. The full probe: topology, GPU-NUMA affinity, PCIe links, CPU and GPU copy bandwidth.
step probe 120 "$py" -c 'from hpcx.cli import main; main()' probe --json
step probe_text 120 "$py" -c 'from hpcx.cli import main; main()' probe

# 3. Pinned copies against torch and against the link's theoretical figure.
step gpu_copy 150 "$py" bench/gpu_copy.py --sizes 16M,64M,256M --samples 20

# 4. The native suite, the real-driver tests (marked gpu) included.
step native 150 "$py" -m pytest -q -p no:cacheprovider tests/native

# 5. The ViT studies on cuda, through the local executor, one GPU: every placement on GPU 0
#    and NUMA node 0, 1,000 samples a run; then the report of what they measured.
proj=$(mktemp -d /tmp/hpcx-gpu-XXXX)
cp -r manifests "$proj/" && git -C "$proj" init -q
step vit_studies 240 bash -c "cd $proj && $py -c 'from hpcx.cli import main; main()' apply \
  manifests/numa_study.yaml manifests/scaling_study.yaml --yes \
  --set resources.gpus=1 --set resources.cpus=8 --set resources.memory=32G \
  --set 'sweep.grid.placement.gpus=[[0]]' --set 'sweep.grid.placement.numa=[0]' \
  --set num_samples=1000"
step vit_results 60 bash -c "cd $proj && $py -c 'from hpcx.cli import main; main()' query \
  \"select experiment, status, count(*) as runs from runs group by all order by all\" && \
  $py -c 'from hpcx.cli import main; main()' export $out/vit_results.csv && \
  $py -c 'from hpcx.cli import main; main()' report -o $out/vit_report.html"

log "done: $failed step(s) failed"
exit "$failed"
