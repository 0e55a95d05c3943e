#!/usr/bin/env bash
# `make demo`: the whole pipeline on a synthetic SUN RGB-D sample, on CPU, in a few minutes.
#
#   sunrgbd sample -> convert -> verify -> stats --weights -> segtrain run -> segtrain eval
#
# Everything goes under $DEMO_DIR (default demo/, git-ignored). Every step resumes or is a
# no-op on a re-run: sample and convert skip finished scenes, stats leaves an up-to-date
# tree alone, training continues an interrupted run (--resume) and does nothing when it is
# complete, eval rewrites only its own report folders. Nothing outside $DEMO_DIR is touched.
# The sample keeps its planted defects, so convert reports (and skips) the broken scenes.
#
# Knobs (environment): DEMO_DIR, DEMO_SCENES, DEMO_EPOCHS, VENV.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BIN="$VENV/bin"
DEMO=${DEMO_DIR:-demo}
SCENES=${DEMO_SCENES:-600}
EPOCHS=${DEMO_EPOCHS:-24}
export NO_ALBUMENTATIONS_UPDATE=1

for tool in sunrgbd segtrain; do
    if [[ ! -x "$BIN/$tool" ]]; then
        echo "demo: $BIN/$tool not found; run 'make setup' first (or set VENV)" >&2
        exit 2
    fi
done

mkdir -p "$DEMO"
TIMES=()
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
T_ALL=$(now_ms)

step() {  # step NAME COMMAND...: run it, echo it, and remember its wall-clock time
    local name=$1
    shift
    echo
    echo "== $name: $*"
    local t0
    t0=$(now_ms)
    "$@"
    TIMES+=("$(printf '%-10s %6s s' "$name" "$(secs "$t0")")")
}

# 1. A raw tree in the exact SUN RGB-D layout (kv2 images at 240x320 instead of 530x730 to
#    save time; 3% kv1 scenes are distractors that --subset kv2 leaves out).
step sample "$BIN/sunrgbd" sample --out "$DEMO/raw" --scenes "$SCENES" --seed 0 --size 240x320
# 2. Cityscapes-style tree at 120x160; the planted defects are reported and skipped.
step convert "$BIN/sunrgbd" convert --subset kv2 --src "$DEMO/raw" --out "$DEMO/clean" --size 120x160
step verify "$BIN/sunrgbd" verify "$DEMO/clean"
step stats "$BIN/sunrgbd" stats "$DEMO/clean" --weights --no-progress

# 3. A small U-Net on CPU. Re-running continues an interrupted run or finds it complete.
RUN="$DEMO/run-unet_small"
train_flags=(--data "$DEMO/clean" --out "$RUN" --device cpu --epochs "$EPOCHS"
             --batch-size 4 --lr 5e-3 --optimizer adam --scheduler poly --loss wce
             --augment none --early-stop 0 --seed 0)
if [[ -f "$RUN/last.pt" ]]; then
    train_flags+=(--resume)
fi
step train "$BIN/segtrain" run unet_small "${train_flags[@]}"

# 4. The report on the test split (never seen in training or model selection; best.pt's val
#    mIoU is in the training log and $RUN/metrics.csv).
step eval "$BIN/segtrain" eval "$RUN/best.pt" --data "$DEMO/clean" --split test \
    --out "$DEMO/report" --device cpu

echo
echo "== wall-clock per step"
printf '   %s\n' "${TIMES[@]}"
printf '   %-10s %6s s\n' total "$(secs "$T_ALL")"
echo
echo "Report (test split): $DEMO/report/  (metrics.json, per_class_iou.csv/png, confusion_matrix.png,"
echo "                     curves.png, panels_best.png, panels_worst.png)"
echo "Training run:        $RUN/  (config.yaml, metrics.csv, train.log, best.pt)"
