"""Cost of mapping the real SUN RGB-D object names: the full rule chain (with compound
splitting and spelling correction) against the chain without those two steps, same run.

    python benchmarks/bench_mapping.py [--names ../shared/realdata/.../class_map_detected_full.json]

Every distinct name is looked up once with a fresh mapper (the converter caches per name, so
this is the whole cost a conversion pays for its names), best of --repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sunrgbd_tools.labels.report import read_real_names
from sunrgbd_tools.labels.table import NameMapper

DEFAULT_NAMES = (Path(__file__).resolve().parents[2] / "shared" / "realdata" / "Yannick947-data_generator_sunrgbd"
                 / "sunrgbd_generator" / "class_map_detected_full.json")


def _run(names: list[str], words: bool) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    m = NameMapper.load()
    if not words:
        m.rules.words = None  # the chain as it was: no compound and no fuzzy step
    t1 = time.perf_counter()
    unmapped = sum(m.is_unmapped(m.lookup(n)) for n in names)
    return t1 - t0, time.perf_counter() - t1, unmapped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=Path, default=DEFAULT_NAMES)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    names = read_real_names(args.names)
    best = {}
    for _ in range(args.repeats):
        for words in (False, True):
            load, look, unmapped = _run(names, words)
            old = best.get(words)
            if old is None or load + look < old[0] + old[1]:
                best[words] = (load, look, unmapped)
    print(f"command: python {' '.join(sys.argv)}")
    for words, label in ((False, "without compound/fuzzy"), (True, "full chain")):
        load, look, unmapped = best[words]
        print(f"{label:22s}: load {load:.3f} s, {len(names)} names in {look:.3f} s "
              f"({1e6 * look / len(names):.0f} us/name), {unmapped} fall to Other")
    ratio = sum(best[True][:2]) / sum(best[False][:2])
    print(f"ratio full / without  : {ratio:.2f} (load + lookups)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
