"""One dataclass per command; resolved configs are saved next to their outputs.

Precedence for `segtrain run`: dataclass defaults < the run folder's saved config.yaml
(only with --resume) < `--config FILE` < flags given on the command line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cleantree.files import atomic_write_text, os_cause
from segtrain.augment_params import AUGMENTS, DEVICE_AUGMENTS
from segtrain.parts import parse_parts, parts_label
from segtrain.utils import (
    SegtrainError,
    parse_hw,
)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("plateau", "poly", "cosine", "none")
AUGMENT_ON = ("auto", "loader", "device")  # where --augment runs (segtrain.device_augment)
DEVICES = ("auto", "cuda", "cpu")
MIOU_RULES = ("standard", "gt-present")  # segtrain.metrics.MIOU_RULES says what each counts
INPUTS = ("rgb", "rgbd", "depth")  # what the network sees (segtrain.depth says how depth is encoded)
DEPTH_ENCODINGS = ("metres", "inverse")
FUSIONS = ("early", "mid")  # segtrain.models.fusion: which models support which
# Name tuples whose owners (segtrain.losses.LOSSES, segtrain.models.fusion_models) import torch:
# kept here so `--help` stays light; tests/test_segtrain_cli.py checks each equals its registry.
LOSS_NAMES = ("ce", "wce", "dice", "ce+dice")
MID_FUSION_MODELS = ("unet", "unet_bilinear", "unet_small", "deeplabv3plus", "fcn8s")  # in help order
MAX_TTA_SCALES = 8  # mmseg's multi-scale test uses 6 (0.5 ... 1.75)


def default_workers() -> int:
    """DataLoader workers: the cores this process may use, less two (the training process
    and its pin-memory thread), at least one; under torchrun the cores are shared by the
    processes of this machine. Issue 11 measured 14 workers on a 16-core H200 machine
    supplying several times what the GPU consumed, so no upper cap."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, usable_cores() // local - 2)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class UnsupportedCombination(SegtrainError, ValueError):
    """Options each valid alone that no run can combine (`--fusion mid` without `--inputs rgbd`,
    a model without that fusion, `--augment strong --augment-on device`): `run` refuses them,
    `sweep` leaves that point of its grid out; any other error refuses the sweep."""


def check_augment_on(augment: str, augment_on: str) -> None:
    """`--augment-on device` only for what the device path implements (`strong` stays in the loader)."""
    if augment_on == "device" and augment not in DEVICE_AUGMENTS:
        raise UnsupportedCombination(f"--augment-on device supports --augment {' or '.join(DEVICE_AUGMENTS)}, not "
                            f"{augment}; use --augment-on loader or auto")


def check_class_weights(loss: str, class_weights: str | None) -> None:
    """An explicit weighting method only with a loss that uses class weights
    (segtrain.losses.LossSpec.uses_weights): `dice` would record it in config.yaml and drop it."""
    if class_weights in (None, "none"):
        return
    from segtrain.losses import LOSSES  # imports torch: not at import time (`--help` stays light)

    if loss not in LOSSES or LOSSES[loss].uses_weights:
        return
    takes = ", ".join(name for name, spec in LOSSES.items() if spec.uses_weights)
    raise UnsupportedCombination(f"--class-weights {class_weights}: --loss {loss} takes no class weights "
                                 f"(the losses that do: {takes}); use --class-weights none or leave it out")


def resume_layer(saved: dict[str, Any], loss: str | None = None) -> dict[str, Any]:
    """A run folder's config.yaml as the first layer of its --resume. Runs of a loss that takes
    no class weights recorded, before check_class_weights, the method they were given but did
    not use: it is dropped, so the run resumes (unweighted, as it trained). `loss` is the one
    the resume asks for, if any: then a changed loss is reported as such by the resume check,
    not as a weighting method the new loss refuses."""
    from segtrain.losses import LOSSES  # imports torch: not at import time

    spec = LOSSES.get(loss or saved.get("loss", _default("loss")))
    if spec is not None and not spec.uses_weights:
        return {k: v for k, v in saved.items() if k != "class_weights"}
    return saved


def num(default=dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, factory=None):
    """A numeric config field with its allowed range: the one place the range is written
    (flags, YAML files and library callers are all checked against it by `check_value`)."""
    md = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved as runs/<name>/config.yaml)."""

    model: str = "unet"
    data: str = ""
    out: str = ""
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = num(100, ge=1)
    batch_size: int = num(16, ge=1)
    size: list[int] | None = None  # [H, W]: resize every sample (image linear, mask nearest)
    crop: list[int] | None = None  # [H, W]: random crops for training, full images for val
    lr: float = num(1e-4, gt=0)
    weight_decay: float = num(0.0, ge=0)
    momentum: float = num(0.9, ge=0)  # sgd and rmsprop
    optimizer: str = "adam"
    scheduler: str = "plateau"
    plateau_patience: int = num(5, ge=0)
    plateau_factor: float = num(0.1, gt=0, lt=1)
    poly_power: float = num(0.9, ge=0)
    # linear lr warm-up over the first N optimizer steps (0 = off) from lr x warmup_ratio; the
    # scheduler then runs over the steps after it (segtrain.optim.LinearWarmup)
    warmup_steps: int = num(0, ge=0)
    warmup_ratio: float = num(1e-3, gt=0, le=1)
    loss: str = "ce"
    class_weights: str | None = None  # method in dataset.json class_weights; None = auto
    augment: str = "basic"
    # loader | device | auto (device on CUDA for none/basic). Loader by default: on the H200 the
    # workers supplied 1.7-7.8x what any model consumed and device made unet no faster (189.8 vs
    # 191.9 img/s, docs/performance.md), so the GPU path is for machines short of cores per GPU
    augment_on: str = "loader"
    early_stop: int = num(10, ge=0)  # epochs without val mIoU improvement; 0 = off
    grad_clip: float = num(0.0, ge=0)  # max gradient norm; 0 = off
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    channels_last: bool = True  # CUDA only
    # torch.compile the model: +29 % for unet on the H200, nothing for deeplabv3plus/convnext_upernet
    compile: bool = False
    device: str = "auto"
    workers: int = num(factory=default_workers, ge=0)
    seed: int = num(0, ge=0, lt=2**32)
    train_split: str = "train"
    val_split: str = "val"
    max_train_batches: int = num(0, ge=0)  # cap batches per epoch (quick experiments); 0 = all
    train_parts: str = "all"  # head | decoder,head | all: the rest is frozen (BN statistics too)
    pretrained: str | None = None  # encoder weights file (PyTorch or safetensors)
    init_from: str | None = None  # another run's checkpoint; the head is rebuilt for new classes
    sync_bn: bool = False  # SyncBatchNorm across processes under torchrun
    miou_rule: str = "standard"  # val mIoU (best.pt, plateau, early stop): standard | gt-present
    inputs: str = "rgb"  # rgb | rgbd | depth
    depth_encoding: str = "metres"  # metres | inverse (ignored for --inputs rgb)
    fusion: str = "early"  # early (depth as extra input channels) | mid (two encoders, SE fusion)

    def validate(self) -> None:
        """Check values a flag parser cannot (raises SegtrainError, one line)."""
        if not self.data:
            raise SegtrainError("no dataset given: use --data DIR (a folder with dataset.json)")
        if not self.out:
            raise SegtrainError("no output folder given: use --out DIR")
        for opt in RUN_OPTIONS:
            if opt.choices and getattr(self, opt.name) not in opt.choices:
                raise SegtrainError(f"{opt.name} {getattr(self, opt.name)!r} is not one of {', '.join(opt.choices)}")
        check_fields(self)
        check_augment_on(self.augment, self.augment_on)
        check_class_weights(self.loss, self.class_weights)
        if self.size and self.crop:
            raise SegtrainError("give either --size or --crop, not both")
        try:
            self.train_parts = parts_label(parse_parts(self.train_parts))
        except ValueError as e:
            raise SegtrainError(str(e)) from None
        if self.pretrained and self.init_from:
            raise SegtrainError("give either --pretrained (encoder weights) or --init-from (a whole run), not both")


def moot_options(values: dict[str, Any]) -> dict[str, str]:
    """The options that change nothing for a config (a TrainConfig as a dict; a key it lacks is
    at its default), each with the option that makes it so: a run trains the same whatever
    their values. A resume does not compare them (segtrain.checkpoint), a sweep does not train
    one run per value of them (segtrain.sweep)."""
    # segtrain.depth imports torch: not at import time (`--help` stays light)
    from segtrain.depth import uses_depth

    get = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **values}.get
    moot = {}
    if not get("warmup_steps"):
        moot["warmup_ratio"] = f"--warmup-steps {get('warmup_steps')}"
    if get("inputs") in INPUTS and not uses_depth(get("inputs")):
        moot["depth_encoding"] = f"--inputs {get('inputs')}"
    return moot


def short_model_list(names) -> str:
    """`unet, unet_small, fcn8s` -> `unet*, fcn8s`: a model and its `_` variants as one glob."""
    names = list(names)
    bases = [n for n in names if not any(n.startswith(f"{b}_") for b in names)]
    return ", ".join(b + ("*" if any(n.startswith(f"{b}_") for n in names) else "") for b in bases)


@dataclass(frozen=True)
class RunOption:
    """One `segtrain run` option, declared once: `run` and `sweep` build their flags from it
    (segtrain.cli), and the type (hence whether `sweep` takes a comma list of it) is the type
    of the TrainConfig field it sets."""

    name: str  # the TrainConfig field
    help: str
    choices: tuple[str, ...] = ()  # the valid values of a text option
    path: bool = False  # a file or folder (shown as PATH)
    flag_name: str = ""  # when the flag is not the field's name (--model-opt)
    sweep_note: str = ""  # appended to the help in `sweep` only

    @property
    def flag(self) -> str:
        return self.flag_name or flag(self.name)

    @property
    def kind(self) -> type:
        """The field's type without None: bool, int, float, str, list ([H, W]) or dict."""
        base, _ = _base_type(TrainConfig, self.name)
        return typing.get_origin(base) or base


def _default(name: str):
    return TrainConfig.__dataclass_fields__[name].default


# Every `segtrain run` flag that sets a TrainConfig field, in `run --help` order (--config and
# --resume, which set none, are the command's own).
RUN_OPTIONS = (
    RunOption("data", "Clean tree (folder with dataset.json).", path=True),
    RunOption("out", "Run folder [default: runs/<model>].", path=True),
    RunOption("epochs", f"[default: {_default('epochs')}]"),
    RunOption("batch_size", f"[default: {_default('batch_size')}]"),
    RunOption("size", "Resize every sample to HxW, e.g. 480x640."),
    RunOption("crop", "Train on random HxW crops (validate on full images)."),
    RunOption("lr", f"[default: {_default('lr')}]"),
    RunOption("weight_decay", f"[default: {_default('weight_decay')}]"),
    RunOption("optimizer", f"[default: {_default('optimizer')}]", OPTIMIZERS),
    RunOption("scheduler", f"[default: {_default('scheduler')}]", SCHEDULERS),
    RunOption("warmup_steps", "Linear lr warm-up over the first N optimizer steps; the scheduler runs over "
              f"the steps after it; 0 = off [default: {_default('warmup_steps')}]."),
    RunOption("warmup_ratio", f"The warm-up starts at --lr x this [default: {_default('warmup_ratio'):g}]."),
    RunOption("loss", f"[default: {_default('loss')}]", LOSS_NAMES),
    RunOption("class_weights", "Weighting method in dataset.json class_weights, or none [default: the "
              "dataset's default for wce, none otherwise]."),
    RunOption("augment", f"[default: {_default('augment')}]", AUGMENTS),
    RunOption("augment_on", f"Where --augment {' or '.join(a for a in DEVICE_AUGMENTS if a != 'none')} runs: "
              "loader = in the workers, device = batched on the GPU, auto = device on CUDA (none: nothing to move) "
              f"[default: {_default('augment_on')}].", AUGMENT_ON),
    RunOption("early_stop", f"Patience in epochs on val mIoU, 0 = off [default: {_default('early_stop')}]"),
    RunOption("grad_clip", "Max gradient norm, 0 = off [default: 0]."),
    RunOption("amp", "Mixed precision on CUDA [default: on]."),
    RunOption("compile", "torch.compile the model."),
    RunOption("device", "[default: auto]", DEVICES),
    RunOption("workers", "DataLoader workers [default: cores - 2, at least 1]."),
    RunOption("seed", f"[default: {_default('seed')}]"),
    RunOption("model_options", "Model option KEY=VALUE, e.g. base_width=8 (repeatable).", flag_name="--model-opt"),
    RunOption("val_split", f"[default: {_default('val_split')}]"),
    RunOption("max_train_batches", "Cap batches per epoch (quick experiments)."),
    RunOption("train_parts", "Parts to train: head | decoder,head | all; the rest is frozen, BatchNorm "
              "statistics included [default: all].",
              sweep_note=" Several values: each ends at head or all (head,decoder,head,all), or separate "
              "them with |."),
    RunOption("pretrained", "Encoder weights: a timm name listed by `segtrain models` (e.g. "
              "convnext_tiny.fb_in22k; read from the Hugging Face cache, downloaded there when missing) or a "
              "local PyTorch / .safetensors file (timm / torchvision / facebookresearch keys; docs/models.md)."),
    RunOption("init_from", "Start from another run's checkpoint (same model; a different class table "
              "rebuilds the head).", path=True),
    RunOption("sync_bn", "SyncBatchNorm across processes under torchrun."),
    RunOption("miou_rule", "Val mIoU: standard counts every class predicted or labelled (IoU 0 when "
              "predicted but absent); gt-present only classes in the ground truth (the old rule) "
              "[default: standard].", MIOU_RULES),
    RunOption("inputs", "What the network sees: rgb, rgbd (RGB + depth) or depth alone [default: rgb].",
              INPUTS),
    RunOption("depth_encoding", "Depth as metres (clipped, normalised with dataset.json depth_mean/std) or "
              "inverse depth [default: metres].", DEPTH_ENCODINGS),
    RunOption("fusion", "early: depth as extra input channels (any model); mid: two encoders with SE fusion "
              f"per stage ({short_model_list(MID_FUSION_MODELS)}) [default: early].", FUSIONS),
)
RUN_OPTION = {o.name: o for o in RUN_OPTIONS}

# TrainConfig fields that are no `run` flag, and why; each is a key of a `--config` file (and of
# config.yaml). A test checks that every field is a flag or listed here, so none is forgotten.
NOT_FLAGS = {
    "model": "the MODEL argument (sweep: MODELS, a comma list)",
    "momentum": "read by sgd and rmsprop only: a config-file key",
    "plateau_patience": "tunes --scheduler plateau only: a config-file key",
    "plateau_factor": "tunes --scheduler plateau only: a config-file key",
    "poly_power": "tunes --scheduler poly only: a config-file key",
    "channels_last": "a CUDA memory layout: changes speed, not results (on)",
    "train_split": "every tree this toolkit writes trains on `train`: a config-file key",
}


@dataclass
class TTAConfig:
    """Test-time augmentation of eval / predict (segtrain.tta): one pass per scale (a multiple
    of the input size), each also flipped with `flip`; their softmax probabilities averaged."""

    scales: list[float] = num(factory=lambda: [1.0], gt=0, le=4)
    flip: bool = False

    def validate(self) -> None:
        check_fields(self)
        shown = self.scales_text()
        if not self.scales:
            raise SegtrainError("--scales: give at least one scale (e.g. 1, or 0.75,1,1.25)")
        if len(self.scales) > MAX_TTA_SCALES:
            raise SegtrainError(f"--scales {shown}: at most {MAX_TTA_SCALES} scales")
        if len(set(self.scales)) != len(self.scales):
            raise SegtrainError(f"--scales {shown}: a scale is repeated")

    @property
    def plain(self) -> bool:
        """One pass at the input size, unflipped: what eval / predict did before TTA."""
        return self.scales == [1.0] and not self.flip

    @property
    def passes(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def scales_text(self) -> str:
        """'0.75,1,1.25', as --scales takes it."""
        return ",".join(f"{s:g}" for s in self.scales)

    def label(self) -> str:
        """'flip, scales 0.75,1,1.25' (console lines); '' when plain."""
        parts = (["flip"] if self.flip else []) + ([] if self.scales == [1.0] else ["scales " + self.scales_text()])
        return ", ".join(parts)

    def note(self) -> str:
        """' (TTA: flip, scales 0.75,1,1.25)' after a console line's score; '' when plain."""
        return f" (TTA: {self.label()})" if not self.plain else ""


def parse_scales(text: str) -> list[float]:
    """'0.75,1,1.25' -> [0.75, 1.0, 1.25]: each a number > 0 and <= 4 (one-line error)."""
    try:
        return check_value(TTAConfig, "scales", [t.strip() for t in text.split(",")])
    except ValueError as e:
        raise SegtrainError(f"--scales {text!r}: {e}") from None


@dataclass
class EvalConfig:
    checkpoint: str = ""
    data: str = ""
    split: str = "test"
    out: str = ""
    batch_size: int = num(4, ge=1)
    size: list[int] | None = None  # default: the size the checkpoint was trained with
    device: str = "auto"
    workers: int = num(factory=default_workers, ge=0)
    panels: int = num(4, ge=0)  # images in each of the best / worst panels
    amp: bool = True
    miou_rule: str = "standard"  # standard | gt-present (see segtrain.metrics.MIOU_RULES)
    tta: TTAConfig = field(default_factory=TTAConfig)  # --scales / --flip

    def validate(self) -> None:
        if self.miou_rule not in MIOU_RULES:
            raise SegtrainError(f"miou_rule {self.miou_rule!r} is not one of {', '.join(MIOU_RULES)}")
        check_fields(self)
        self.tta.validate()


@dataclass
class PredictConfig:
    checkpoint: str = ""
    inputs: list[str] = field(default_factory=list)
    out: str = ""
    size: list[int] | None = None
    device: str = "auto"
    amp: bool = True
    strict: bool = False
    keep_exif_orientation: bool = False  # masks in the stored pixel order, not as viewers turn JPEGs
    depth: str | None = None  # folder of <stem>_depth.png (uint16 mm) for rgbd/depth checkpoints
    tta: TTAConfig = field(default_factory=TTAConfig)  # --scales / --flip

    def validate(self) -> None:
        check_fields(self)
        self.tta.validate()


@dataclass
class BenchConfig:
    data: str = ""
    model: str = "unet_small"
    model_options: dict[str, Any] = field(default_factory=dict)
    size: list[int] | None = None
    batch_size: int = num(8, ge=1)
    steps: int = num(100, ge=1)
    warmup: int = num(10, ge=0)
    windows: int = num(5, ge=1)
    augment: str = "basic"
    augment_on: str = "loader"  # see TrainConfig
    workers: int = num(factory=default_workers, ge=0)
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    seed: int = num(0, ge=0, lt=2**32)
    train_parts: str = "all"
    inputs: str = "rgb"
    depth_encoding: str = "metres"
    fusion: str = "early"


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path, comment: str = "") -> None:
    """Write the fully resolved config as YAML (keys in dataclass order), atomically; `comment`
    lines go first as YAML comments (facts a person reads, never read back as options)."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    atomic_write_text(path, head + yaml.safe_dump(to_dict(cfg), sort_keys=False))


@cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(cls, key: str) -> tuple[Any, bool]:
    """(a field's type without None, whether None is allowed): `str | None` -> (str, True)."""
    hint = _hints(cls)[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    return (next(a for a in args if a is not type(None)) if optional else hint), optional


_INT = re.compile(r"[+-]?[0-9]+")


def _is_number_text(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def check_value(cls, key: str, value):
    """One option's value converted to its field's type and checked against its range.

    Numbers given as text are accepted ("1e-4": YAML 1.1, which PyYAML follows, reads an
    exponent without a dot as a string); anything else of the wrong type, non-finite
    numbers and values out of range raise ValueError with the reason."""
    base, optional = _base_type(cls, key)
    if value is None:
        if optional:
            return None
        raise ValueError("needs a value")
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if base is int:
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        _check_range(cls, key, value)
        return value
    if base is float:
        return _to_float(cls, key, value)
    if base is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value
    if typing.get_origin(base) is list and typing.get_args(base) == (float,):  # TTA scales
        if not isinstance(value, list):
            raise ValueError("must be a list of numbers")
        out = []
        for v in value:
            try:
                out.append(_to_float(cls, key, v))
            except ValueError as e:
                raise ValueError(f"scale {show_value(v)} {e}") from None
        return out
    if typing.get_origin(base) is list and typing.get_args(base) != (int,):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of text")
        return value
    if typing.get_origin(base) is list:  # size / crop: "HxW" or [H, W]
        try:
            hw = parse_hw(value)
        except (SegtrainError, TypeError, ValueError):
            raise ValueError("must be HxW (e.g. 480x640) or a list [H, W] of positive whole numbers") from None
        return list(hw) if hw else None
    if typing.get_origin(base) is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError("must be a mapping of name: value")
        return value
    return value


def _to_float(cls, key: str, value) -> float:
    """A float field's value (or one item of a list[float] field) checked against its range."""
    if isinstance(value, str) and _is_number_text(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    _check_range(cls, key, value)
    return value


def _check_range(cls, key: str, value) -> None:
    md = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    if md.get("ge") is not None and value < md["ge"]:
        raise ValueError(f"must be at least {md['ge']}")
    if md.get("gt") is not None and value <= md["gt"]:
        raise ValueError(f"must be greater than {md['gt']}")
    if md.get("le") is not None and value > md["le"]:
        raise ValueError(f"must be at most {md['le']}")
    if md.get("lt") is not None and value >= md["lt"]:
        raise ValueError(f"must be less than {md['lt']}")


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_fields(cfg) -> None:
    """Check (and normalise) every field of a config dataclass; one line naming the option."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        try:
            setattr(cfg, f.name, check_value(type(cfg), f.name, value))
        except ValueError as e:
            raise SegtrainError(f"{flag(f.name)} {show_value(value)}: {e}") from None


def show_value(value) -> str:
    """A value as an error message shows it: strings quoted, long ones cut to 60 characters."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_config_file(path: str | Path, cls=TrainConfig) -> dict[str, Any]:
    """Read a YAML config; unknown keys and bad values are an error naming the file and key."""
    p = Path(path)
    if p.is_dir():
        raise SegtrainError(f"{p}: is a folder, not a config file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SegtrainError(f"{p}: config file not found") from None
    except OSError as e:
        raise SegtrainError(f"{p}: {os_cause(e)}") from None
    except UnicodeDecodeError:
        raise SegtrainError(f"{p}: not a text file (not valid UTF-8)") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SegtrainError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001  PyYAML's constructors fail in many ways on hostile input
        # (absurd nesting, a 5,000-digit int, "!!timestamp" without a date: all found by the fuzz suite)
        raise SegtrainError(f"{p}: not a usable YAML config ({type(e).__name__} while reading it)") from None
    if not isinstance(data, dict):
        raise SegtrainError(f"{p}: expected a mapping of option: value")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - valid)
    if unknown or not all(isinstance(k, str) for k in data):
        shown = ", ".join(k if k.isidentifier() else repr(k) for k in unknown)
        raise SegtrainError(f"{p}: unknown option(s) {show_value(shown)}; valid: {', '.join(sorted(valid))}")
    out = {}
    for key, value in data.items():
        try:
            out[key] = check_value(cls, key, value)
        except ValueError as e:
            raise SegtrainError(f"{p}: {key}: {show_value(value)} {e}") from None
    return out


def build_config(cls, *layers: dict[str, Any]):
    """Later layers override earlier ones, key by key inside a dict option (a config file's
    `model_options: {base_width: 32, depth: 4}` and `--model-opt depth=3` give both keys, depth
    3); the result is a fresh dataclass instance whose values are checked (a bad one is an
    error naming its option)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - valid)
    if unknown:
        raise SegtrainError(f"unknown option(s) {', '.join(unknown)}")
    for key, value in merged.items():
        try:
            merged[key] = check_value(cls, key, value)
        except ValueError as e:
            raise SegtrainError(f"{flag(key)} {show_value(value)}: {e}") from None
    return cls(**merged)
