"""Check our name mapping against SUN RGB-D's own seg37 labels, and learn one from them.

For every scene of a subset, the raw label image (seg.mat, else the index.json polygons,
read by the converter's own readers) is laid over the official 37-class `seglabel` of the
same image (SUNRGBD2Dseg.mat, found through SUNRGBDMeta.mat). One joint histogram per
scene gives, per raw name, the official classes of its pixels; everything else (the
confusion matrix of our classes against the official ones, the per-class agreement, the
learned mapping) is derived from those integer counts, so the result is exact and the same
for any number of workers. docs/mapping.md "Audit against the official labels" explains the
outputs and the thresholds.
"""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cleantree.files import atomic_write_bytes, dumps_json
from sunrgbd_tools import __version__
from sunrgbd_tools.labels.table import UNLABELED_ID, ClassTable, NameMapper
from sunrgbd_tools.raw.base import RawDataError
from sunrgbd_tools.raw.official import OfficialLabels, check_seg37_order
from sunrgbd_tools.raw.scenes import SceneRef, discover
from sunrgbd_tools.text import SCENE_SKIPPED, shared_skips_once

N_OFFICIAL = 38  # official seglabel values: 0 = void, 1..37 = seg37 (= our class ids 1..37)
CONFIG_FILE = "config.json"
OUTPUTS = ("names.csv", "confusion.csv", "confusion.png", "per_class.csv", "learned_mapping.csv",
           "problems.txt", CONFIG_FILE)
_TOOL = "sunrgbd mapping audit"


class AuditError(Exception):
    """The audit cannot start (bad --src, --out or --mapping); the message is one line."""


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines the output bytes (worker count deliberately excluded)."""

    src: str
    out: str = "audit"
    subset: str = "kv2"
    mapping: str | None = None  # a user's mapping CSV or folder; None = the shipped tables
    min_share: float = 0.8  # learned row: the majority official class holds this share ...
    min_pixels: int = 1000  # ... of at least this many pixels of the name

    def command(self) -> str:
        args = ["sunrgbd", "mapping", "audit", "--src", self.src, "--subset", self.subset,
                "--out", self.out, "--min-share", f"{self.min_share:g}", "--min-pixels", str(self.min_pixels)]
        if self.mapping:
            args += ["--mapping", self.mapping]
        return shlex.join(args)

    def to_json(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- per scene
@dataclass
class SceneAudit:
    """One scene: per raw name, pixels per official class; raw-unlabelled pixels likewise."""

    key: str
    source: str = ""  # seg / polygons; "" when the scene was skipped
    names: dict[str, np.ndarray] = field(default_factory=dict)  # name -> int64[38]
    unlabelled: np.ndarray | None = None  # int64[38]
    problems: list[str] = field(default_factory=list)


def audit_scene(scene: SceneRef, official: OfficialLabels) -> SceneAudit:
    """Joint histogram (raw name × official class) of one scene; raises RawDataError when
    the scene cannot be used (no official entry, no raw labels)."""
    from sunrgbd_tools.convert.scene_labels import read_scene_labels

    res = SceneAudit(scene.key)
    off, _ = official.read(scene.key)
    if off.max(initial=0) >= N_OFFICIAL:
        res.problems.append(f"{official.seg_path}: {scene.key}: seglabel values above 37 counted as void")
        off = np.where(off >= N_OFFICIAL, 0, off)
    # the official label is on the image grid: it is the reference size for seg.mat/polygons
    idx, names, res.source = read_scene_labels(scene, off.shape, "auto", res.problems, {})
    top = int(idx.max(initial=0))
    if top > len(names):
        res.problems.append(f"{scene.path}: label values up to {top} but only {len(names)} names; "
                            "extra values counted as unlabelled")
    joint = _joint_histogram(idx, off, top)  # [raw value 0..top, official 0..37]
    res.unlabelled = joint[0].copy()
    for v in range(1, top + 1):
        if not joint[v].any():
            continue
        name = names[v - 1] if v <= len(names) else ""
        if not name:  # nameless object or a value past the names: unlabelled
            res.unlabelled += joint[v]
        elif name in res.names:  # a name listed twice
            res.names[name] = res.names[name] + joint[v]
        else:
            res.names[name] = joint[v]
    return res


_HIST_EXACT = 1 << 24  # cv2.calcHist counts in float32: exact while a bin holds < 2**24


def _joint_histogram(idx: np.ndarray, off: np.ndarray, top: int) -> np.ndarray:
    """int64[top + 1, 38]: pixels per (raw label value, official class)."""
    import cv2

    if idx.flags.f_contiguous and off.flags.f_contiguous:
        idx, off = idx.T, off.T  # MATLAB files are column-major: walk both in memory order
    bins = (top + 1) * N_OFFICIAL
    if bins <= 1 << 16 and idx.size < _HIST_EXACT:  # the usual case: a uint16 code, cv2's histogram
        code = idx.astype(np.uint16)
        code *= N_OFFICIAL
        code += off.astype(np.uint16)
        hist = cv2.calcHist([np.ascontiguousarray(code)], [0], None, [bins], [0, bins])
        counts = hist.ravel().astype(np.int64)
    else:
        code = idx.astype(np.int64) * N_OFFICIAL + off
        counts = np.bincount(code.ravel(), minlength=bins)
    return counts.reshape(top + 1, N_OFFICIAL)


def _audit_chunk(task) -> list[SceneAudit]:
    official, scenes = task
    out = []
    for scene in scenes:
        try:
            out.append(audit_scene(scene, official))
        except RawDataError as e:
            out.append(SceneAudit(scene.key, problems=[f"{e}{SCENE_SKIPPED}"]))
        except Exception as e:  # an unforeseen file: report it, keep the batch going
            out.append(SceneAudit(scene.key, problems=[
                f"{scene.path}: unexpected {type(e).__name__}: {e}{SCENE_SKIPPED}"]))
    return out


def _worker_died(scene: SceneRef, sig: int) -> list[SceneAudit]:
    """The scene whose worker process died (a library's segmentation fault, the OOM killer)."""
    from sunrgbd_tools.parallel import signal_name

    return [SceneAudit(scene.key, problems=[
        f"{scene.path}: worker died ({signal_name(sig)}) while auditing it{SCENE_SKIPPED}"])]


# --------------------------------------------------------------------------- the run
@dataclass
class NameStats:
    name: str
    images: int
    counts: np.ndarray  # int64[38]: pixels per official class
    class_id: int  # ours
    class_name: str
    rule: str
    # the official value our class corresponds to: itself for seg37 (check_seg37_order holds
    # the toolbox to the class table), void otherwise (the official labels have no Other/Computer)
    expected: int

    @property
    def pixels(self) -> int:
        return int(self.counts.sum())

    @property
    def disagree(self) -> int:
        return self.pixels - int(self.counts[self.expected])

    @property
    def majority(self) -> int:
        return int(np.argmax(self.counts))  # ties: the lowest id

    @property
    def share(self) -> float:
        return float(self.counts[self.majority]) / self.pixels if self.pixels else 0.0


@dataclass
class AuditResult:
    config: AuditConfig
    scenes: int  # discovered
    sources: dict[str, int]  # label source -> scenes audited
    skipped: int
    problems: list[str]
    names: list[NameStats]  # sorted by disagreeing pixels, then pixels, then name
    confusion: np.ndarray  # [our class row, official 0..37] pixels, rows in class-table order
    row_ids: list[int]  # class id of each confusion row
    learned: list[NameStats]  # names that pass the thresholds, sorted by name
    table: ClassTable
    written: list[Path] = field(default_factory=list)

    @property
    def audited(self) -> int:
        return sum(self.sources.values())


def _check_out(cfg: AuditConfig, mapping_sha256: str) -> str:
    """The config.json text of this run; refuses an --out that holds anything but the same
    audit (nothing the user had is overwritten)."""
    out = Path(cfg.out)
    text = dumps_json({"tool": _TOOL, "version": __version__, "command": cfg.command(),
                       "config": cfg.to_json(), "mapping_sha256": mapping_sha256})
    if out.exists() and not out.is_dir():
        raise AuditError(f"{out}: exists and is not a folder; use a new --out folder")
    if out.is_dir() and any(out.iterdir()):
        prev = out / CONFIG_FILE
        try:
            same = prev.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            what = "an audit made with other options" if prev.is_file() else "other files"
            raise AuditError(f"{out}: holds {what}; use a new --out folder (nothing was changed)")
        extra = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS and not p.name.startswith("."))
        if extra:
            raise AuditError(f"{out}: holds files this audit did not write ({extra[0]}, …); "
                             "use a new --out folder (nothing was changed)")
    return text


def _chunks(scenes: list[SceneRef], workers: int) -> list[list[SceneRef]]:
    size = max(1, min(32, len(scenes) // (workers * 8) or 1))
    return [scenes[i:i + size] for i in range(0, len(scenes), size)]


def run_audit(cfg: AuditConfig, workers: int | None = None, progress: bool = False,
              write: bool = True) -> AuditResult:
    """Audit every scene of cfg.subset and (with `write`) write the outputs to cfg.out."""
    from sunrgbd_tools.parallel import default_workers, map_chunks

    if not 0 < cfg.min_share <= 1:
        raise AuditError(f"min_share must be in (0, 1], got {cfg.min_share}")
    if cfg.min_pixels < 0:
        raise AuditError(f"min_pixels must be >= 0, got {cfg.min_pixels}")
    src = Path(cfg.src)
    try:
        mapper = NameMapper.load(cfg.mapping) if cfg.mapping else NameMapper.load()
        found = discover(src, cfg.subset)
        scenes = found.scenes
        official = OfficialLabels(src, needed_for="the audit")  # seglabel, SUN RGB-D's own seg37
        official.check()  # one line before any scene for a file that cannot be opened
        check_seg37_order(src, mapper.table)
    except (RawDataError, ValueError, OSError) as e:
        raise AuditError(str(e)) from None
    if not scenes:
        raise AuditError(f"{src / 'SUNRGBD'}: no scenes found for subset {cfg.subset!r}")
    config_text = _check_out(cfg, mapper.sha256) if write else ""
    if write:  # claim --out first: a run interrupted later can simply be run again
        atomic_write_bytes(Path(cfg.out) / CONFIG_FILE, config_text.encode("utf-8"))
        for name in OUTPUTS:  # temporary files a killed run left (cleantree.files' ".<name>.<random>.tmp")
            for tmp in Path(cfg.out).glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)

    workers = max(1, workers or default_workers())
    chunks = _chunks(scenes, workers)
    acc: dict[str, tuple[int, np.ndarray]] = {}
    unlabelled = np.zeros(N_OFFICIAL, dtype=np.int64)
    sources: dict[str, int] = {}
    # folders the walk could not enter are reported as convert and `mapping check` report them
    problems: list[str] = found.skipped_problems()
    skipped = 0
    reported: list[tuple[str, list[str], bool]] = []  # a skip line several scenes share is said once
    for part in map_chunks(_audit_chunk, official, chunks, workers, progress, "audit", died=_worker_died):
        for sa in part:
            reported.append((sa.key, sa.problems, not sa.source))
            if not sa.source:
                skipped += 1
                continue
            sources[sa.source] = sources.get(sa.source, 0) + 1
            unlabelled += sa.unlabelled
            for name, counts in sa.names.items():
                images, total = acc.get(name, (0, np.zeros(N_OFFICIAL, dtype=np.int64)))
                acc[name] = (images + 1, total + counts)
    problems.extend(shared_skips_once(reported))
    problems.sort()

    table = mapper.table
    row_ids = [c.id for c in table.classes]
    row_of = {cid: i for i, cid in enumerate(row_ids)}
    confusion = np.zeros((len(row_ids), N_OFFICIAL), dtype=np.int64)
    confusion[row_of[UNLABELED_ID]] += unlabelled
    names = []
    for name, (images, counts) in acc.items():
        hit = mapper.lookup(name)
        expected = hit.class_id if hit.class_id in table.seg37_ids else 0
        names.append(NameStats(name, images, counts, hit.class_id, hit.class_name, hit.rule, expected))
        confusion[row_of[hit.class_id]] += counts
    names.sort(key=lambda n: (-n.disagree, -n.pixels, n.name))
    learned = sorted((n for n in names if n.majority != 0 and n.pixels >= cfg.min_pixels
                      and n.share >= cfg.min_share), key=lambda n: n.name)
    result = AuditResult(cfg, len(scenes), dict(sorted(sources.items())), skipped, problems, names,
                         confusion, row_ids, learned, table)
    if write:
        _write_outputs(result, config_text)
    return result


# --------------------------------------------------------------------------- outputs
def _official_name(table: ClassTable, v: int) -> str:
    """Official value v is our class id v (1..37; 0 = unlabeled): one table names both."""
    return table.by_id[v].name


def _share(num: int, den: int) -> str:
    return f"{num / den:.4f}" if den else ""


def names_csv(result: AuditResult) -> str:
    table = result.table
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["raw_name", "pixels", "images", "class", "rule", "disagree_pixels", "official_majority",
                "majority_share", "official_void_pixels", "official_distribution"])
    for n in result.names:
        order = sorted(np.flatnonzero(n.counts), key=lambda v: (-n.counts[v], v))
        dist = "; ".join(f"{_official_name(table, int(v))} {int(n.counts[v])}" for v in order)
        w.writerow([n.name, n.pixels, n.images, n.class_name, n.rule, n.disagree,
                    _official_name(table, n.majority), f"{n.share:.4f}", int(n.counts[0]), dist])
    return buf.getvalue()


def confusion_csv(result: AuditResult) -> str:
    table = result.table
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ours \\ official"] + [_official_name(table, v) for v in range(N_OFFICIAL)])
    for cid, row in zip(result.row_ids, result.confusion, strict=True):
        w.writerow([table.by_id[cid].name, *(int(x) for x in row)])
    return buf.getvalue()


def per_class_csv(result: AuditResult) -> str:
    """Per class: our pixels, the official pixels, both, and the shares of each side the
    other confirms (precision / recall of ours against the official labels) and IoU."""
    table = result.table
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "class", "our_pixels", "official_pixels", "both", "precision", "recall", "iou",
                "official_majority", "majority_share"])
    conf = result.confusion
    for i, cid in enumerate(result.row_ids):
        if cid == UNLABELED_ID:
            continue
        ours = int(conf[i].sum())
        maj = int(np.argmax(conf[i])) if ours else 0
        row = [cid, table.by_id[cid].name, ours]
        if cid in table.seg37_ids:
            off = int(conf[:, cid].sum())
            both = int(conf[i, cid])
            row += [off, both, _share(both, ours), _share(both, off), _share(both, ours + off - both)]
        else:  # other / computer: the official labels have no such class
            row += ["", "", "", "", ""]
        row += [_official_name(table, maj) if ours else "", _share(int(conf[i, maj]), ours)]
        w.writerow(row)
    return buf.getvalue()


def learned_csv(result: AuditResult) -> str:
    """The learned table: loads with `sunrgbd convert --mapping FILE` (rule `official`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["raw_name", "class", "rule", "share", "pixels", "images", "ours", "via"])
    for n in result.learned:
        cls = _official_name(result.table, n.majority)
        w.writerow([n.name, cls, "official", f"{n.share:.4f}", n.pixels, n.images, n.class_name,
                    f"SUNRGBD2Dseg: {100 * n.share:.1f}% of {n.pixels} px, {n.images} image(s)"])
    return buf.getvalue()


def confusion_png(result: AuditResult) -> bytes:
    """Row-normalised confusion matrix (ours × official) as a PNG, drawn with OpenCV."""
    import cv2

    table = result.table
    conf = result.confusion.astype(np.float64)
    rows = conf.sum(1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    cell, font, scale = 16, cv2.FONT_HERSHEY_SIMPLEX, 0.38
    row_names = [table.by_id[c].name for c in result.row_ids]
    col_names = [_official_name(table, v) for v in range(N_OFFICIAL)]
    label_w = 8 + max(cv2.getTextSize(n, font, scale, 1)[0][0] for n in row_names + col_names)
    nr, nc = norm.shape
    heat = cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    heat = cv2.resize(heat, (nc * cell, nr * cell), interpolation=cv2.INTER_NEAREST)
    empty = np.repeat(rows[:, 0] == 0, cell)
    heat[empty] = 255  # rows without pixels: white, not "0 %"
    for k in range(1, max(nr, nc)):  # thin grid
        if k < nr:
            heat[k * cell, :] = heat[k * cell, :] // 2 + 64
        if k < nc:
            heat[:, k * cell] = heat[:, k * cell] // 2 + 64
    H, W = label_w + nr * cell + 24, label_w + nc * cell + 8
    img = np.full((H, W, 3), 255, np.uint8)
    img[label_w:label_w + nr * cell, label_w:label_w + nc * cell] = heat
    for i, n in enumerate(row_names):
        cv2.putText(img, n, (4, label_w + i * cell + 12), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    top = np.full((label_w, nc * cell, 3), 255, np.uint8)  # column names, written then turned
    top = np.ascontiguousarray(np.rot90(top, -1))
    for j, n in enumerate(col_names):
        cv2.putText(top, n, (4, j * cell + 12), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    img[:label_w, label_w:label_w + nc * cell] = np.rot90(top)
    cv2.putText(img, "rows: ours, columns: official seg37 (share of the row's pixels)",
                (4, H - 8), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RawDataError(Path(result.config.out) / "confusion.png", "could not encode PNG")
    return buf.tobytes()


def _write_outputs(result: AuditResult, config_text: str) -> None:
    out = Path(result.config.out)
    files = {
        "names.csv": names_csv(result).encode("utf-8"),
        "confusion.csv": confusion_csv(result).encode("utf-8"),
        "confusion.png": confusion_png(result),
        "per_class.csv": per_class_csv(result).encode("utf-8"),
        "learned_mapping.csv": learned_csv(result).encode("utf-8"),
        "problems.txt": "".join(p + "\n" for p in result.problems).encode("utf-8"),
        CONFIG_FILE: config_text.encode("utf-8"),  # written first by run_audit; listed for `written`
    }
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        result.written.append(out / name)


# --------------------------------------------------------------------------- summary
def agreement(result: AuditResult) -> tuple[int, int]:
    """(pixels both label with the same seg37 class, pixels both label with a seg37 class)."""
    seg = [i for i, c in enumerate(result.row_ids) if c in result.table.seg37_ids]
    sub = result.confusion[np.ix_(seg, range(1, N_OFFICIAL))]
    same = sum(int(result.confusion[i, result.row_ids[i]]) for i in seg)
    return same, int(sub.sum())


def summary_lines(result: AuditResult, limit: int = 10) -> list[str]:
    """The short console summary (the CSVs hold everything); limit 0 lists every name."""
    cfg, table = result.config, result.table
    limit = limit or len(result.names)
    src = ", ".join(f"{k} {v}" for k, v in result.sources.items()) or "none"
    px = sum(n.pixels for n in result.names)
    same, both = agreement(result)
    seg_void = sum(int(n.counts[0]) for n in result.names if n.expected != 0)
    ours_not_seg = sum(n.pixels - int(n.counts[0]) for n in result.names if n.expected == 0)
    lines = [
        f"audited {result.audited} of {result.scenes} scenes of {cfg.subset} (label sources: {src}), "
        f"skipped {result.skipped}; {len(result.names)} raw names, {px} labelled pixels",
        f"pixel agreement with the official seg37: {_pct(same, both)} of the {both} pixels both give "
        f"a seg37 class; official void under our seg37 classes: {seg_void} px; official seg37 under "
        f"our {', '.join(c.name for c in table.classes if c.group not in ('seg37', 'void'))}: {ours_not_seg} px",
    ]
    changes = [n for n in result.learned if n.class_id != n.majority]
    lines.append(
        f"learned mapping: {len(result.learned)} names (official share >= {cfg.min_share:g} of "
        f">= {cfg.min_pixels} px), {len(changes)} differ from ours"
        + (": " + ", ".join(f"{n.name} {n.class_name}->{_official_name(table, n.majority)}"
                            for n in changes[:limit])
           + (" …" if len(changes) > limit else "") if changes else ""))
    rows = [n for n in result.names if n.disagree][:limit]
    if rows:
        lines.append(f"{'disagree':>10} {'pixels':>10}  {'ours':<12} {'official (share)':<22} name")
        for n in rows:
            maj = f"{_official_name(table, n.majority)} ({n.share:.2f})"
            lines.append(f"{n.disagree:>10} {n.pixels:>10}  {n.class_name:<12} {maj:<22} {n.name}")
        more = sum(1 for n in result.names if n.disagree) - len(rows)
        if more > 0:
            lines.append(f"… {more} more names disagree (names.csv lists every name)")
    return lines


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"

