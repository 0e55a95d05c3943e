"""`--pretrained NAME`: ImageNet encoder weights by their timm name, through huggingface_hub.

timm publishes its weights as `model.safetensors` in the Hugging Face repositories
`timm/<name>`; huggingface_hub keeps them in the standard cache (HF_HUB_CACHE, else
HF_HOME/hub, else ~/.cache/huggingface/hub), shared with timm and transformers. The cache is
read first, so a name that was downloaded once works offline (and HF_HUB_OFFLINE=1 never
touches the network); otherwise the file is downloaded. The names below are the ones whose
tensors our encoders take (see docs/models.md for the key mapping); a file path still works.
"""

from __future__ import annotations

import logging
from pathlib import Path

from segtrain.utils import SegtrainError

log = logging.getLogger("segtrain")

# encoder architecture -> timm names whose weights fit it (ImageNet classifiers; their fc /
# head tensors are simply not used)
PRETRAINED: dict[str, tuple[str, ...]] = {
    "convnext_tiny": ("convnext_tiny.fb_in22k", "convnext_tiny.fb_in22k_ft_in1k", "convnext_tiny.fb_in1k"),
    "convnext_small": ("convnext_small.fb_in22k", "convnext_small.fb_in22k_ft_in1k",
                       "convnext_small.fb_in1k"),
    "resnet18": ("resnet18.tv_in1k", "resnet18.a1_in1k"),
    "resnet34": ("resnet34.tv_in1k", "resnet34.a1_in1k"),
    "resnet50": ("resnet50.tv_in1k", "resnet50.tv2_in1k", "resnet50.a1_in1k"),
    "resnet101": ("resnet101.tv_in1k", "resnet101.tv2_in1k", "resnet101.a1h_in1k"),
    "resnet152": ("resnet152.tv_in1k", "resnet152.tv2_in1k"),
}
# the model option that picks the encoder architecture, and how its value names it
ARCH_OPTION = {"variant": lambda v: f"convnext_{v}", "backbone": lambda v: str(v)}
WEIGHTS_FILE = "model.safetensors"


def encoder_arch(options: dict) -> str | None:
    """The encoder architecture a model with these (resolved) options builds, when it is one
    with published weights; None for models with their own encoders (U-Net, baseline)."""
    for key, name in ARCH_OPTION.items():
        if key in options and name(options[key]) in PRETRAINED:
            return name(options[key])
    return None


def accepted_names(model: str) -> dict[str, tuple[str, ...]]:
    """Pretrained names a registered model accepts, keyed by the --model-opt that selects the
    encoder ("" for the model's defaults, e.g. "variant=small" for ConvNeXt-S)."""
    from segtrain.models import MODELS, model_options

    defaults, opts = MODELS[model].defaults, model_options(model)
    out: dict[str, tuple[str, ...]] = {}
    for key, family, prefix in (("variant", "convnext", "convnext_"), ("backbone", "resnet", "")):
        default_arch = ARCH_OPTION[key](defaults.get(key))
        if key not in opts or default_arch not in PRETRAINED:
            continue
        out[""] = PRETRAINED[default_arch]
        for arch, names in PRETRAINED.items():
            if arch != default_arch and arch.startswith(family):
                out[f"{key}={arch.removeprefix(prefix)}"] = names
    return out


def is_name(value: str) -> bool:
    """A --pretrained value is a name (not a file) when it is one of ours and no such file exists."""
    return value in {n for names in PRETRAINED.values() for n in names} and not Path(value).exists()


def looks_like_name(value: str) -> bool:
    """`arch.tag` without a path separator or a weights-file suffix (a mistyped name, not a file)."""
    p = Path(value)
    suffixes = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar")
    return ("/" not in value and "\\" not in value and p.suffix not in suffixes and "." in value
            and not p.exists())


def resolve_pretrained(value: str, model: str, options: dict) -> str:
    """A --pretrained value as a local weights file: a path is returned as given; a name is
    checked against the model's encoder and found in (or downloaded into) the HF cache."""
    if not is_name(value):
        if looks_like_name(value):
            arch = encoder_arch(options)
            hint = (f"names for {model}: {', '.join(PRETRAINED[arch])}" if arch
                    else f"{model} has no encoder with published weights")
            raise SegtrainError(f"--pretrained {value}: not a file and not a known name ({hint}; "
                                "`segtrain models` lists them)")
        return value
    arch = encoder_arch(options)
    if arch is None:
        raise SegtrainError(f"--pretrained {value}: {model} has no encoder with published weights "
                            "(only models with a ResNet or ConvNeXt encoder do)")
    if value not in PRETRAINED[arch]:
        opt = next(k for k in ARCH_OPTION if k in options)
        raise SegtrainError(f"--pretrained {value}: weights for a {value.split('.')[0]} encoder, but {model} "
                            f"with {opt}={options[opt]} builds {arch}; use one of {', '.join(PRETRAINED[arch])} "
                            "or change --model-opt")
    return download(value)


def download(name: str) -> str:
    """Path of timm/<name>'s weights in the HF cache, downloading them when not there."""
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        raise SegtrainError(f"--pretrained {name}: needs the huggingface_hub package "
                            "(pip install 'sunrgbd-tools[train]'), or give a weights file") from None
    repo = f"timm/{name}"
    try:  # the cache first: no network for a file we already have
        return huggingface_hub.hf_hub_download(repo, WEIGHTS_FILE, local_files_only=True)
    except Exception:  # noqa: BLE001  not cached (or an unreadable cache entry): try the hub
        pass
    cache = constants.HF_HUB_CACHE
    if constants.is_offline_mode():
        raise SegtrainError(f"--pretrained {name}: not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE "
                            "is set; download it once online, or give --pretrained FILE")
    log.info("downloading %s/%s/%s into %s", constants.ENDPOINT, repo, WEIGHTS_FILE, cache)
    hf_log = logging.getLogger("huggingface_hub")  # its retry warnings are not our one line
    level = hf_log.level
    hf_log.setLevel(logging.ERROR)
    try:
        return huggingface_hub.hf_hub_download(repo, WEIGHTS_FILE)
    except Exception as e:  # noqa: BLE001  network, proxy, disk: the user gets one line either way
        raise SegtrainError(f"--pretrained {name}: not in the Hugging Face cache ({cache}) and the download "
                            f"from {constants.ENDPOINT}/{repo} failed ({_root_cause(e)}); connect once to "
                            "download it, or give --pretrained FILE") from None
    finally:
        hf_log.setLevel(level)


def _root_cause(e: BaseException) -> str:
    """The innermost exception's first line (e.g. "Connection refused", not the wrapper's advice)."""
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    inner = seen[-1]
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text[:160]}" if text else type(inner).__name__
