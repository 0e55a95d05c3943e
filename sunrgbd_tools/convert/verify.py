"""Check a clean tree: every sample complete, sizes agree, label values inside the class
table, train ids and colours consistent with label ids, each file's sha256 as manifest.csv
lists it; and a fetched tree against the archive's own records (SHA256SUMS, DATASHEET.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from cleantree.dataset import DATASET_JSON, ContractError, read_dataset_json
from cleantree.files import sha256_file
from cleantree.manifest import (
    MANIFEST,
    TREE_ROOT_FILES,
    ManifestError,
    SampleFileError,
    read_manifest,
    sample_path,
)
from cleantree.paths import DATASHEET_FILE, FILE_KEYS, SUMS_FILE
from sunrgbd_tools.parallel import map_chunks, pool_workers, signal_name
from sunrgbd_tools.text import Problem, named_once, problem_lines

_CHUNK = 4  # rows per task (Pool.imap's chunksize before)


@dataclass
class VerifyReport:
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems




def _check_chunk(task) -> list[tuple[int, list[Problem]]]:
    """(manifest row number, problems) for each row of a chunk (runs in a worker process)."""
    (root, *lookups), rows = task
    return [(i, _check_sample((root, row, *lookups, hashed))) for i, row, hashed in rows]


def _worker_died(root: Path, item: tuple[int, dict, frozenset], sig: int) -> list[tuple[int, list[Problem]]]:
    """The sample whose worker process died (a library's segmentation fault, the OOM killer)."""
    i, row, _ = item
    return [(i, [(root / MANIFEST, f"sample {row.get('id', '?')}: worker died ({signal_name(sig)}) "
                                   "while checking it")])]


def _check_sample(task) -> list[Problem]:
    root, row, valid_ids, id_to_train, id_to_bgr, check_checksums, hashed = task
    out: list[Problem] = []
    sid = row.get("id", "?")
    where = root / MANIFEST
    try:
        h, w = int(row["height"]), int(row["width"])
    except (KeyError, TypeError, ValueError):
        return [(where, f"sample {sid}: bad height/width")]
    arrays = {}
    for key in FILE_KEYS:
        rel = row.get(key, "")
        if not rel:
            if key != "depth":
                out.append((where, f"sample {sid}: no {key} file listed"))
            continue
        path = root / rel
        try:
            path = sample_path(root, row, key)
            if not path.is_file():
                out.append((path, "missing"))
                continue
            if (check_checksums and row.get(f"{key}_sha256") and key not in hashed
                    and sha256_file(path) != row[f"{key}_sha256"]):
                out.append((path, "sha256 differs from manifest.csv"))
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # in a pool worker: libpng's lines go nowhere
            if img is None:
                out.append((path, "does not decode"))
                continue
            if img.shape[:2] != (h, w):
                out.append((path, f"size {img.shape[0]}x{img.shape[1]}, manifest says {h}x{w}"))
                continue
            arrays[key] = img
        except SampleFileError as e:
            out.append((e.path, e.reason))
        except OSError as e:  # a name too long, a file we may not read, …
            out.append((path, f"cannot read ({e.strerror or type(e).__name__})"))
    lab = arrays.get("label_ids")
    if lab is not None:
        if lab.dtype != np.uint8 or lab.ndim != 2:
            out.append((root / row['label_ids'], "labelIds must be 8-bit single channel"))
        else:
            bad = np.unique(lab[~valid_ids[lab]])
            if bad.size:
                out.append((root / row['label_ids'], f"values not in the class table: {bad.tolist()}"))
            tr = arrays.get("label_train_ids")
            if tr is not None and not np.array_equal(tr, id_to_train[lab]):
                out.append((root / row['label_train_ids'], "train ids do not match labelIds"))
            col = arrays.get("color")
            if col is not None and (col.ndim != 3 or not np.array_equal(col[:, :, :3], id_to_bgr[lab])):
                out.append((root / row['color'], "colours do not match the class colours of labelIds"))
    d = arrays.get("depth")
    if d is not None and (d.dtype != np.uint16 or d.ndim != 2):
        out.append((root / row['depth'], "depth must be 16-bit single channel"))
    return out


def verify_tree(root: Path, workers: int | None = None, check_checksums: bool = True,
                progress: Callable[[Iterator, int], Iterator] | None = None,
                records: bool = True, known: dict[str, str] | None = None) -> VerifyReport:
    """Verify the clean tree at `root`; every problem is one line naming the file. `progress`
    wraps the per-sample results (a bar: all of kv2 at native size takes minutes). `records=False`
    leaves out the check against SHA256SUMS and DATASHEET.md (fetch has just made it). `known`:
    {name below root: sha256} of files the caller has just hashed (fetch: SHA256SUMS, checked);
    a sample file whose manifest sha256 is that string is compared, not read again."""
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
    counted: list[Problem] = [(root / DATASET_JSON, f"splits.{split} = {n}, manifest.csv has {counts.get(split, 0)}")
                              for split, n in splits.items() if counts.get(split, 0) != n]
    shared = (root, valid, id_to_train, id_to_bgr, check_checksums)
    # a worker killed by a crash in a library or by the OOM killer costs its sample only; with
    # one worker too, so even one sample is checked in a child process
    known = known or {}
    items = [(i, row, frozenset(k for k in FILE_KEYS if row.get(k) and row.get(f"{k}_sha256")
                                and known.get(row[k]) == row[f"{k}_sha256"])) for i, row in enumerate(rows)]
    source = map_chunks(_check_chunk, shared, [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)],
                        pool_workers(workers, len(rows)), False, "verify", died=partial(_worker_died, root))
    results = (res for part in source for res in part)
    by_row: dict[int, list[Problem]] = {}
    try:
        if progress is not None:
            results = progress(results, len(rows))
        for i, probs in results:
            by_row[i] = probs
    finally:
        source.close()  # ends the pool's workers now
    found = counted + [p for i in sorted(by_row) for p in by_row[i]]  # manifest order, whoever finished first
    report.problems.extend(problem_lines(found))
    if check_checksums and records:
        hashed = [rows[i] for i, probs in by_row.items()  # rows whose files were compared with the manifest
                  if not any(path == root / MANIFEST for path, _ in probs)]
        # a sample file named above is not named again; a root file is: a row problem filed under
        # manifest.csv must not hide that manifest.csv differs from SHA256SUMS (tamper evidence)
        sample_files = {path for path, _ in found} - {root / name for name in TREE_ROOT_FILES}
        report.problems.extend(problem_lines(named_once(_records_problems(root, hashed, workers),
                                                        already=sample_files)))
    return report


def _records_problems(root: Path, rows: list[dict], workers: int | None) -> list[Problem]:
    """A fetched tree (one holding the archive's SHA256SUMS, or a DATASHEET.md with a Checksums
    section) against the archive's records: a file added, removed, renamed or changed since the
    fetch, dataset.json included. Sample files whose manifest sha256 (just compared) is the listed
    one are not hashed again."""
    if not (root / SUMS_FILE).is_file() and not (root / DATASHEET_FILE).is_file():
        return []  # share (and urllib3) load only for a tree that holds a record
    from sunrgbd_tools.acquire.share import check_records

    known = {r[k]: r[f"{k}_sha256"] for r in rows for k in FILE_KEYS if r.get(k) and r.get(f"{k}_sha256")}
    return check_records(root, workers, known)
