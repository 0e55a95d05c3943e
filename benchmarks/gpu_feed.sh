#!/usr/bin/env bash
# Issue 11's GPU numbers in one command, on the device machine (one H200, 16 cores, Python 3.12,
# torch with CUDA, no network): install the carried wheels, write a synthetic sample tree
# (`sunrgbd sample --scenes 320`, converted at 480x640), then `segtrain bench --model all` at
# batch 16 with default flags, plus `--compile`, `--augment-on device` and `--inputs rgbd` rows for unet.
# Results go to $OUT:
#   gpu_feed.md    the table for docs/performance.md ("Feeding the GPU"), with card, torch, date
#   gpu_feed.json  {"meta": ..., "results": [one bench result per row]}
#   gpu_feed.log   everything the steps printed, with each step's seconds
# Planned to finish in about 7½ minutes (each model < 40 s; compile ~1.5 min); each step has its
# own time limit, and the bench writes its JSON after every model, so a slow step loses only itself.
#
# Before the session, here: bash benchmarks/gpu_feed_prepare.sh   (fills .whl/; again after code changes)
# On the device:  run(command="bash benchmarks/gpu_feed.sh", carry=[".whl"], timeout_s=540)
# Smoke test here, on CPU, tiny: GPU_FEED_SMOKE=1 bash benchmarks/gpu_feed.sh
#   (64 scenes, 120x160, two small models, a few steps; the venv's python, the project wheel only)
# Knobs: GPU_FEED_STEPS, GPU_FEED_WARMUP, GPU_FEED_MODELS, GPU_FEED_WORKERS, GPU_FEED_WORK (the
# scratch folder for the sample tree; default /tmp/gpu_feed, emptied first), OUT.
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
if [[ "${GPU_FEED_SMOKE:-0}" == 1 ]]; then
    PY=${PY:-$REPO/.venv/bin/python}
    SCENES=64 SIZE=120x160 BATCH=4 DEVICE=cpu
    STEPS=${GPU_FEED_STEPS:-6} WARMUP=${GPU_FEED_WARMUP:-1} WINDOWS=3
    MODELS=${GPU_FEED_MODELS:-baseline,unet_small} COMPILE_MODEL=unet_small
    WORKERS=${GPU_FEED_WORKERS:-2} LIMIT_ALL=600 LIMIT_COMPILE=600
    OUT=${OUT:-$REPO/bench-out/gpu_feed}
else
    PY=${PY:-python3}
    SCENES=320 SIZE=480x640 BATCH=16 DEVICE=cuda
    STEPS=${GPU_FEED_STEPS:-100} WARMUP=${GPU_FEED_WARMUP:-20} WINDOWS=5
    MODELS=${GPU_FEED_MODELS:-all} COMPILE_MODEL=unet
    WORKERS=${GPU_FEED_WORKERS:-14} LIMIT_ALL=300 LIMIT_COMPILE=120
    OUT=${OUT:?OUT is set on the device machine; here use GPU_FEED_SMOKE=1}
fi
WORK=${GPU_FEED_WORK:-/tmp/gpu_feed}
mkdir -p "$OUT"
LOG="$OUT/gpu_feed.log"
: >"$LOG"
say() { echo "gpu_feed: $*" | tee -a "$LOG"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
step() {  # step NAME SECONDS COMMAND...: run it under a time limit, log its output and seconds
    local name=$1 limit=$2 t0 rc ms
    shift 2
    t0=$(now_ms)
    say "== $name: $*"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    ms=$(( $(now_ms) - t0 ))
    say "== $name: exit $rc after $(( ms / 1000 )).$(( ms % 1000 / 100 )) s"
    return $rc
}

# 1. the packages: every carried wheel on the device; here, only the project's (the venv has the rest)
if [[ -d "$WORK" && ! -e "$WORK/.gpu_feed" && -n "$(ls -A "$WORK")" ]]; then
    echo "gpu_feed: $WORK is not empty and not this script's scratch folder; set GPU_FEED_WORK" >&2
    exit 2
fi
SITE="$WORK/site"
rm -rf "$WORK"
mkdir -p "$SITE"
touch "$WORK/.gpu_feed"
if [[ "${GPU_FEED_SMOKE:-0}" == 1 ]]; then
    wheels=("$REPO"/.whl/sunrgbd_tools-*.whl)
else
    wheels=("$REPO"/.whl/*.whl)
fi
if [[ ! -e "${wheels[0]}" ]]; then
    say "no wheels in $REPO/.whl: run 'bash benchmarks/gpu_feed_prepare.sh' here first and carry .whl"
    exit 2
fi
step install 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${wheels[@]}" || exit 1
export PYTHONPATH="$SITE"
cd "$WORK"  # not the repository: the installed wheel (with its mappings) is what runs
# the two commands (arrays, not functions: `timeout` runs programs)
SUNRGBD=("$PY" -c 'import sys; from sunrgbd_tools.cli.main import main; sys.argv[0] = "sunrgbd"; main()')
SEGTRAIN=("$PY" -m segtrain)

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cores: $(nproc)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
        --format=csv,noheader | sed 's/^/gpu: /'
    "$PY" -c 'import sys, torch; print("python:", sys.version.split()[0]); print("torch:", torch.__version__,
              "cuda", torch.version.cuda)'
} | tee -a "$LOG" >"$WORK/meta.txt"

# 2. the data: the tree issue 11 measured on
step sample 120 "${SUNRGBD[@]}" sample --out "$WORK/raw" --scenes "$SCENES" --workers "$WORKERS" || exit 1
step convert 120 "${SUNRGBD[@]}" convert --src "$WORK/raw" --out "$WORK/clean" --size "$SIZE" --workers "$WORKERS" || exit 1

# 3. the bench: every model with default flags, then unet compiled, then unet augmenting on the GPU
common=(--data "$WORK/clean" --size "$SIZE" --batch-size "$BATCH" --device "$DEVICE" --workers "$WORKERS"
        --steps "$STEPS" --warmup "$WARMUP" --windows "$WINDOWS")
step "bench $MODELS" "$LIMIT_ALL" "${SEGTRAIN[@]}" bench --model "$MODELS" "${common[@]}" --json-out "$OUT/bench_all.json"
step "bench $COMPILE_MODEL --compile" "$LIMIT_COMPILE" "${SEGTRAIN[@]}" bench --model "$COMPILE_MODEL" --compile \
    "${common[@]}" --json-out "$OUT/bench_compile.json"
# augmentation batched on the GPU instead of the workers: should it be the CUDA default?
step "bench $COMPILE_MODEL --augment-on device" "$LIMIT_COMPILE" "${SEGTRAIN[@]}" bench --model "$COMPILE_MODEL" \
    --augment-on device "${common[@]}" --json-out "$OUT/bench_devaug.json"
# RGB-D (issue 14): the same model reading the depth PNGs too, early fusion
step "bench $COMPILE_MODEL --inputs rgbd" "$LIMIT_COMPILE" "${SEGTRAIN[@]}" bench --model "$COMPILE_MODEL" \
    --inputs rgbd "${common[@]}" --json-out "$OUT/bench_rgbd.json"

# 4. one table and one JSON of whatever was measured
"$PY" - "$OUT" "$WORK/meta.txt" <<'EOF' 2>&1 | tee -a "$LOG"
import json
import sys
from pathlib import Path

from segtrain.bench import markdown_table

out, meta_file = Path(sys.argv[1]), Path(sys.argv[2])
meta = dict(line.split(": ", 1) for line in meta_file.read_text().splitlines() if ": " in line)
results = []
for name in ("bench_all.json", "bench_compile.json", "bench_devaug.json", "bench_rgbd.json"):
    f = out / name
    if f.is_file():
        data = json.loads(f.read_text())
        results += data if isinstance(data, list) else [data]
(out / "gpu_feed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
text = "".join(f"{k}: {v}  \n" for k, v in meta.items()) + "\n" + markdown_table(results)
(out / "gpu_feed.md").write_text(text)
print(text)
print(f"gpu_feed: {len(results)} rows in {out / 'gpu_feed.md'} and gpu_feed.json")
EOF
