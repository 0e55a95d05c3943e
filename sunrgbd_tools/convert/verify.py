"""Check a clean tree: every sample complete, sizes agree, label values inside the class
table, train ids and colours consistent with label ids, checksums as in the manifest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from cleantree.dataset import DATASET_JSON, ContractError, read_dataset_json
from cleantree.files import is_within, sha256_file
from cleantree.manifest import MANIFEST, ManifestError, read_manifest
from cleantree.paths import FILE_KEYS
from sunrgbd_tools import quietread
from sunrgbd_tools.parallel import map_chunks, pool_workers, signal_name

_CHUNK = 4  # rows per task (Pool.imap's chunksize before)


@dataclass
class VerifyReport:
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_chunk(task) -> list[tuple[int, list[str]]]:
    """(manifest row number, problems) for each row of a chunk (runs in a worker process)."""
    (root, *lookups), rows = task
    return [(i, _check_sample((root, row, *lookups))) for i, row in rows]


def _worker_died(root: Path, item: tuple[int, dict], sig: int) -> list[tuple[int, list[str]]]:
    """The sample whose worker process died (a library's segmentation fault, the OOM killer)."""
    i, row = item
    return [(i, [f"{root / MANIFEST}: sample {row.get('id', '?')}: worker died ({signal_name(sig)}) "
                 "while checking it"])]


def _check_sample(task) -> list[str]:
    root, row, valid_ids, id_to_train, id_to_bgr, check_checksums = task
    out: list[str] = []
    sid = row.get("id", "?")
    where = root / MANIFEST
    try:
        h, w = int(row["height"]), int(row["width"])
    except (KeyError, TypeError, ValueError):
        return [f"{where}: sample {sid}: bad height/width"]
    arrays = {}
    for key in FILE_KEYS:
        rel = row.get(key, "")
        if not rel:
            if key != "depth":
                out.append(f"{where}: sample {sid}: no {key} file listed")
            continue
        if "\0" in rel:
            out.append(f"{where}: sample {sid}: {key} path holds a NUL byte")
            continue
        path = root / rel
        try:
            if not is_within(root, path):
                out.append(f"{where}: sample {sid}: {key} {rel!r} leads outside the tree "
                           "(absolute, '..' or a symbolic link); not read")
                continue
            if not path.is_file():
                out.append(f"{path}: missing")
                continue
            if check_checksums and row.get(f"{key}_sha256") and sha256_file(path) != row[f"{key}_sha256"]:
                out.append(f"{path}: sha256 differs from manifest.csv")
            img = quietread.imread(path, cv2.IMREAD_UNCHANGED)  # in a pool worker (map_chunks)
            if img is None:
                out.append(f"{path}: does not decode")
                continue
            if img.shape[:2] != (h, w):
                out.append(f"{path}: size {img.shape[0]}x{img.shape[1]}, manifest says {h}x{w}")
                continue
            arrays[key] = img
        except OSError as e:  # a name too long, a file we may not read, …
            out.append(f"{path}: cannot read ({e.strerror or type(e).__name__})")
    lab = arrays.get("label_ids")
    if lab is not None:
        if lab.dtype != np.uint8 or lab.ndim != 2:
            out.append(f"{root / row['label_ids']}: labelIds must be 8-bit single channel")
        else:
            bad = np.unique(lab[~valid_ids[lab]])
            if bad.size:
                out.append(f"{root / row['label_ids']}: values not in the class table: {bad.tolist()}")
            tr = arrays.get("label_train_ids")
            if tr is not None and not np.array_equal(tr, id_to_train[lab]):
                out.append(f"{root / row['label_train_ids']}: train ids do not match labelIds")
            col = arrays.get("color")
            if col is not None and (col.ndim != 3 or not np.array_equal(col[:, :, :3], id_to_bgr[lab])):
                out.append(f"{root / row['color']}: colours do not match the class colours of labelIds")
    d = arrays.get("depth")
    if d is not None and (d.dtype != np.uint16 or d.ndim != 2):
        out.append(f"{root / row['depth']}: depth must be 16-bit single channel")
    return out


def verify_tree(root: Path, workers: int | None = None, check_checksums: bool = True,
                progress: Callable[[Iterator, int], Iterator] | None = None) -> VerifyReport:
    """Verify the clean tree at `root`; every problem is one line naming the file. `progress`
    wraps the per-sample results (a bar: all of kv2 at native size takes minutes)."""
    root = Path(root)
    report = VerifyReport()
    if not (root / DATASET_JSON).exists():
        report.problems.append(f"{root / DATASET_JSON}: missing")
        return report
    try:
        meta = read_dataset_json(root / DATASET_JSON)
        splits = meta.split_counts()
    except ContractError as e:
        report.problems.append(str(e))
        return report
    valid, id_to_train = meta.lookup.valid_ids, meta.lookup.id_to_train_id
    id_to_bgr = np.ascontiguousarray(meta.lookup.id_to_color[:, ::-1])
    try:
        rows = read_manifest(root)
    except ManifestError as e:
        report.problems.append(f"{e.path}: missing" if isinstance(e.cause, FileNotFoundError) else str(e))
        return report
    report.samples = len(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("split", "")] = counts.get(r.get("split", ""), 0) + 1
    for split, n in splits.items():
        if counts.get(split, 0) != n:
            report.problems.append(
                f"{root / DATASET_JSON}: splits.{split} = {n}, manifest.csv has {counts.get(split, 0)}"
            )
    shared = (root, valid, id_to_train, id_to_bgr, check_checksums)
    # a worker killed by a crash in a library or by the OOM killer costs its sample only; with
    # one worker too, so even one sample is checked in a child process
    items = list(enumerate(rows))
    source = map_chunks(_check_chunk, shared, [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)],
                        pool_workers(workers, len(rows)), False, "verify", died=partial(_worker_died, root))
    results = (res for part in source for res in part)
    by_row: dict[int, list[str]] = {}
    try:
        if progress is not None:
            results = progress(results, len(rows))
        for i, probs in results:
            by_row[i] = probs
    finally:
        source.close()  # ends the pool's workers now
    for i in sorted(by_row):  # in manifest order, whichever worker finished first
        # a file name from the manifest may hold a line break: a problem stays one line
        report.problems.extend(p.replace("\r", "\\r").replace("\n", "\\n") for p in by_row[i])
    if check_checksums:
        hashed = [rows[i] for i, probs in by_row.items()  # rows whose files were compared with the manifest
                  if not any(p.startswith(f"{root / MANIFEST}: ") for p in probs)]
        report.problems.extend(_records_problems(root, hashed, workers, report.problems))
    return report


def _records_problems(root: Path, rows: list[dict], workers: int | None, found: list[str]) -> list[str]:
    """A fetched tree (one holding the archive's SHA256SUMS) against the archive's records
    (SHA256SUMS, DATASHEET.md's root-file sha256s): a file added, removed, renamed or changed
    since the fetch, dataset.json included. Sample files whose manifest sha256 (just compared)
    is the listed one are not hashed again; a file a problem above names is not named twice."""
    if not (root / "SHA256SUMS").is_file():  # acquire.share.SUMS; share (and urllib3) load only for such a tree
        return []
    from sunrgbd_tools.acquire.share import check_records

    known = {r[k]: r[f"{k}_sha256"] for r in rows for k in FILE_KEYS if r.get(k) and r.get(f"{k}_sha256")}
    named = {p.split(": ", 1)[0] for p in found}
    return [p for p in check_records(root, workers, known) if p.split(": ", 1)[0] not in named]
