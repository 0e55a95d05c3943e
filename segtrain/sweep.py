"""`segtrain sweep`: a grid of training runs, one after another, and one comparison table.

Each run is an ordinary run folder under the sweep folder (config.yaml, metrics.csv,
checkpoints), so any of them can be evaluated or resumed on its own. Re-running the same
sweep resumes unfinished runs and reuses finished ones (their numbers come from their
checkpoints). The table (`sweep.csv`, `sweep.md`) is rewritten after every run, so an
interrupted sweep still leaves the results so far.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleantree.files import atomic_write_text
from segtrain.config import (
    RUN_OPTION,
    RUN_OPTIONS,
    TrainConfig,
    UnsupportedCombination,
    build_config,
    check_value,
    flag,
    load_config_file,
    moot_options,
    save_config,
    to_dict,
)
from segtrain.parts import PARTS
from segtrain.utils import SegtrainError, check_out_dir

log = logging.getLogger("segtrain")

# `run` options of a scalar type that still take one value for the whole sweep, and why.
ONE_VALUE = {"data": "the tree every run reads (checked once, before the first run); sweep another tree "
                     "with another sweep",
             "out": "the sweep's own folder; each run's is OUT/<run name>"}
# Where grid keys nest (the first varies slowest): the model and what the network sees, then the
# order sweeps have always nested in (existing sweep folders' run names and sweep.csv columns
# follow it), then every other grid key in `run --help` order, and the seed last (repeats of one
# setting side by side). Which options are grid keys is not listed: see _grid_keys().
NEST_FIRST = ("model", "inputs", "depth_encoding", "fusion", "lr", "train_parts", "batch_size", "weight_decay",
              "optimizer", "scheduler", "warmup_steps", "loss", "augment", "epochs")
NEST_LAST = ("seed",)


def _grid_keys() -> tuple[str, ...]:
    """The model and every `run` option with one value of a number or text (a comma list of them
    spans the grid), in nesting order; switches, sizes and model options apply to all runs."""
    keys = {o.name for o in RUN_OPTIONS if o.kind in (int, float, str) and o.name not in ONE_VALUE} | {"model"}
    rest = [o.name for o in RUN_OPTIONS if o.name in keys and o.name not in NEST_FIRST + NEST_LAST]
    return tuple(k for k in (*NEST_FIRST, *rest, *NEST_LAST) if k in keys)


GRID_KEYS = _grid_keys()
TABLE_COLUMNS = ("best_val_miou", "best_epoch", "epochs", "trainable_params", "params", "time_s", "stopped")


@dataclass
class SweepConfig:
    """A sweep: fixed run options, the grid, and where it goes (saved as sweep.yaml)."""

    out: str = ""
    base: dict[str, Any] = field(default_factory=dict)  # TrainConfig options shared by every run
    grid: dict[str, list] = field(default_factory=dict)  # GRID_KEYS -> values
    strict: bool = False


def split_values(key: str, text: str) -> list:
    """'1e-2,1e-3' -> [0.01, 0.001] typed like TrainConfig's field. train_parts values contain
    commas themselves: they are split on '|' or ';' when given, else grouped so that every
    value ends at 'head' or 'all' ('head,decoder,head,all' -> head | decoder,head | all)."""
    text = str(text).strip()
    if key == "train_parts":
        if "|" in text or ";" in text:
            values = [v.strip() for v in re.split(r"[|;]", text) if v.strip()]
        else:
            values, group = [], []
            for tok in (t.strip() for t in text.replace("+", ",").split(",")):
                if not tok:
                    continue
                group.append(tok)
                if tok in ("head", "all"):
                    values.append(",".join(group))
                    group = []
            if group and not values:  # one value without the head, as `run` takes it (encoder,decoder)
                values, group = [",".join(group)], []
            if group:
                raise SegtrainError(f"--train-parts {text!r}: {','.join(group)!r} does not end with head "
                                    f"(separate values with | to train parts without the head; parts: "
                                    f"{', '.join(PARTS)}, all)")
        return values
    raw = [v.strip() for v in text.split(",") if v.strip()]
    if not raw:
        raise SegtrainError(f"--{key.replace('_', '-')}: no values given")
    choices = RUN_OPTION[key].choices if key in RUN_OPTION else ()
    values = []
    for v in raw:
        try:
            values.append(check_value(TrainConfig, key, v))
            if choices and v not in choices:
                raise ValueError(f"is not one of {', '.join(choices)}")
        except ValueError as e:
            raise SegtrainError(f"--{key.replace('_', '-')} {text!r}: {v!r} {e}") from None
    return values


def expand(grid: dict[str, list]) -> list[dict[str, Any]]:
    """The cartesian product, nested in GRID_KEYS order (the first key varies slowest)."""
    keys = [k for k in GRID_KEYS if k in grid]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _slug(value) -> str:
    text = "all" if value == "all" else str(value)
    return re.sub(r"[^A-Za-z0-9.=_-]+", "+", text).strip("+")


def _pairs(combo: dict[str, Any]) -> list[str]:
    return [f"{k}={_slug(v)}" for k, v in combo.items()]


def run_name(index: int, combo: dict[str, Any]) -> str:
    parts = [f"{index:02d}", _slug(combo.get("model", "")),
             *_pairs({k: v for k, v in combo.items() if k != "model"})]
    return "-".join(p for p in parts if p)


def shown(combo: dict[str, Any]) -> str:
    """A grid point as a log line shows it: `model=unet_small inputs=rgb fusion=mid`."""
    return " ".join(_pairs(combo))


@dataclass
class SweepRun:
    name: str
    combo: dict[str, Any]  # its grid values, less those that change nothing for it (config.moot_options)
    config: TrainConfig


@dataclass
class LeftOut:
    """A grid point no run trains, and why."""

    combo: dict[str, Any]
    name: str  # the name it would have had
    reason: str


@dataclass
class SweepPlan:
    runs: list[SweepRun]
    left_out: list[LeftOut]


def plan(cfg: SweepConfig) -> SweepPlan:
    """Every run's resolved and validated config and what the tree must hold for it, checked
    before anything is trained. Left out of the grid, with a warning, and numbered without:
    a combination no run can take (config.UnsupportedCombination: `--fusion mid` with `--inputs
    rgb`, a model without mid fusion, `--augment strong --augment-on device`), and a run that
    trains the same as one before it (its values differ only in options that change nothing
    for it, config.moot_options: `--depth-encoding` of an RGB network), so `--inputs rgb,rgbd
    --fusion early,mid` is the three networks. Any other error refuses the sweep, as `run`
    refuses it; so does a grid of which nothing can run (with each distinct reason)."""
    from segtrain.models import check_inputs, check_model

    if not cfg.out:
        raise SegtrainError("no output folder given: use --out DIR")
    check_out_dir(cfg.out)
    if "model" not in cfg.grid and "model" not in cfg.base:
        raise SegtrainError("no model given")
    runs, left_out, kept = [], [], {}
    for combo in expand(cfg.grid):
        name = run_name(len(runs) + 1, combo)
        tc = build_config(TrainConfig, cfg.base, combo, {"out": str(Path(cfg.out) / name)})
        try:
            tc.validate()
            check_model(tc.model, tc.model_options)
            check_inputs(tc.model, tc.model_options, tc.inputs, tc.fusion)
        except UnsupportedCombination as e:
            left_out.append(LeftOut(combo, name, e.args[0]))
            continue
        except (KeyError, ValueError) as e:
            raise SegtrainError(f"sweep run {name}: {e.args[0]}") from None
        except SegtrainError as e:
            raise SegtrainError(f"sweep run {name}: {e}") from None
        values = to_dict(tc)
        moot = moot_options(values)
        same = json.dumps({k: v for k, v in values.items() if k != "out" and k not in moot}, sort_keys=True,
                          default=str)
        if same in kept:
            why = "; ".join(f"{flag(k)} changes nothing with {moot[k]}" for k in combo if k in moot)
            left_out.append(LeftOut(combo, name, f"trains the same as {kept[same]}" + (f" ({why})" if why else "")))
            continue
        combo = {k: v for k, v in combo.items() if k not in moot}  # its name says only what it trains with
        name = kept[same] = run_name(len(runs) + 1, combo)
        tc.out = str(Path(cfg.out) / name)
        runs.append(SweepRun(name, combo, tc))
    if not runs:  # nothing of the grid can run: every distinct reason, as `run` gives it
        first = {}
        for lo in left_out:
            first.setdefault(lo.reason, lo.name)
        raise SegtrainError("; ".join(f"sweep run {name}: {reason}" for reason, name in first.items()))
    for lo in left_out:
        log.warning("sweep: %s left out of the grid: %s", shown(lo.combo), lo.reason)
    _check_data(runs)
    return SweepPlan(runs, left_out)


def _check_data(runs: list[SweepRun]) -> None:
    """What `run` checks in the tree before it writes anything, once per value of the grid
    rather than when a run's turn comes: the dataset, the class weights of each --class-weights
    (or --loss wce's default), the train and --val-split splits, depth for inputs that read it."""
    from segtrain.data import eval_dataset, load_dataset_info, train_dataset
    from segtrain.depth import uses_depth
    from segtrain.engine import class_weight_method

    info = load_dataset_info(runs[0].config.data)  # one tree per sweep: one error, not one per run
    done: set = set()
    for run in runs:
        tc, depth = run.config, uses_depth(run.config.inputs)
        method = class_weight_method(tc, info)
        try:
            if method and method not in done:
                info.weights(method)
                done.add(method)
            if ("train", tc.train_split, depth) not in done:
                train_dataset(info, tc.train_split, "none", tc.size, tc.crop, depth, option="train_split in --config")
                done.add(("train", tc.train_split, depth))
            if ("val", tc.val_split, depth) not in done:
                eval_dataset(info, tc.val_split, tc.size, depth, option="--val-split")
                done.add(("val", tc.val_split, depth))
        except SegtrainError as e:
            raise SegtrainError(f"sweep run {run.name}: {e}") from None


def _fmt(v, key: str) -> str:
    if v is None or v == "":
        return ""
    if key == "best_val_miou":
        return f"{v:.4f}"
    if key == "time_s":
        return f"{v:.1f}"
    if key in ("trainable_params", "params"):
        return f"{v:,}"
    return str(v)


def table_columns(grid_keys: list[str]) -> list[str]:
    """TABLE_COLUMNS, with `epochs` (those completed) as `epochs_completed` when --epochs is a
    grid column (the epochs asked for)."""
    return [("epochs_completed" if c == "epochs" and "epochs" in grid_keys else c) for c in TABLE_COLUMNS]


def write_tables(out: Path, rows: list[dict], grid_keys: list[str]) -> None:
    """sweep.csv (raw numbers) and sweep.md (formatted, best mIoU in bold)."""
    results = table_columns(grid_keys)
    cols = ["run", *grid_keys, *results]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    scores = [r["best_val_miou"] for r in rows if r.get("best_val_miou") is not None]
    best = max(scores) if scores else None
    names = {"best_val_miou": "best val mIoU", "best_epoch": "best epoch", "trainable_params": "trainable params",
             "params": "params", "time_s": "time (s)", "train_parts": "train parts",
             "batch_size": "batch size", "weight_decay": "weight decay", "warmup_steps": "warm-up steps",
             "miou_rule": "mIoU rule"}
    lines = ["| " + " | ".join(names.get(c, c.replace("_", " ")) for c in cols) + " |",
             "|" + "|".join("---:" if c in results[:-1] else "---" for c in cols) + "|"]
    for r in rows:
        cells = []
        for c in cols:
            cell = _fmt(r.get(c), c)
            if c == "best_val_miou" and best is not None and r.get(c) == best:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(out / "sweep.md", "\n".join(lines) + "\n")


def _check_resumable(runs: list[SweepRun]) -> None:
    """A re-run resumes or reuses the runs that have a last.pt: refuse, before anything is
    written, when the options given now differ from what such a run was trained with (its
    config.yaml), instead of reporting its old numbers under the new options."""
    from segtrain.checkpoint import resume_config_diffs
    from segtrain.run_folder import epochs_recorded

    for run in runs:
        folder = Path(run.config.out)
        if (folder / "last.pt").is_file() and (folder / "config.yaml").is_file():
            # every option, the model's too: config.yaml holds them as the sweep gave them
            diffs = resume_config_diffs(load_config_file(folder / "config.yaml"), run.config, skip=())
            done = epochs_recorded(folder / "metrics.csv")
            if done > run.config.epochs:
                diffs.append(f"--epochs {run.config.epochs} (the run has trained {done})")
            if diffs:
                raise SegtrainError(f"{folder}: this sweep run was trained with other options than given now "
                                    f"({'; '.join(diffs)}); re-run the sweep with its options (--epochs may "
                                    f"grow) or give the sweep a new --out")


def run_sweep(cfg: SweepConfig, progress: bool = True, train_fn=None) -> list[dict]:
    """Train every run of the grid in order; returns the table rows. A run that fails is
    reported in its row (`stopped` = error: …) and the sweep goes on."""
    from segtrain.engine import train
    from segtrain.run_folder import check_run_folder, claim_run_folder

    train_fn = train_fn or train
    runs = plan(cfg).runs
    _check_resumable(runs)
    out = check_run_folder(cfg.out, kind="sweep")  # never write into a folder that is not a sweep
    claim_run_folder(out, "sweep")
    save_config(cfg, out / "sweep.yaml")
    grid_keys = [k for k in GRID_KEYS if k in cfg.grid]
    epochs = table_columns(grid_keys)[TABLE_COLUMNS.index("epochs")]
    rows: list[dict] = []
    for i, run in enumerate(runs, 1):
        log.info("sweep run %d/%d: %s", i, len(runs), run.name)
        row: dict[str, Any] = {"run": run.name, **run.combo}
        resume = (Path(run.config.out) / "last.pt").is_file()
        try:
            res = train_fn(run.config, resume=resume, progress=progress)
        except SegtrainError as e:
            log.error("sweep run %s failed: %s", run.name, e)
            row["stopped"] = f"error: {e}"
        else:
            row.update({"best_val_miou": res.best_miou, "best_epoch": res.best_epoch,
                        epochs: res.epochs_completed, "trainable_params": res.trainable_parameters,
                        "params": res.parameters, "time_s": res.train_time_s,
                        "stopped": "completed (reused)" if res.stopped == "already-complete" else res.stopped})
        rows.append(row)
        write_tables(out, rows, grid_keys)
    return rows
