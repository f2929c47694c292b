#!/usr/bin/env bash
# The GPU path, checked in one prepared run on a lent GPU machine (no network, its own torch).
#
#   here, first:   benchmarks/gpu_check.sh --prepare    # copies the CIFAR-10 tarball and two shared models
#                                                       # (about 30 MB) into .gpu-inputs/ (ignored by git)
#   on the GPU:    bash benchmarks/gpu_check.sh         # with .gpu-inputs carried beside the working tree
#
# Each step runs under its own timeout and the JSON summary is rewritten after every step, so a cut-off
# run still says how far it got: $OUT/gpu_check.json when $OUT is set (the device tool's output folder),
# else benchmarks/results/gpu_check.json; each step's full output goes to gpu_check_logs/ beside it.
# DEVICE=cpu runs the same steps on the CPU (to try the script itself; the CUDA tests then skip).
set -uo pipefail
cd "$(dirname "$0")/.."
INPUTS=.gpu-inputs
case "${1:-}" in
    ""|--prepare) ;;
    *) echo "gpu_check.sh: error: unknown argument ${1} (give --prepare, or nothing to run the check)" >&2; exit 1 ;;
esac
if [[ "${1:-}" == "--prepare" ]]; then
    SHARED=${SHARED:-../shared}
    for needed in "$SHARED/data/cifar10/cifar10-jpeg-q75.tar.gz" "$SHARED/models/resnet18-w0.25-deployed80" \
                  "$SHARED/models/resnet18-w0.25-converged"; do
        if [[ ! -e "$needed" ]]; then
            echo "gpu_check.sh: error: $needed is missing; set SHARED to the shared folder (default ../shared)" >&2
            exit 1
        fi
    done
    mkdir -p "$INPUTS/data/cifar10" "$INPUTS/models"
    cp "$SHARED/data/cifar10/cifar10-jpeg-q75.tar.gz" "$INPUTS/data/cifar10/"
    cp -r "$SHARED/models/resnet18-w0.25-deployed80" "$SHARED/models/resnet18-w0.25-converged" "$INPUTS/models/"
    du -sh "$INPUTS"
    exit 0
fi
DEVICE=${DEVICE:-cuda}
RESULTS=${OUT:-benchmarks/results}
SUMMARY="$RESULTS/gpu_check.json"
LOGS="$RESULTS/gpu_check_logs"
WORK=$(mktemp -d)
mkdir -p "$LOGS"
export ARCHREPAIR_DATA_DIR=$PWD/$INPUTS/data ARCHREPAIR_MODELS_DIR=$PWD/$INPUTS/models
export ARCHREPAIR_CACHE_DIR=$WORK/cache PYTHONUNBUFFERED=1
MODEL=$ARCHREPAIR_MODELS_DIR/resnet18-w0.25-deployed80
DATA=imagefolder:$ARCHREPAIR_DATA_DIR/cifar10/cifar10-jpeg-q75.tar.gz
REPAIR=(repair "$MODEL" --data "$DATA" --method archrepair --train-examples 5000 --count 500
        --search-epochs 2 --warmup-epochs 1 --finetune-epochs 2 --device "$DEVICE" --quiet --json)
echo '{"device": "'"$DEVICE"'", "steps": []}' > "$SUMMARY"

# step NAME SECONDS COMMAND...: run it, then add {name, exit, seconds, result} to the summary (result:
# the last output line when it is JSON, trimmed to the figures worth keeping; else the last lines)
step() {
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local status=$?
    python3 - "$SUMMARY" "$name" "$status" "$((SECONDS - started))" "$LOGS/$name.log" <<'PY'
import json, sys
summary, name, status, seconds, log = sys.argv[1:]
lines = open(log, errors="replace").read().splitlines()
try:
    result = json.loads(lines[-1])
except (IndexError, ValueError):
    result = {"tail": lines[-8:]}
if isinstance(result, dict) and "phase_seconds" in result:  # a repair's report: its headline figures
    held = (result.get("judged", {}).get("returned") or {}).get("holdout") or {}
    result = {key: result.get(key) for key in ("kept", "total_seconds", "phase_seconds", "prefix_cache",
                                                "environment", "distributed")} | {
        "amp": result["task"]["amp"], "channels_last": result["task"]["channels_last"],
        "holdout_change_points": held.get("change_points"), "val_accuracy_repaired": result.get("val_accuracy_repaired")}
record = json.load(open(summary))
record["steps"].append({"name": name, "exit": int(status), "timed_out": status in ("124", "137"),
                        "seconds": int(seconds), "result": result})
with open(summary + ".tmp", "w") as out:
    json.dump(record, out, indent=1)
import os
os.replace(summary + ".tmp", summary)
PY
    echo "gpu_check: $name exit $status after $((SECONDS - started)) s"
}

step install 120 pip install --no-deps --no-build-isolation -e .
step environment 60 python3 -c '
import importlib.util, json, torch
missing = [m for m in ("numpy", "scipy", "safetensors", "tqdm", "rich", "matplotlib", "sklearn", "PIL")
           if importlib.util.find_spec(m) is None]
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(),
                  "name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "missing_modules": missing}))'
step cuda-tests 180 python3 -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider
step repair 150 python3 -m archrepair "${REPAIR[@]}" --out "$WORK/repair"
step repair-amp 120 python3 -m archrepair "${REPAIR[@]}" --amp --out "$WORK/repair-amp"
step repair-channels-last 120 python3 -m archrepair "${REPAIR[@]}" --channels-last --out "$WORK/repair-cl"
step step-cost 120 python3 benchmarks/step_cost.py --device "$DEVICE" --steps 5
step localize-cost 150 python3 benchmarks/localize_cost.py --device "$DEVICE" --repeats 2
# two processes on the one GPU: gloo (NCCL needs a GPU per process)
step torchrun-2 180 python3 -m torch.distributed.run --standalone --nproc-per-node=2 -m archrepair "${REPAIR[@]}" \
    --out "$WORK/repair-2"
rm -rf "$WORK"
cat "$SUMMARY"
