"""Model registry: name -> builder (plus default options).

Add a model by writing a builder `fn(num_classes, **options) -> SegmentationModel` and one
entry in MODELS; `segtrain models`, `segtrain bench --model all` and `create_model` pick it up.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from segtrain.config import UnsupportedCombination
from segtrain.models.base import SegmentationModel
from segtrain.models.baseline import build_baseline
from segtrain.models.deeplab import build_deeplabv3plus
from segtrain.models.fcn import build_fcn8s
from segtrain.models.fusion import FUSIONS
from segtrain.models.unet import build_unet
from segtrain.models.upernet import build_convnext_upernet


@dataclass(frozen=True)
class ModelSpec:
    builder: Callable[..., SegmentationModel]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    "unet": ModelSpec(build_unet, "U-Net, classic 64-base, 4 down-samplings, transposed-conv up (~31 M)",
                      {"base_width": 64, "depth": 4, "up": "transpose"}),
    "unet_bilinear": ModelSpec(build_unet, "U-Net, 64-base, bilinear up-sampling + 1x1 conv",
                               {"base_width": 64, "depth": 4, "up": "bilinear"}),
    "unet_small": ModelSpec(build_unet, "U-Net, 16-base, 4 down-samplings (CPU / demo size)",
                            {"base_width": 16, "depth": 4, "up": "transpose"}),
    "baseline": ModelSpec(build_baseline, "conv stack without down-sampling (course baseline)",
                          {"width": 64, "depth": 4, "decoder_depth": 2}),
    "fcn8s": ModelSpec(build_fcn8s, "FCN-8s skip fusion (strides 32/16/8) on ResNet-50",
                       {"backbone": "resnet50", "base_width": 64, "channels": 512}),
    "deeplabv3plus": ModelSpec(build_deeplabv3plus, "DeepLabV3+: ResNet-50, output stride 16, ASPP",
                               {"backbone": "resnet50", "base_width": 64, "output_stride": 16}),
    "convnext_upernet": ModelSpec(build_convnext_upernet, "UPerNet on ConvNeXt-T (variant=small: ConvNeXt-S)",
                                  {"variant": "tiny", "channels": 512}),
}


def model_options(name: str) -> list[str]:
    """Option names the model's builder accepts (besides num_classes)."""
    params = inspect.signature(MODELS[name].builder).parameters
    return [p for p in params if p != "num_classes"]


def check_model(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate a model name and options without building it; returns the resolved options
    (registry defaults with the user's applied: what a run records). Errors list valid names
    (KeyError) or say what type a value needs (ValueError)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        shown = ", ".join(k if k.isidentifier() else repr(k) for k in unknown)
        raise KeyError(f"model {name!r} has no option(s) {shown}; valid: {', '.join(valid)}")
    for key, value in options.items():
        _check_option(name, key, value)
    return {**MODELS[name].defaults, **options}


def _check_option(name: str, key: str, value) -> None:
    """An option's value has the type its builder declares (int, float, str, list of ints,
    optionally None) and numbers are finite and not negative: ValueError otherwise."""
    hint = typing.get_type_hints(MODELS[name].builder).get(key)
    if hint is None:
        return
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return
    base = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint

    def number(v, kind) -> bool:
        ok = not isinstance(v, bool) and isinstance(v, int if kind is int else int | float)
        return ok and math.isfinite(v) and v >= 0

    if base is int or base is float:
        ok = number(value, base)
        what = "a whole number >= 0" if base is int else "a finite number >= 0"
    elif typing.get_origin(base) is list:
        kind = (typing.get_args(base) or (int,))[0]
        ok = isinstance(value, list) and all(number(v, kind) for v in value)
        what = f"a list of {'whole numbers' if kind is int else 'numbers'} >= 0"
    elif base is str:
        ok, what = isinstance(value, str), "text"
    else:
        return
    if not ok:
        default = MODELS[name].defaults.get(key, inspect.signature(MODELS[name].builder).parameters[key].default)
        raise ValueError(f"model {name!r} option {key}={value!r}: must be {what} (default {default!r})")


def fusion_models(fusion: str) -> list[str]:
    """Registered models that support a --fusion design."""
    builders = FUSIONS[fusion].builders
    return [n for n, spec in MODELS.items() if builders is None or spec.builder in builders]


def check_inputs(name: str, options: dict[str, Any], inputs: str = "rgb", fusion: str = "early") -> None:
    """ValueError (listing the valid combinations) when the model cannot take these inputs;
    UnsupportedCombination (a ValueError) when it is the combination no run can take."""
    if inputs == "rgb":
        if fusion == "mid":
            raise UnsupportedCombination("--fusion mid fuses RGB and depth: it needs --inputs rgbd")
        return
    if fusion not in FUSIONS:
        raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSIONS)}")
    if "in_channels" in options:
        raise ValueError("--inputs sets the input channels; drop --model-opt in_channels")
    if name not in fusion_models(fusion):
        combos = "; ".join(f"--fusion {f}: {', '.join(fusion_models(f))}" for f in FUSIONS)
        raise UnsupportedCombination(f"model {name!r} does not support --fusion {fusion}; valid: {combos}")
    if fusion == "mid" and inputs != "rgbd":
        raise UnsupportedCombination(f"--fusion mid fuses two inputs and needs --inputs rgbd, not {inputs} "
                                     "(use --fusion early)")


def create_model(name: str, num_classes: int, inputs: str = "rgb", fusion: str = "early",
                 **options) -> SegmentationModel:
    """Build a registered model (KeyError for unknown names/options, ValueError for bad values).
    `inputs` other than rgb go through the fusion registry (segtrain.models.fusion)."""
    resolved = check_model(name, options)
    check_inputs(name, options, inputs, fusion)
    try:
        if inputs == "rgb":
            return MODELS[name].builder(num_classes, **resolved)
        return FUSIONS[fusion].build(MODELS[name].builder, num_classes, inputs, resolved)
    except (TypeError, RuntimeError) as e:  # e.g. sizes torch cannot build
        raise ValueError(f"model {name!r}: bad option value ({e})") from None


def count_parameters(model) -> dict[str, int]:
    counts = model.part_parameters() if hasattr(model, "part_parameters") else {}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def count_trainable(model) -> dict[str, int]:
    """Trainable parameters per part and in total (what --train-parts leaves to the optimizer)."""
    counts = model.trainable_parameters() if hasattr(model, "trainable_parameters") else {}
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


__all__ = ["MODELS", "ModelSpec", "SegmentationModel", "create_model", "count_parameters",
           "count_trainable", "model_options", "check_model", "check_inputs", "fusion_models", "FUSIONS"]
