#!/usr/bin/env bash
# Run HERE (with network), before a device session: puts into .whl/ what benchmarks/gpu_feed.sh
# installs on the device machine, which has Python 3.12 and torch with CUDA but no albumentations
# or pydantic and no network: the project's own wheel plus the wheels of the packages that
# machine lacks, at the versions this project's venv tests with. .whl/ is git-ignored
# (.gitignore) and travels with the device tool's `carry: [".whl"]`. Run it again after any
# change to the code: gpu_feed.sh runs the wheel, not the working tree.
#
#   bash benchmarks/gpu_feed_prepare.sh          # VENV=.venv by default
#
# Writes .whl/ (emptied first, so it holds one version of each package) and setuptools' build/
# scratch folder (git-ignored), nothing else.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
WHL=.whl
# what the device image lacks (its package list: .library/device/KINDS.md), with their own needs;
# typing_extensions too, because pydantic needs a newer one than an image may hold
# (safetensors and urllib3, which segtrain and the converter import, are in the image already:
# safetensors 0.8.0 there, the version the venv here tests with; gpu_feed.sh installs --no-deps)
MISSING="albumentations albucore pydantic pydantic_core annotated-types typing-inspection simsimd stringzilla typing_extensions"

if [[ ! -x "$PY" ]]; then
    echo "gpu_feed_prepare: $PY not found; run 'make setup' first (or set VENV)" >&2
    exit 2
fi
rm -rf "$WHL"
mkdir -p "$WHL"
# pinned to the versions installed here, so the device runs what the tests ran
pins=$("$PY" - "$MISSING" <<'EOF'
import importlib.metadata as md
import sys

print(" ".join(f"{name}=={md.version(name)}" for name in sys.argv[1].split()))
EOF
)
echo "gpu_feed_prepare: downloading $pins"
plats=""
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 \
         manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
    plats+=" --platform ${p}_x86_64"
done
# shellcheck disable=SC2086  # word splitting of $plats and $pins is intended
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plats \
    -d "$WHL" $pins
echo "gpu_feed_prepare: building the project wheel"
"$PY" -m pip wheel -q --no-deps -w "$WHL" .
ls -1 "$WHL"
du -sh "$WHL" | awk '{print "gpu_feed_prepare: " $1 " in .whl/ (the device tool carries at most 64 MiB with the tree)"}'
