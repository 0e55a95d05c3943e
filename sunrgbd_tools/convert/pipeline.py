"""Convert raw SUN RGB-D scenes into a Cityscapes-style tree (docs/contracts.md).

Per scene: read RGB → pick a label source → map raw names to classes → resize on one
geometry → write PNGs atomically → record checksums. Scenes are independent, so they run
in a process pool; each finished scene leaves a record under `<out>/.sunrgbd/records/`
and a re-run skips it, so an interrupted conversion resumes where it stopped. The
manifest and dataset.json are written last, from the records, sorted by id: the result
is byte-identical for any worker count and equal to an uninterrupted run.
"""

from __future__ import annotations

import errno
import io
import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cleantree.classes import IGNORE_INDEX
from cleantree.dataset import (
    DATASET_JSON,
    SCHEMA_VERSION,
    ContractError,
    DatasetJson,
    load_json_object,
    write_dataset_json,
)
from cleantree.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    sha256_bytes,
)
from cleantree.manifest import MANIFEST, MANIFEST_COLUMNS, write_manifest
from cleantree.paths import FILE_KEYS, IMAGE_FORMATS, PROBLEMS_FILE, file_templates, sample_paths
from sunrgbd_tools import __version__
from sunrgbd_tools.convert.label_modes import LABEL_MODES, LABEL_SOURCES
from sunrgbd_tools.convert.resize import resize_image, resize_nearest
from sunrgbd_tools.convert.scene_labels import read_scene_labels
from sunrgbd_tools.labels.table import NameMapper
from sunrgbd_tools.parallel import imap_surviving, pool_workers, signal_name
from sunrgbd_tools.raw.base import RawDataError, UnreadableFile
from sunrgbd_tools.raw.images import DEPTH_MAX_MM, probe_jpeg, read_camera, read_depth, read_rgb
from sunrgbd_tools.raw.official import FIELDS, OfficialLabels, check_seg37_order
from sunrgbd_tools.raw.scenes import SceneRef, check_scene_links, discover, first_file, parse_subset
from sunrgbd_tools.raw.splits import SPLIT_FILE, read_split
from sunrgbd_tools.text import SCENE_SKIPPED, first_names, plural, shared_skips_once

STATE_DIR = ".sunrgbd"
MISSING_FILE = "missing_scenes.txt"  # every scene allsplit lists under --subset that is not on disk
MISSING_EXAMPLES = 3  # scene names shown in a grouped "not found" line
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]


def _png_params(filter_name: str, rle: bool) -> list[int]:
    """zlib level 1 with a fixed PNG row filter: OpenCV's default tries every filter per
    row, which costs 2-4x the time for files of the same size (docs/performance.md).
    Older OpenCV builds without the filter flag fall back to their default."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    flt = getattr(cv2, f"IMWRITE_PNG_FILTER_{filter_name}", None)
    if hasattr(cv2, "IMWRITE_PNG_FILTER") and flt is not None:
        params += [cv2.IMWRITE_PNG_FILTER, flt]
    if rle:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    return params


# Per kind of image: label maps are flat regions (RLE wins), depth is smooth along rows,
# photos compress best with the UP filter.
PNG_PARAMS = {
    "image": _png_params("UP", rle=False),
    "label_ids": _png_params("SUB", rle=True),
    "label_train_ids": _png_params("SUB", rle=True),
    "depth": _png_params("SUB", rle=True),
}


@dataclass(frozen=True)
class ConvertConfig:
    """Everything that determines the output bytes (worker count deliberately excluded)."""

    src: str
    out: str
    subset: str = "kv2"
    size: tuple[int, int] | None = None  # (height, width); None = native
    labels: str = "auto"
    image_format: str = "png"
    depth: bool = True
    mapping: str | None = None  # a user's names.csv; None = the shipped tables
    val_fraction: float = 0.1  # only used when allsplit.mat has no trainvalsplit
    seed: int = 0
    keep_unlabelled: bool = False  # write samples whose labels hold no labelled pixel

    def command(self) -> str:
        """The canonical command line that reproduces this conversion."""
        args = ["sunrgbd", "convert", "--subset", self.subset, "--src", self.src, "--out", self.out]
        if self.size:
            args += ["--size", f"{self.size[0]}x{self.size[1]}"]
        args += ["--labels", self.labels, "--image-format", self.image_format]
        args.append("--depth" if self.depth else "--no-depth")
        if self.mapping:
            args += ["--mapping", self.mapping]
        if self.keep_unlabelled:
            args.append("--keep-unlabelled")
        return shlex.join(args)

    def to_json(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size) if self.size else None
        return d


@dataclass
class SampleResult:
    """What one scene produced: a manifest row (None when skipped) and its problems."""

    key: str
    row: dict | None
    problems: list[str] = field(default_factory=list)
    label_source: str = ""


class ConvertError(Exception):
    """The conversion cannot start (bad --src/--out); message is one line."""


# ------------------------------------------------------------------------ per-scene work
_WORKER: dict = {}


def _init_worker(config: ConvertConfig, mapper: NameMapper, official: OfficialLabels | None):
    cv2.setNumThreads(1)
    _WORKER.update(config=config, mapper=mapper, official=official)


def _encode(ext: str, arr: np.ndarray, path: str, kind: str) -> bytes:
    ok, buf = cv2.imencode(ext, arr, PNG_PARAMS[kind] if ext == ".png" else JPEG_PARAMS)
    if not ok:
        raise RawDataError(path, f"could not encode {ext}")
    return buf.tobytes()


def encode_color_png(label_ids: np.ndarray, palette: np.ndarray) -> bytes:
    """The colour mask as a palette PNG (like PASCAL VOC's): pixel value = class id,
    palette = class colours. Viewers and cv2.imread show RGB; it is ~5x faster to write
    and smaller than an RGB PNG, and the class ids survive in it."""
    from PIL import Image

    img = Image.fromarray(label_ids)  # mode L; putpalette turns it into P
    img.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _class_lut(names: list[str] | None, max_value: int, problems: list[str], where: str):
    """LUT from index value → class id, plus which values are unmapped names."""
    mapper: NameMapper = _WORKER["mapper"]
    table = mapper.table
    size = max(max_value, len(names) if names is not None else 0) + 1
    lut = np.zeros(size, dtype=np.uint8)
    unmapped: dict[int, str] = {}
    if names is None:  # official seglabel: values are seg37 ids already
        valid = table.seg37_ids
        for v in range(1, size):
            lut[v] = v if v in valid else 0
        top = max(valid, default=0)
        if max_value > top:
            problems.append(f"{where}: seg37 label values above {top} set to unlabelled")
        return lut, unmapped
    for v, name in enumerate(names, start=1):
        if not name:
            continue  # nameless object: unlabelled
        hit = mapper.lookup(name)
        lut[v] = hit.class_id
        if mapper.is_unmapped(hit):
            unmapped[v] = name
    if max_value > len(names):
        problems.append(
            f"{where}: label values up to {max_value} but only {len(names)} names; extra values set to unlabelled"
        )
    return lut, unmapped


def convert_scene(scene: SceneRef, split: str, out: Path) -> SampleResult:
    """Convert one scene; raises RawDataError when the scene cannot be used at all."""
    cfg: ConvertConfig = _WORKER["config"]
    mapper: NameMapper = _WORKER["mapper"]
    table = mapper.table
    problems: list[str] = []

    check_scene_links(scene.path)
    rgb_path = first_file(scene.path / "image", "*.jpg") or first_file(scene.path / "image", "*.png")
    if rgb_path is None:
        raise RawDataError(scene.path / "image", "no image file")
    ext = cfg.image_format
    copy_jpeg = ext == "jpg" and cfg.size is None and rgb_path.suffix.lower() == ".jpg"
    if copy_jpeg:  # the source bytes are the output: only prove they decode
        rgb = None
        src_h, src_w = probe_jpeg(rgb_path)
    else:
        rgb = read_rgb(rgb_path)
        src_h, src_w = rgb.shape[:2]
    extra: dict = {}
    idx, names, source = read_scene_labels(scene, (src_h, src_w), cfg.labels, problems, extra,
                                           _WORKER["official"])
    where = str(scene.path)
    lut, unmapped = _class_lut(names, int(idx.max(initial=0)), problems, where)

    size = cfg.size or (src_h, src_w)
    small = idx.astype(np.uint16) if idx.max(initial=0) < 65536 else idx
    small = resize_nearest(small, size)
    label_ids = lut[small]
    if not label_ids.any():  # e.g. `"frames": null` and no seg.mat: nothing to learn from
        if not cfg.keep_unlabelled:
            e = RawDataError(scene.path, f"no labelled pixel in its {source} labels "
                                         "(--keep-unlabelled writes such samples)")
            e.problems = problems  # what the readers said, e.g. `"frames": null`
            raise e
        problems.append(f"{scene.path}: no labelled pixel in its {source} labels; written all unlabelled")
    train_ids = cv2.LUT(label_ids, table.id_to_train_id)

    unmapped_px: dict[str, int] = {}
    if unmapped:
        counts = np.bincount(small.ravel(), minlength=len(lut))
        for v, name in unmapped.items():
            if counts[v]:
                unmapped_px[name] = unmapped_px.get(name, 0) + int(counts[v])

    depth = None
    if cfg.depth:
        dpath = first_file(scene.path / "depth", "*.png")
        if dpath is None:
            problems.append(f"{scene.path / 'depth'}: no depth image; depth written as all-missing (0)")
            depth = np.zeros(size, dtype=np.uint16)
        else:
            try:
                depth = read_depth(dpath)
                if depth.shape != (src_h, src_w):
                    problems.append(
                        f"{dpath}: depth is {depth.shape[0]}x{depth.shape[1]}, image {src_h}x{src_w}; resized (nearest)"
                    )
                depth = resize_nearest(depth, size)
            except UnreadableFile:
                raise  # there but unreadable: skip the scene rather than hide its depth
            except RawDataError as e:
                problems.append(f"{e}; depth written as all-missing (0)")
                depth = np.zeros(size, dtype=np.uint16)

    rel = sample_paths(split, scene.sensor, scene.sample_id, ext)
    blobs: dict[str, bytes] = {}
    if copy_jpeg:
        blobs["image"] = rgb_path.read_bytes()  # native size: the source JPEG, no re-encode
    else:
        bgr = cv2.cvtColor(resize_image(rgb, size), cv2.COLOR_RGB2BGR)
        blobs["image"] = _encode("." + ext, bgr, rel["image"], "image")
    blobs["label_ids"] = _encode(".png", label_ids, rel["label_ids"], "label_ids")
    blobs["label_train_ids"] = _encode(".png", train_ids, rel["label_train_ids"], "label_train_ids")
    blobs["color"] = encode_color_png(label_ids, table.id_to_color)
    if depth is not None:
        blobs["depth"] = _encode(".png", depth, rel["depth"], "depth")
    for key, data in blobs.items():
        atomic_write_bytes(out / rel[key], data)

    cam = read_camera(scene.path)
    problems.extend(cam.warnings)
    row = {
        "id": scene.sample_id,
        "split": split,
        "sensor": scene.sensor,
        "scene": scene.key,
        "label_source": source,
        "src_height": src_h,
        "src_width": src_w,
        "height": size[0],
        "width": size[1],
        "scene_type": cam.scene_type,
        "intrinsics": " ".join(f"{x:g}" for x in cam.intrinsics) if cam.intrinsics else "",
        "extrinsics": " ".join(f"{x:g}" for x in cam.extrinsics) if cam.extrinsics else "",
        # a JSON object: raw names may contain any separator (`wal;l`, `a=b`)
        "unmapped_names": json.dumps(
            dict(sorted(unmapped_px.items(), key=lambda kv: (-kv[1], kv[0]))),
            ensure_ascii=False, separators=(",", ":"),
        ) if unmapped_px else "",
        "problems": " | ".join(problems),
        "salvaged": dumps_compact(extra["salvaged"].to_json()) if "salvaged" in extra else "",
    }
    for key in FILE_KEYS:
        row[key] = rel[key] if key in blobs else ""
        row[f"{key}_sha256"] = sha256_bytes(blobs[key]) if key in blobs else ""
    return SampleResult(scene.key, row, problems, source)


def dumps_compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _record_path(out: Path, sample_id: str) -> Path:
    return out / STATE_DIR / "records" / f"{sample_id}.json"


# Write failures that are about --out, not the scene: every later scene would fail the same way.
_OUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _run_one(task) -> SampleResult:
    scene, split, out = task
    try:
        result = convert_scene(scene, split, out)
    except RawDataError as e:
        return SampleResult(scene.key, None, [*getattr(e, "problems", []), f"{e}{SCENE_SKIPPED}"])
    except Exception as e:  # a bug or an unforeseen file: report it, keep the batch going
        if isinstance(e, OSError) and e.errno in _OUT_FULL:
            raise
        return SampleResult(scene.key, None, [f"{scene.path}: unexpected {type(e).__name__}: {e}{SCENE_SKIPPED}"])
    atomic_write_json(_record_path(out, scene.sample_id), {"row": result.row})
    return result


def _worker_died(task, sig: int) -> SampleResult:
    """The scene whose worker process died (e.g. a library's segmentation fault); nothing is
    recorded for it, so a re-run tries it again."""
    scene = task[0]
    return SampleResult(scene.key, None, [f"{scene.path}: worker died ({signal_name(sig)}) "
                                          f"while converting it{SCENE_SKIPPED}"])


def _finished(out: Path, scene: SceneRef) -> SampleResult | None:
    """A sample finished by an earlier run: its record exists, has exactly the manifest's
    columns (a record from a version with other columns is converted again, not resumed
    with empty cells; tool_version is not bumped for a new column) and its files are there."""
    p = _record_path(out, scene.sample_id)
    if not p.exists():
        return None
    try:
        row = json.loads(p.read_text(encoding="utf-8"))["row"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(row, dict) or row.keys() != set(MANIFEST_COLUMNS):
        return None
    if not all((out / row[k]).exists() for k in FILE_KEYS if row.get(k)):
        return None
    problems = [s for s in row["problems"].split(" | ") if s]
    return SampleResult(row["scene"], row, problems, row["label_source"])


# ------------------------------------------------------------------------ the whole run
@dataclass
class ConvertSummary:
    samples: int
    skipped: int
    resumed: int
    splits: dict[str, int]
    label_sources: dict[str, int]
    problems: list[str]
    unmapped: dict[str, int]  # name -> pixels over the whole run
    out: Path
    # every missing scene key (MISSING_FILE, in the state folder pack leaves out): named on the
    # console, not in problems.txt, whose lines travel with a packed tree
    missing_listing: Path | None = None

    @property
    def reported(self) -> int:
        return len(self.problems)


def _same_conversion(text: str, want: dict) -> bool:
    """Whether convert.json `text` records this conversion. --src, --out and --mapping are
    compared as what they point at, not as typed (the mapping's content is in mapping_sha256):
    resuming with `--src /abs/raw` or from another folder was refused as "other options"."""
    try:
        old = json.loads(text)
    except ValueError:
        return False
    if not isinstance(old, dict):
        return False
    if "src_resolved" not in old:  # written before src_resolved: as typed, as then
        return text == dumps_json({k: v for k, v in want.items() if k != "src_resolved"})
    typed = ("src", "out", "mapping")
    return {k: v for k, v in old.items() if k not in typed} == {k: v for k, v in want.items() if k not in typed}


def _prepare_out(cfg: ConvertConfig, mapping_sha256: str) -> Path:
    """Claim `out` for this conversion, or accept it for resuming one with the same options
    and the same mapping tables (records made under other tables would be stale)."""
    out = Path(cfg.out)
    state = out / STATE_DIR / "convert.json"
    want = {**cfg.to_json(), "mapping_sha256": mapping_sha256, "tool_version": __version__,
            "src_resolved": str(Path(cfg.src).resolve())}
    if state.exists():
        if not _same_conversion(state.read_text(encoding="utf-8"), want):
            raise ConvertError(
                f"{out}: holds a conversion made with other options or mapping tables ({state}); "
                "use a new --out folder (nothing was changed)"
            )
        # a killed run can leave our temporary files (".<name>.<random>.tmp") behind
        for tmp in out.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        return out
    if out.exists() and not out.is_dir():
        raise ConvertError(f"{out}: exists and is not a folder; use a new --out folder")
    if out.exists() and any(out.iterdir()):
        raise ConvertError(f"{out}: folder exists and is not empty; use a new --out folder (nothing was changed)")
    atomic_write_text(state, dumps_json(want))
    return out


def convert(
    cfg: ConvertConfig,
    workers: int | None = None,
    progress: Callable[[Iterator, int], Iterator] | None = None,
) -> ConvertSummary:
    """Run a conversion (resuming a previous interrupted one with the same options)."""
    src = Path(cfg.src)
    if cfg.labels not in LABEL_SOURCES:
        raise ConvertError(f"unknown label source {cfg.labels!r}; use one of {', '.join(LABEL_SOURCES)}")
    if cfg.image_format not in IMAGE_FORMATS:
        raise ConvertError(f"unknown image format {cfg.image_format!r}; use {' or '.join(IMAGE_FORMATS)}")
    try:
        mapper = NameMapper.load(cfg.mapping) if cfg.mapping else NameMapper.load()
        found = discover(src, cfg.subset)
        scenes = found.scenes
        split = read_split(src / SPLIT_FILE, cfg.val_fraction, cfg.seed)
        official = OfficialLabels(src, cfg.labels) if cfg.labels in FIELDS else None
        if official is not None:
            official.check()
        if cfg.labels == "official":
            check_seg37_order(src, mapper.table)
    except (RawDataError, ValueError, OSError) as e:
        raise ConvertError(str(e)) from None
    if not scenes:
        unreadable = "".join(f"; cannot read {p} ({why})" for p, why in found.unreadable)
        raise ConvertError(f"{src / 'SUNRGBD'}: no scenes found for subset {cfg.subset!r}{unreadable}")
    out = _prepare_out(cfg, mapper.sha256)

    listing = out / STATE_DIR / MISSING_FILE
    problems, not_found, missing = _scenes_not_found(src / "SUNRGBD", cfg.subset, split, scenes,
                                                     found.unreadable)
    tasks = []
    results: list[SampleResult] = []
    resumed = not_in_split = 0
    for scene in scenes:
        s = split.of(scene.key)
        if s is None:
            problems.append(f"{scene.path}: scene is in no split of {SPLIT_FILE}{SCENE_SKIPPED}")
            not_in_split += 1
            continue
        done = _finished(out, scene)
        if done is not None:
            results.append(done)
            resumed += 1
        else:
            tasks.append((scene, s, out))

    # a worker killed by a crash in a library or by the OOM killer costs its scene only; with
    # one worker too (--workers 1, a 1-core machine, the re-run of the one scene left)
    it = imap_surviving(_run_one, tasks, pool_workers(workers, len(tasks)), initializer=_init_worker,
                        initargs=(cfg, mapper, official), died=_worker_died)
    source = it
    try:
        if progress is not None:
            it = progress(it, len(tasks))
        results.extend(it)
    except OSError as e:
        if e.errno not in _OUT_FULL:
            raise
        # a full disk once skipped every later scene with the same problem and exited 0
        done = sum(1 for r in results if r.row is not None)
        raise OSError(e.errno, f"{e.strerror}; stopped with {done} sample(s) finished: make room and "
                      "run the same command again to finish", str(out)) from None
    finally:
        if hasattr(source, "close"):
            source.close()  # ends the pool's workers now (a generator's finally), as Pool.terminate did

    rows = [r.row for r in results if r.row is not None]
    rows.sort(key=lambda r: r["id"])
    problems.extend(shared_skips_once((r.key, r.problems, r.row is None) for r in results))
    problems.sort()
    unmapped: dict[str, int] = {}
    for row in rows:
        for name, px in (json.loads(row["unmapped_names"]) if row["unmapped_names"] else {}).items():
            unmapped[name] = unmapped.get(name, 0) + int(px)
    counts = {"train": 0, "val": 0, "test": 0}
    sources: dict[str, int] = {}
    for row in rows:
        counts[row["split"]] += 1
        sources[row["label_source"]] = sources.get(row["label_source"], 0) + 1
    skipped = sum(1 for r in results if r.row is None) + not_in_split + not_found
    salvaged = sum(1 for row in rows if row.get("salvaged"))

    write_manifest(out / MANIFEST, rows)
    _write_problems(out, problems)
    if missing:
        atomic_write_text(listing, "".join(k + "\n" for k in sorted(missing)))
    else:
        listing.unlink(missing_ok=True)  # a re-run after the scenes were put in place
    _write_dataset_json(out, cfg, mapper, rows, counts, dict(sorted(sources.items())), split.val_source,
                        len(problems), skipped, salvaged)
    return ConvertSummary(len(rows), skipped, resumed, counts, dict(sorted(sources.items())), problems,
                          dict(sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0]))), out,
                          listing if missing else None)


def _scenes_not_found(root: Path, subset: str, split, scenes: list[SceneRef],
                      unreadable: list[tuple[Path, str]]) -> tuple[list[str], int, list[str]]:
    """Problems, a skip count and the missing scene keys for what the split lists under
    the subset but the walk did not find: one line per folder that cannot be read or is
    missing altogether (with the number of listed scenes inside), one line per folder that
    exists but lacks listed scenes (count and a few names); a lone missing scene keeps its
    own line. The keys returned (for MISSING_FILE) are those not on disk: scenes under a
    folder that cannot be read are counted on its line, not listed."""
    prefixes = parse_subset(subset)
    present = {s.key for s in scenes}
    missing = sorted(k for k in split.assignment
                     if k not in present and any(k == p or k.startswith(p + "/") for p in prefixes))
    problems: list[str] = []
    count = 0
    for path, why in unreadable:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else ""
        inside = {k for k in missing if rel and (k == rel or k.startswith(rel + "/"))}
        missing = [k for k in missing if k not in inside]
        what = why if why.startswith(("symbolic link", "folder name")) else f"cannot read folder ({why})"
        problems.append(f"{path}: {what}; {len(inside)} scene(s) of {SPLIT_FILE} "
                        "inside it, and any others, skipped")
        count += max(1, len(inside))
    by_folder: dict[tuple[str, bool], list[str]] = {}  # (folder, whether it exists) -> keys
    for k in missing:
        parts = k.split("/")
        # the highest folder of the key that is absent: one line for all scenes under it
        top = next((i for i in range(1, len(parts)) if not (root / "/".join(parts[:i])).exists()), len(parts))
        # scenes missing from a folder that exists: one line per folder, not one per scene
        # (two real scenes under kv1/ and kv2/ printed 856 lines, one per allsplit scene)
        exists = top == len(parts)
        by_folder.setdefault(("/".join(parts[:-1] if exists else parts[:top]), exists), []).append(k)
    for (folder, exists), keys in sorted(by_folder.items()):
        if exists and len(keys) == 1:
            problems.append(f"{root / keys[0]}: scene listed in {SPLIT_FILE} not found{SCENE_SKIPPED}")
        elif exists:
            shown = first_names([k.rsplit("/", 1)[1] for k in keys], MISSING_EXAMPLES)
            problems.append(f"{root / folder}: {plural(len(keys), 'scene')} listed under it in {SPLIT_FILE} "
                            f"not found (e.g. {shown}) (scenes skipped)")
        else:
            problems.append(f"{root / folder}: not found; {len(keys)} scene(s) listed under it in "
                            f"{SPLIT_FILE} skipped")
        count += len(keys)
    return problems, count, missing


def _write_problems(out: Path, problems: list[str]) -> None:
    atomic_write_text(out / PROBLEMS_FILE, "".join(p + "\n" for p in problems))


def _write_dataset_json(out, cfg: ConvertConfig, mapper: NameMapper, rows, counts, sources, val_source,
                        n_problems: int, skipped: int, salvaged: int = 0) -> None:
    table = mapper.table
    sizes = {(r["height"], r["width"]) for r in rows}
    doc = DatasetJson(
        schema_version=SCHEMA_VERSION,
        name=f"sunrgbd-{cfg.subset.replace('/', '-').replace(',', '+')}",
        description="SUN RGB-D converted to a Cityscapes-style layout by sunrgbd-tools",
        source={
            "dataset": "SUN RGB-D",
            "url": "http://rgbd.cs.princeton.edu",
            "citation": "S. Song, S. P. Lichtenberg, J. Xiao. SUN RGB-D: A RGB-D Scene Understanding "
            "Benchmark Suite. CVPR 2015. (Please also cite NYU Depth v2, B3DO and SUN3D.)",
        },
        subset=cfg.subset,
        label_source=cfg.labels,
        label_mode=cfg.labels,
        label_mode_description=LABEL_MODES[cfg.labels],
        label_source_counts=sources,
        classes=table.to_json(),
        num_classes=table.lookup.num_classes,
        ignore_index=IGNORE_INDEX,
        image_size=list(cfg.size) if cfg.size else (list(next(iter(sizes))) if len(sizes) == 1 else None),
        image_format=cfg.image_format,
        depth={"unit": "mm", "missing": 0, "max_mm": DEPTH_MAX_MM} if cfg.depth else None,
        splits=counts,
        val_split=val_source,
        files=file_templates(cfg.image_format, cfg.depth),
        mapping_sha256=mapper.sha256,
        mapping_files=getattr(mapper, "files", {}),
        problems={"reported": n_problems, "skipped_samples": skipped, "salvaged_samples": salvaged},
        created_with={
            "tool": "sunrgbd-tools",
            "version": __version__,
            "command": cfg.command(),
            "config": cfg.to_json(),
        },
    )
    # keep what later steps added (e.g. `sunrgbd stats` keys) when a finished tree is re-run
    path = out / DATASET_JSON
    if path.exists():
        try:
            doc.keep_added(load_json_object(path))
        except ContractError:
            pass
    write_dataset_json(path, doc)
