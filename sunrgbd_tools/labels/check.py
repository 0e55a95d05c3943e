"""Find the names that fall to Other in real data, suggest classes for them, measure coverage.

`check_tree` scans a raw tree (seg.mat, else annotation2Dfinal/index.json, of each scene,
read with the converter's own readers) or a clean tree (manifest.csv's `unmapped_names`)
and counts, per name that fell through every rule, its pixels and images. `suggest`
ranks candidate classes for such names by edit distance and token overlap against every
name the tables already map, and writes a CSV that a person edits and passes to
`convert --mapping`. Suggestions are never applied on their own: convert-time lookups
stay a pure function of the tables.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cleantree.manifest import MANIFEST, ManifestError, iter_manifest
from sunrgbd_tools.labels.build import RawName
from sunrgbd_tools.labels.normalise import normalise, squash, tokens
from sunrgbd_tools.labels.table import NameMapper
from sunrgbd_tools.labels.words import deletes


@dataclass
class NameCount:
    name: str
    pixels: int = 0
    images: int = 0


@dataclass
class CheckResult:
    """Unmapped names (sorted by pixels, then images, then name) and per-scene problems."""

    kind: str  # "raw" or "clean"
    scenes: int = 0
    names: list[NameCount] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "scenes": self.scenes,
            "unmapped": [{"name": n.name, "pixels": n.pixels, "images": n.images} for n in self.names],
            "problems": self.problems,
        }


def parse_unmapped(text: str) -> list[tuple[str, int]]:
    """manifest.csv's `unmapped_names` (a JSON object name → pixels) → [(name, pixels)]."""
    if not text:
        return []
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError(f"unmapped_names {text[:40]!r} is not a JSON object") from None
    if not isinstance(obj, dict) or not all(isinstance(v, int) for v in obj.values()):
        raise ValueError(f"unmapped_names {text[:40]!r} is not a JSON object of pixel counts")
    return [(str(k), int(v)) for k, v in obj.items()]


def _sorted(acc: dict[str, NameCount]) -> list[NameCount]:
    return sorted(acc.values(), key=lambda n: (-n.pixels, -n.images, n.name))


def _scene_names(scene_path: Path) -> tuple[dict[str, int], str]:
    """{name: pixels} of one raw scene at its native size, and the label source used."""
    from PIL import Image

    from sunrgbd_tools.raw.annotation import read_index_json
    from sunrgbd_tools.raw.base import RawDataError
    from sunrgbd_tools.raw.matfile import read_seg_mat
    from sunrgbd_tools.raw.scenes import check_scene_links, first_file

    check_scene_links(scene_path)
    seg_path = scene_path / "seg.mat"
    seg_error = None
    if seg_path.exists():
        try:
            seg, names = read_seg_mat(seg_path)
            counts = np.bincount(seg.ravel(), minlength=len(names) + 1)
            return _count_by_name(counts, names), "seg"
        except RawDataError as e:
            seg_error = e
    json_path = scene_path / "annotation2Dfinal" / "index.json"
    if not json_path.exists():
        if seg_error is not None:
            raise seg_error
        raise RawDataError(scene_path, "no labels (neither seg.mat nor annotation2Dfinal/index.json)")
    from sunrgbd_tools.convert.rasterize import paint_polygons

    ann = read_index_json(json_path)
    img = first_file(scene_path / "image", "*.jpg") or first_file(scene_path / "image", "*.png")
    if img is None:
        raise RawDataError(scene_path / "image", "no image file (needed for the polygon canvas size)")
    try:
        with Image.open(img) as im:
            width, height = im.size
    except OSError as e:
        raise RawDataError(img, f"cannot read image size ({e})") from None
    idx = paint_polygons(ann, height, width)
    names = [n or "" for n in ann.names]
    counts = np.bincount(idx.ravel(), minlength=len(names) + 1)
    return _count_by_name(counts, names), "polygons"


def _count_by_name(counts: np.ndarray, names: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v, name in enumerate(names, start=1):
        if name and v < len(counts) and counts[v]:
            out[name] = out.get(name, 0) + int(counts[v])
    return out


def check_tree(src: str | Path, mapper: NameMapper,
               progress: Callable[[Iterable, int], Iterator] | None = None) -> CheckResult:
    """Names that fell to Other in a clean tree (manifest.csv) or a raw tree (SUNRGBD/)."""
    src = Path(src)
    if (src / MANIFEST).is_file():
        return _check_clean(src / MANIFEST, mapper)
    from sunrgbd_tools.raw.base import RawDataError
    from sunrgbd_tools.raw.scenes import discover, inside_sunrgbd_hint

    if not (src / "SUNRGBD").is_dir():
        raise ValueError(f"{src}: neither a clean tree (no {MANIFEST}) nor a raw tree (no SUNRGBD/)"
                         + inside_sunrgbd_hint(src))
    found = discover(src, "all")
    scenes = found.scenes
    result = CheckResult("raw", scenes=len(scenes))
    result.problems += found.skipped_problems()
    acc: dict[str, NameCount] = {}
    it = progress(scenes, len(scenes)) if progress else scenes
    for scene in it:
        try:
            pixels, _source = _scene_names(scene.path)
        except RawDataError as e:
            result.problems.append(str(e))
            continue
        _count_unmapped(acc, mapper, pixels.items())
    result.names = _sorted(acc)
    return result


def _check_clean(path: Path, mapper: NameMapper) -> CheckResult:
    """The manifest's unmapped names that still fall to Other under `mapper`: with `--mapping` a
    name the overlay maps is no longer listed (it was, so `suggest` offered it again). A name
    mapped at conversion but not by `mapper` cannot be seen here (the manifest lists only the
    unmapped ones); check the raw tree for that. Read as every tool reads a clean tree
    (`cleantree.manifest.iter_manifest`; its ManifestError is this command's ValueError)."""
    result = CheckResult("clean")
    acc: dict[str, NameCount] = {}
    try:
        for line, r in iter_manifest(path.parent, need=("id", "unmapped_names")):
            result.scenes += 1
            try:
                items = parse_unmapped(r["unmapped_names"])
            except ValueError as e:
                result.problems.append(f"{path} line {line}: {e}")
                continue
            _count_unmapped(acc, mapper, items)
    except ManifestError as e:
        raise ValueError(str(e)) from None
    result.names = _sorted(acc)
    return result


def _count_unmapped(acc: dict[str, NameCount], mapper: NameMapper, items: Iterable[tuple[str, int]]) -> None:
    """Add one image's (name, pixels) to `acc` for the names `mapper` still sends to Other."""
    for name, px in items:
        if mapper.is_unmapped(mapper.lookup(name)):
            nc = acc.setdefault(name, NameCount(name))
            nc.pixels += px
            nc.images += 1


def check_csv(result: CheckResult, mapper: NameMapper) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["raw_name", "pixels", "images", "key"])
    for n in result.names:
        w.writerow([n.name, n.pixels, n.images, mapper.lookup(n.name).key])
    return buf.getvalue()


# ------------------------------------------------------------------------------ suggest
def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class Candidate:
    class_name: str
    known: str  # the known name (normalised) that matched
    score: float
    distance: int


class Suggester:
    """Ranks classes for an unmapped name against every name the tables already map.

    Close spellings are found with a deletion index (SymSpell's idea: two strings within
    edit distance d share a string reachable by at most d deletions from each), so a
    query costs a few dictionary look-ups instead of a scan of all known names.
    score = 0.6 · (1 − distance / length) + 0.4 · token overlap (Jaccard), or, against a
    one-word name, 0.9 · (1 − distance / length) of the query's last word (its head noun).
    """

    def __init__(self, mapper: NameMapper, max_distance: int = 2):
        self.max_distance = max_distance
        self.known: dict[str, str] = {}  # squashed key -> class
        self.display: dict[str, str] = {}
        rules = mapper.rules
        sources = [(k, c) for k, c in rules.class_keys.items()]
        sources += [(k, c) for k, (c, _n) in rules.synonyms.items()]
        for raw, (cls_name, rule) in sorted(mapper.rows.items()):
            if rule != "default":
                sources.append((squash(normalise(raw)), cls_name))
                self.display.setdefault(squash(normalise(raw)), normalise(raw))
        for k, c in sources:
            if k and c != NameMapper.OTHER:
                self.known.setdefault(k, c)
                self.display.setdefault(k, k)
        self.index: dict[str, set[str]] = {}
        for k in self.known:
            for d in deletes(k, max_distance if len(k) > 4 else 1):
                self.index.setdefault(d, set()).add(k)
        self.by_token: dict[str, set[str]] = {}
        for k in self.known:
            for t in tokens(self.display[k]):
                if len(t) > 2:
                    self.by_token.setdefault(t, set()).add(k)

    def _close(self, word: str) -> set[str]:
        pool: set[str] = set()
        for d in deletes(word, self.max_distance if len(word) > 4 else 1):
            pool |= self.index.get(d, set())
        return pool

    def candidates(self, name: str, top: int = 3) -> list[Candidate]:
        key = normalise(name)
        if not key:
            return []
        sq, toks = squash(key), set(tokens(key))
        head = tokens(key)[-1]
        pool = self._close(sq) | self._close(head)
        for t in toks:
            pool |= self.by_token.get(t, set())
        best: dict[str, Candidate] = {}
        for k in sorted(pool):
            dist = levenshtein(sq, k)
            ktoks = set(tokens(self.display[k]))
            overlap = len(toks & ktoks) / len(toks | ktoks) if toks | ktoks else 0.0
            sim = max(0.0, 1 - dist / max(len(sq), len(k)))
            score = 0.6 * sim + 0.4 * overlap
            if len(ktoks) == 1:  # a head noun: `kitchen_cabnett` is a kind of `cabinet`
                hd = levenshtein(head, k)
                score = max(score, 0.9 * max(0.0, 1 - hd / max(len(head), len(k))))
                dist = min(dist, hd)
            score = round(score, 3)
            cls_name = self.known[k]
            cand = Candidate(cls_name, self.display[k], score, dist)
            old = best.get(cls_name)
            if old is None or (cand.score, -cand.distance, cand.known) > (old.score, -old.distance, old.known):
                best[cls_name] = cand
        ranked = sorted(best.values(), key=lambda c: (-c.score, c.distance, c.class_name))
        return [c for c in ranked if c.score >= 0.3][:top]


SUGGEST_COLUMNS = ("raw_name", "class", "suggested_class", "score", "matched", "alternatives", "pixels", "images")


def suggest_csv(names: list[NameCount], mapper: NameMapper, prefill: bool = False,
                min_score: float = 0.7) -> str:
    """The CSV a person edits: fill `class` (or delete the row) and pass it to --mapping."""
    sug = Suggester(mapper)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUGGEST_COLUMNS)
    for n in names:
        cands = [c for c in sug.candidates(n.name) if c.score >= min_score]
        if not cands:
            continue
        best = cands[0]
        alts = "; ".join(f"{c.class_name} ({c.known}, {c.score:.2f})" for c in cands[1:])
        w.writerow([n.name, best.class_name if prefill else "", best.class_name, f"{best.score:.3f}",
                    best.known, alts, n.pixels, n.images])
    return buf.getvalue()


def replaceable_suggestions(path: Path, text: str) -> bool:
    """Whether `suggest -o path` may write `text` there: nothing is there, the same bytes are, or
    an untouched suggestion list (every `class` cell empty). A list whose `class` column someone
    filled in is their work: `suggest --mapping FILE -o FILE` once replaced the very choices it
    had just read with the names still unmapped."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if old == text.encode("utf-8"):
        return True
    try:
        rows = list(csv.reader(io.StringIO(old.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return False
    if not rows or tuple(rows[0]) != SUGGEST_COLUMNS:
        return False
    i = SUGGEST_COLUMNS.index("class")
    return all(len(r) > i and not r[i].strip() for r in rows[1:] if r)


def unmapped_raw_names(mapper: NameMapper, raw: list[RawName]) -> list[NameCount]:
    """The shipped raw names that fall to Other, as NameCounts weighted by image count."""
    out = []
    for r in raw:
        if mapper.is_unmapped(mapper.lookup(r.name)):
            out.append(NameCount(r.name, 0, r.images or 0))
    return sorted(out, key=lambda n: (-n.images, n.name))
