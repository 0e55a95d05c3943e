"""`segtrain eval` and `segtrain predict`: a checkpoint applied to a split or to any images."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from cleantree.files import atomic_write_json, sha256_file
from cleantree.paths import DEPTH_SUFFIX, IMAGE_SUFFIX
from segtrain import __version__
from segtrain.checkpoint import (
    check_classes,
    load_checkpoint,
    model_from_checkpoint,
    runtime_for_checkpoint,
)
from segtrain.config import EvalConfig, PredictConfig, TTAConfig, save_config, to_dict
from segtrain.data import (
    classes_from_json,
    eval_dataset,
    load_dataset_info,
    make_loader,
    read_depth,
)
from segtrain.depth import uses_depth
from segtrain.engine import evaluate
from segtrain.metrics import summarize
from segtrain.report import (
    colorize,
    plot_confusion,
    plot_curves,
    plot_panels,
    plot_per_class_iou,
    write_confusion_csv,
    write_metrics_json,
    write_per_class_csv,
)
from segtrain.runtime import Runtime, prepare_model, resolve_device
from segtrain.tta import segment_labels
from segtrain.utils import (
    UPRIGHT,
    SegtrainError,
    check_out_dir,
    exif_orientation,
    parse_hw,
    read_rgb,
    write_png,
)

log = logging.getLogger("segtrain")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@torch.inference_mode()
def predict_array(model, rt: Runtime, image: np.ndarray, size=None, depth: np.ndarray | None = None,
                  tta: TTAConfig | None = None, max_scores: float | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) (+ uint16 depth in mm for depth checkpoints) -> train-id mask (H, W)
    at the image's own size; `tta` scales / flips the resized input as eval does (segtrain.tta).
    A large image's class scores are never all held (tta.segment_labels; `max_scores` math.inf
    holds them, as eval's batches do)."""
    h, w = image.shape[:2]
    x = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) if size else image
    batch = {"image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]}
    if depth is not None:
        if size:
            depth = cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        batch["depth"] = torch.from_numpy(depth.astype(np.float32) / 1000.0)[None]
    x = rt.batch_inputs(batch)
    return segment_labels(model, x, rt, (h, w), tta, max_scores)[0].to(torch.uint8).cpu().numpy()


def _load_model(checkpoint: str, device_name: str, amp: bool):
    ckpt = load_checkpoint(checkpoint)
    device = resolve_device(device_name)
    rt = runtime_for_checkpoint(ckpt, device, amp)
    model = prepare_model(model_from_checkpoint(ckpt), rt).eval()
    return ckpt, rt, model


# the files of an eval report: those always written, eval_config.yaml (written first), the
# panels of each --panels set, the curves of the checkpoint's run
METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class_iou.csv"
CONFUSION_CSV = "confusion_matrix.csv"
PER_CLASS_PNG = "per_class_iou.png"
CONFUSION_PNG = "confusion_matrix.png"
REPORT_ALWAYS = (METRICS_JSON, PER_CLASS_CSV, CONFUSION_CSV, PER_CLASS_PNG, CONFUSION_PNG)
EVAL_CONFIG = "eval_config.yaml"
PANELS = {"best": "panels_best.png", "worst": "panels_worst.png"}
CURVES = "curves.png"
# every file an eval report may hold (metrics.json lists those of each report under "files")
REPORT_FILES = (METRICS_JSON, EVAL_CONFIG, PER_CLASS_CSV, CONFUSION_CSV, PER_CLASS_PNG, CONFUSION_PNG,
                *PANELS.values(), CURVES)


def earlier_report(out: Path) -> list[str]:
    """The files of an earlier eval report in `out`, finished (metrics.json lists them) or
    interrupted (eval_config.yaml is written first): this report replaces them, and those it
    does not write again are removed, so no panel or curve of another checkpoint stays beside
    it. A file of a report's name in a folder that holds no report is refused, never overwritten."""
    present = [name for name in REPORT_FILES if (out / name).exists()]
    if not present:
        return []
    old = _read_quietly(out / METRICS_JSON, json.loads)
    if isinstance(old, dict) and {"checkpoint", "split", "files"} <= old.keys() \
            and isinstance(old["files"], list):
        return [f for f in old["files"] if f in REPORT_FILES]
    config = _read_quietly(out / EVAL_CONFIG, yaml.safe_load)
    interrupted = METRICS_JSON not in present and isinstance(config, dict)
    if interrupted and {"checkpoint", "data", "split", "out"} <= set(config):
        return present
    raise SegtrainError(f"{out / present[0]}: exists and is not part of a segtrain eval report; eval "
                        "would overwrite it (choose a new or empty --out)")


def _read_quietly(path: Path, parse):
    """`parse` of a text file, or None when it is missing or does not parse."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def run_eval(cfg: EvalConfig, progress: bool = True) -> dict:
    """Evaluate a checkpoint on one split; write metrics, CSVs and figures to cfg.out."""
    if not cfg.out:
        raise SegtrainError("no output folder given: use --out DIR")
    cfg.validate()
    check_out_dir(cfg.out)
    earlier = earlier_report(Path(cfg.out))
    info = load_dataset_info(cfg.data)
    ckpt, rt, model = _load_model(cfg.checkpoint, cfg.device, cfg.amp)
    check_classes(ckpt, info, cfg.checkpoint)
    size = list(parse_hw(cfg.size)) if cfg.size else ckpt.get("size")
    cfg.size = size
    skipped: list[tuple[str, str]] = []
    ds = eval_dataset(info, cfg.split, size, with_depth=uses_depth(rt.inputs), option="--split", skipped=skipped)
    bs = cfg.batch_size if info.image_size is not None else 1
    loader, _ = make_loader(ds, bs, False, 0, cfg.workers, rt.device)
    res = evaluate(model, loader, rt, info.num_classes, None, info.eval_mask, per_image=True,
                   progress=progress, desc=f"eval {cfg.split}", miou_rule=cfg.miou_rule, tta=cfg.tta)
    summary = summarize(res.confusion, info.class_names, info.eval_mask, cfg.miou_rule)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / EVAL_CONFIG)

    scored = sorted((s, i) for i, s in res.image_scores if not math.isnan(s))
    k = max(0, min(cfg.panels, len(scored)))
    worst = [(i, s) for s, i in scored[:k]]
    best = [(i, s) for s, i in reversed(scored[-k:])] if k else []
    colors = [c.color for c in info.classes]
    files = list(REPORT_ALWAYS)
    for name, chosen in (("best", best), ("worst", worst)):
        if not chosen:
            continue
        rows = []
        for idx, score in chosen:
            image, mask, depth = ds.load(idx)
            # all class scores held (math.inf), as evaluate's batches are: the mask it scored
            pred = predict_array(model, rt, image, size, depth, cfg.tta, math.inf)
            rows.append((f"{ds.samples[idx].id[:40]}\nmIoU {score:.3f}", image, mask, pred))
        plot_panels(rows, f"{name} {len(rows)} images of {cfg.split} by image mIoU ({cfg.miou_rule} rule)",
                    out / PANELS[name], info.class_names, colors, info.ignore_index)
        files.append(PANELS[name])
    metrics_csv = Path(cfg.checkpoint).parent / "metrics.csv"
    if plot_curves(metrics_csv, out / CURVES):
        files.append(CURVES)
    write_per_class_csv(out / PER_CLASS_CSV, summary, res.confusion, info.class_names)
    write_confusion_csv(out / CONFUSION_CSV, res.confusion, info.class_names)
    plot_per_class_iou(summary, colors, out / PER_CLASS_PNG)
    plot_confusion(res.confusion, info.class_names, out / CONFUSION_PNG)
    metrics = {
        "checkpoint": str(cfg.checkpoint), "data": str(cfg.data), "split": cfg.split,
        "model": ckpt["model_name"], "epoch": ckpt.get("epoch"), "num_images": len(ds),
        # unreadable samples of the split left out: the scores are over num_images, not the split
        "skipped_images": [{"id": i, "problem": why} for i, why in skipped],
        "input_size": size, "label_mode": info.label_mode,
        "tta": to_dict(cfg.tta), **summary,
        "per_sensor_miou": {s: summarize(m, info.class_names, info.eval_mask, cfg.miou_rule)["miou"]
                            for s, m in sorted(res.per_sensor.items())},
        "best_images": [{"id": ds.samples[i].id, "miou": s} for i, s in best],
        "worst_images": [{"id": ds.samples[i].id, "miou": s} for i, s in worst],
        "files": sorted(files),
    }
    write_metrics_json(out / METRICS_JSON, metrics)
    for name in sorted(set(earlier) - {*files, EVAL_CONFIG}):  # the earlier report's, not written now
        (out / name).unlink(missing_ok=True)
    return metrics


class DepthUnreadable(SegtrainError):
    """An input image's depth map (--depth) is missing, cannot be read or is not of its size."""


class NoReadableInput(SegtrainError):
    """Not one input image could be read with its depth map; `problems` says why for each,
    and the message what was missing: the images, their depth maps, or some of each."""

    def __init__(self, problems: list[str], depth_problems: int = 0):
        n, images = len(problems), len(problems) - depth_problems
        if not depth_problems:
            what = "could be read"
        elif not images:
            what = "has a usable depth map (--depth)"
        else:
            what = (f"could be read with a usable depth map ({images} image(s) unreadable and "
                    f"{depth_problems} without a usable depth map)")
        super().__init__(f"none of the {n} input image(s) {what}; nothing predicted")
        self.problems = problems


@dataclass
class PredictResult:
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    already: int = 0  # inputs whose masks an interrupted run with the same record had written


OUTPUT_SUFFIXES = ("_labelTrainIds.png", "_color.png")  # what predict writes for each image
RECORD = "predict.json"  # in --out: what made the masks there, and which files are predict's
RECORD_TOOL = "segtrain predict"


def read_record(path: Path) -> dict | None:
    """A predict record (RECORD) or None: missing, unreadable, or a file that is no record.
    Its outputs are only mask names in its own folder (an edited record names nothing else,
    so no file outside it is ever replaced)."""
    rec = _read_quietly(path, json.loads)
    if isinstance(rec, dict) and rec.get("tool") == RECORD_TOOL and isinstance(rec.get("outputs"), list) \
            and isinstance(rec.get("checkpoint"), dict) and isinstance(rec.get("options"), dict):
        rec["outputs"] = [n for n in rec["outputs"] if isinstance(n, str) and Path(n).name == n
                          and n.endswith(OUTPUT_SUFFIXES)]
        if not isinstance(rec.get("inputs"), dict):  # a record of before input stamps: names only
            rec["inputs"] = {}
        return rec
    return None


def input_stamp(image: Path, depth_dir: str | None) -> dict | None:
    """What tells a changed input from the one whose masks were written, cheaply: the size and
    mtime_ns of the image (and of its depth map with --depth), as make and rsync's quick check
    decide. A hash would read every photo on every re-run. None when the image cannot be
    stat'ed (it is then reported when read)."""
    try:
        stamp = _stat_stamp(image)
    except OSError:
        return None
    if depth_dir:
        try:
            stamp["depth"] = _stat_stamp(depth_file(Path(depth_dir), image))
        except OSError:
            stamp["depth"] = None
    return stamp


def _stat_stamp(path: Path) -> dict:
    """A file's size and mtime_ns (OSError when it cannot be stat'ed)."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def recorded_outputs(records: dict) -> set[Path]:
    """The files the predict records ({folder: its record or None}) name as predict's outputs
    (resolved)."""
    own: set[Path] = set()
    for folder, rec in records.items():
        if rec is not None:
            own.update(Path(folder).resolve() / name for name in rec["outputs"])
    return own


def expand_inputs(inputs: list[str], out: str | Path | None = None, out_record: dict | None = None) -> list[Path]:
    """Files as given; folders expanded to the images below them (sorted).

    A file that a predict record (RECORD in `out`, or in a folder below an input folder) names
    as predict's output is left out, found in a folder or named (`photos/* --out photos`), so a
    re-run does not predict its own masks; so is `out`'s record itself, named. Any other file is
    an input, also a user's own `x_color.png` beside `x.png`. A file named explicitly that
    predict would overwrite in `out` is refused. A file given twice (a folder and a file in it,
    `photos/*.jpg photos/`) is predicted once. `out_record`: `out`'s record (read_record; the
    caller reads it once, as it also says what is done)."""
    found: list[Path] = []
    explicit: set[Path] = set()
    record_dirs: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                if any(part.startswith(".") for part in q.relative_to(p).parts):
                    continue
                if q.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(q)
                elif q.name == RECORD:
                    record_dirs.add(q.parent)
        else:
            found.append(p)
            explicit.add(p)
    records = {d: read_record(d / RECORD) for d in sorted(record_dirs)}
    if out is not None:
        records[Path(out)] = out_record
    own_files = recorded_outputs(records)
    own_records = {(Path(d) / RECORD).resolve() for d, rec in records.items() if rec is not None}
    resolved = {q: q.resolve() for q in found}
    firsts: dict[Path, Path] = {}  # the same file under any spelling: its first mention
    for q in found:
        firsts.setdefault(resolved[q], q)
    explicit = {firsts[resolved[q]] for q in explicit}
    found = [q for q in found if firsts[resolved[q]] is q]
    stems = {output_stem(q) for q in found}
    out_dir = Path(out).resolve() if out is not None else None
    paths, own = [], 0
    for q in found:
        if resolved[q] in own_files:
            own += 1
            continue
        if q not in explicit:
            paths.append(q)
            continue
        if resolved[q] in own_records:  # `photos/*` names photos/predict.json too
            continue
        mask_of = next((q.name.removesuffix(sfx) for sfx in OUTPUT_SUFFIXES if q.name.endswith(sfx)), None)
        if mask_of in stems and out_dir is not None and resolved[q].parent == out_dir:
            raise SegtrainError(f"{q}: is an input, and predict would overwrite it with the mask of "
                                f"another input; choose another --out")
        paths.append(q)
    if own:
        log.info("%d file(s) that predict wrote (listed in its %s) left out", own, RECORD)
    return paths


def output_stem(path: Path) -> str:
    """File stem without a Cityscapes `_leftImg8bit` suffix (so outputs read <id>_color.png)."""
    return path.stem.removesuffix(IMAGE_SUFFIX)


def depth_file(folder: Path, image: Path) -> Path:
    """<stem>_depth.png (the clean tree's name) or else <image stem>.png in `folder`."""
    named = folder / f"{output_stem(image)}{DEPTH_SUFFIX}"
    return named if named.exists() or not (folder / f"{image.stem}.png").exists() else folder / f"{image.stem}.png"


def read_image_and_depth(path: Path, depth_dir: str | None, keep_exif_orientation: bool):
    """The RGB image (turned upright by its EXIF tag unless `keep_exif_orientation`: then as
    stored, a TIFF too, read_rgb) and, with `depth_dir`, its depth map turned the same way: a
    depth PNG has no EXIF and belongs to the image's stored pixels (the camera wrote both), so
    it must match their size."""
    image = read_rgb(path, exif_orientation=not keep_exif_orientation)  # decoded once
    if not depth_dir:
        return image, None
    # OpenCV turned the image by its tag (upright), or it holds the stored pixels
    orientation = 1 if keep_exif_orientation else exif_orientation(path)
    stored = image.swapaxes(0, 1) if orientation >= 5 else image  # the stored pixels' shape
    try:
        depth = read_depth(depth_file(Path(depth_dir), path), stored)
    except SegtrainError as e:
        raise DepthUnreadable(str(e)) from None
    if orientation == 1:
        return image, depth
    return image, np.ascontiguousarray(UPRIGHT[orientation](depth))


def run_predict(cfg: PredictConfig, progress: bool = True) -> PredictResult:
    """Write <stem>_labelTrainIds.png and <stem>_color.png for every input image, at its size.

    A JPEG with an EXIF orientation tag is turned upright first (as viewers show it), so the
    masks overlay the image as people see it; `keep_exif_orientation` keeps the stored pixel
    order instead (masks then overlay the raw pixels, as a program reading them sees them).

    An unreadable image is reported and skipped; the others are still predicted.
    """
    if not cfg.out:
        raise SegtrainError("no output folder given: use --out DIR")
    cfg.validate()
    check_out_dir(cfg.out)
    out = Path(cfg.out)
    earlier = read_record(out / RECORD)  # read once: it says which inputs are predict's and what is done
    paths = expand_inputs(cfg.inputs, out, earlier)
    if not paths:
        raise SegtrainError(f"{', '.join(cfg.inputs)}: no image files in it "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))}); nothing predicted")
    seen: dict[str, Path] = {}
    for p in paths:
        if output_stem(p) in seen:
            raise SegtrainError(f"{p}: same name as {seen[output_stem(p)]}; outputs would collide "
                                "(predict them separately)")
        seen[output_stem(p)] = p
    planned = {p: [f"{output_stem(p)}{suffix}" for suffix in OUTPUT_SUFFIXES] for p in paths}
    outputs = sorted(name for names in planned.values() for name in names)
    earlier_predictions(out, outputs, earlier)  # a foreign file is refused before the model loads
    ckpt, rt, model = _load_model(cfg.checkpoint, cfg.device, cfg.amp)
    if uses_depth(rt.inputs) and not cfg.depth:
        raise SegtrainError(f"{cfg.checkpoint}: was trained with --inputs {rt.inputs}; give --depth DIR "
                            f"(<stem>{DEPTH_SUFFIX}, uint16 millimetres, for every image)")
    if cfg.depth and not uses_depth(rt.inputs):
        raise SegtrainError(f"{cfg.checkpoint}: was trained with --inputs rgb; it takes no --depth")
    if cfg.depth and not Path(cfg.depth).is_dir():
        raise SegtrainError(f"{cfg.depth}: depth folder not found")
    size = list(parse_hw(cfg.size)) if cfg.size else ckpt.get("size")
    colors = [c.color for c in classes_from_json(ckpt["classes"])]
    record = {"tool": RECORD_TOOL, "version": __version__,
              "checkpoint": {"path": str(cfg.checkpoint), "sha256": sha256_file(cfg.checkpoint)},
              "options": {"size": size, "scales": list(cfg.tta.scales), "flip": cfg.tta.flip,
                          "amp": rt.amp_dtype is not None, "device": rt.device.type,
                          "depth": str(Path(cfg.depth).resolve()) if cfg.depth else None,
                          "keep_exif_orientation": cfg.keep_exif_orientation},
              "outputs": outputs}
    stamps = {output_stem(p): input_stamp(p, cfg.depth) for p in paths}  # before any image is read
    differs = _record_difference(earlier, record) if earlier is not None else ""
    same = earlier is not None and not differs
    changed: list[Path] = []  # inputs replaced since their masks were written
    if same:  # an interrupted (or finished) run of the same masks: its outputs stay, listed
        record["outputs"] = sorted({*record["outputs"], *earlier["outputs"]})
        done = set()
        for p, names in planned.items():
            if all((out / n).is_file() for n in names):
                old, new = earlier["inputs"].get(output_stem(p)), stamps[output_stem(p)]
                if old is None or new is None or old == new:  # no stamp recorded (or none now): by name
                    done.add(p)
                else:
                    changed.append(p)
        if done:
            log.info("%d of %d already predicted, skipped", len(done), len(paths))
        for p in changed:  # the old photo's masks go now, also when the new file does not read
            for name in planned[p]:  # (missing masks mean "not done": the next run tries it again)
                (out / name).unlink(missing_ok=True)
        paths = [p for p in paths if p not in done]
        stamps = {**earlier["inputs"], **{k: v for k, v in stamps.items() if v is not None}}
    record["inputs"] = dict(sorted((k, v) for k, v in stamps.items() if v is not None))
    stale = [] if same or earlier is None else sorted(n for n in earlier["outputs"] if (out / n).is_file())
    if stale:
        log.warning("%s: made by %s; its %d earlier mask file(s) are replaced, everything is predicted again",
                    out / RECORD, differs, len(stale))
    result = PredictResult(already=len(planned) - len(paths))
    depth_problems = 0
    changing, again = set(changed), 0  # changed inputs, and how many of them are predicted again
    for p in tqdm(paths, desc="predict", disable=not progress, unit="image"):
        try:
            image, depth = read_image_and_depth(p, cfg.depth, cfg.keep_exif_orientation)
        except SegtrainError as e:
            result.problems.append(str(e))  # reported by the caller; the batch goes on
            depth_problems += isinstance(e, DepthUnreadable)
            continue
        pred = predict_array(model, rt, image, size, depth, cfg.tta)
        if not result.written:  # the earlier run's masks go, then the record, before the first mask
            for name in stale:
                (out / name).unlink(missing_ok=True)
            atomic_write_json(out / RECORD, record)
        label_path, color_path = (out / name for name in planned[p])
        write_png(label_path, pred)
        write_png(color_path, colorize(pred, colors))
        result.written += [label_path, color_path]
        again += p in changing
    if changed:
        _log_changed(changed, again)
    if not result.written and not result.already:  # nothing to predict is a usage error, not a finished job
        raise NoReadableInput(result.problems, depth_problems)
    return result


def _log_changed(changed: list[Path], again: int) -> None:
    """Say how many inputs had changed since their masks were written, and how many of them
    were predicted again (the others did not read: reported, their old masks removed)."""
    what = f"{len(changed)} image(s) changed since their masks were written (size or modification time)"
    if again == len(changed):
        log.info("%s, predicted again", what)
    else:
        log.info("%s: %d predicted again, %d could not be read (their old masks removed)", what, again,
                 len(changed) - again)


def earlier_predictions(out: Path, outputs: list[str], earlier: dict | None) -> None:
    """Refuse a file predict would write in `out` that `earlier` (the record there, read_record)
    does not name (a user's own, or a mask of a version without records): it is never
    overwritten; so is a RECORD that is no predict record."""
    if earlier is None and (out / RECORD).exists():
        raise SegtrainError(f"{out / RECORD}: exists and is not a segtrain predict record; predict would "
                            "overwrite it (choose a new or empty --out)")
    own = set(earlier["outputs"]) if earlier is not None else set()
    for name in outputs:
        if name not in own and (out / name).exists():
            raise SegtrainError(f"{out / name}: exists and was not written by segtrain predict (not listed "
                                f"in {out / RECORD}); predict would overwrite it (choose a new or empty --out)")


def _record_difference(earlier: dict, record: dict) -> str:
    """What decides the masks and differs, '' if nothing: the checkpoint's bytes (not its path: a
    copy or another spelling predicts the same masks), the options, the tool version. Joined:
    'another checkpoint and other options (flip, size) and segtrain 0.3 (this is 0.4)'."""
    what = []
    if earlier["checkpoint"].get("sha256") != record["checkpoint"]["sha256"]:
        what.append("another checkpoint")
    changed = sorted(k for k in {*earlier["options"], *record["options"]}
                     if earlier["options"].get(k) != record["options"].get(k))
    if changed:
        what.append(f"other options ({', '.join(changed)})")
    if earlier.get("version") != record["version"]:
        what.append(f"segtrain {earlier.get('version')} (this is {record['version']})")
    return " and ".join(what)
