"""Encoder weights from a local file (`--pretrained`) and warm starts from another run
(`--init-from`). Nothing is downloaded here: a `--pretrained NAME` is first turned into a
file in the Hugging Face cache by `segtrain.models.hub`.

Files: a PyTorch checkpoint (`torch.load(weights_only=True)`: a state dict, or one nested
under `state_dict` / `model` / `state_dict_ema` / `module`) or a `.safetensors` file, opened
with the `safetensors` package (it validates the header on opening and memory-maps the
file, so only the tensors the encoder takes are ever read). Keys are matched to the
encoder through each encoder's `key_layouts()` (timm / torchvision / facebookresearch names,
after stripping `module.` / `backbone.` / `encoder.` prefixes); the layout that matches most
tensors wins. A shape mismatch is refused, naming the tensor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from cleantree.files import os_cause
from segtrain.utils import SegtrainError, load_torch_file

log = logging.getLogger("segtrain")

PREFIXES = ("", "module.", "backbone.", "encoder.", "model.", "module.backbone.", "module.encoder.",
            "model.backbone.", "model.encoder.")
NESTED = ("state_dict", "model", "state_dict_ema", "model_ema", "module", "params")


def _st_error(path: Path, e: Exception) -> SegtrainError:
    """One line naming the file for an error of the `safetensors` package, in its own words
    (their first line): its wording differs between versions, so none of it is matched."""
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return SegtrainError(f"{path}: not a valid safetensors file ({first})")


class SafetensorsFile(Mapping):
    """name -> tensor of a .safetensors file (CPU, the file's dtypes): the header is read and
    checked on opening, each tensor only when it is asked for (memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = safe_open(str(self.path), framework="pt", device="cpu")
            self._keys = dict.fromkeys(self._file.keys())  # file order; O(1) membership
        except OSError as e:
            raise SegtrainError(f"{self.path}: {os_cause(e)}") from None
        except SafetensorError as e:
            raise _st_error(self.path, e) from None

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._keys:
            raise KeyError(name)
        try:
            return self._file.get_tensor(name)
        except (SafetensorError, TypeError, ValueError, RuntimeError) as e:  # e.g. a dtype torch lacks
            raise SegtrainError(f"{self.path}: tensor {name!r}: {' '.join(str(e).split())}") from None

    def __contains__(self, name: object) -> bool:  # Mapping's would read the tensor
        return name in self._keys

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def read_state_dict(path: str | Path) -> Mapping[str, torch.Tensor]:
    """A flat name -> tensor mapping from a PyTorch or safetensors file (one-line errors);
    a safetensors file's tensors are read only when looked up."""
    path = Path(path)
    if not path.exists():
        raise SegtrainError(f"{path}: weights file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise SegtrainError(f"{path}: {os_cause(e)}") from None
    is_st = path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"
                                              and not head.startswith(b"PK"))
    if is_st:
        return SafetensorsFile(path)
    obj = load_torch_file(path, "PyTorch or safetensors file")
    for _ in range(3):  # unwrap {"state_dict": {...}} and the like
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in NESTED if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise SegtrainError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SegtrainError(f"{path}: no tensors found (expected a state dict)")
    return tensors


@dataclass
class LoadReport:
    """What a weight load did: for the run log and the tests."""

    source: str
    layout: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ours, not in the file (kept as initialised)
    unexpected: list[str] = field(default_factory=list)  # the file's, not used
    skipped: list[str] = field(default_factory=list)  # deliberately not loaded (rebuilt head)
    note: str = ""

    def summary(self) -> str:
        def few(keys):
            return "" if not keys else " (" + ", ".join(keys[:4]) + (", …" if len(keys) > 4 else "") + ")"

        layout = f" [{self.layout} layout]" if self.layout else ""
        return (f"{self.source}{layout}: loaded {len(self.loaded)} tensors; missing {len(self.missing)}"
                f"{few(self.missing)}; unexpected {len(self.unexpected)}{few(self.unexpected)}"
                + (f"; skipped {len(self.skipped)}{few(self.skipped)}" if self.skipped else "")
                + (f"; {self.note}" if self.note else ""))


def _layouts(encoder: nn.Module) -> dict:
    """The encoder's known public layouts first (on a tie they name the match), then our own
    names (a segtrain checkpoint or an encoder state dict saved from segtrain)."""
    layouts = dict(encoder.key_layouts()) if hasattr(encoder, "key_layouts") else {}
    layouts["segtrain"] = lambda k: k
    return layouts


def _fit(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """The value in the target's shape and dtype, or None when the shapes really differ
    (a (C,) vs (C,1,1) layer scale is the same tensor). An RGB first convolution fits a
    depth (1 channel) or RGB-D (4 channel) one: the depth filter is the mean of the RGB filters."""
    if (value.ndim == 4 and target.ndim == 4 and value.shape[1] == 3 and target.shape[1] in (1, 4)
            and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]):
        mean = value.mean(dim=1, keepdim=True)
        value = mean if target.shape[1] == 1 else torch.cat([value, mean], dim=1)
    if value.shape != target.shape:
        if value.numel() != target.numel() or value.squeeze().shape != target.squeeze().shape:
            return None
        value = value.reshape(target.shape)
    return value.to(target.dtype)


def load_encoder_weights(model: nn.Module, path: str | Path, model_name: str = "model") -> LoadReport:
    """Load a checkpoint's encoder tensors into `model.encoder` (see module docstring)."""
    sd = read_state_dict(path)
    encoder = model.encoder
    ours = encoder.state_dict()
    best: tuple[int, str, str, dict] = (0, "", "", {})
    for prefix in PREFIXES:
        sub = {k[len(prefix):]: k for k in sd if k.startswith(prefix)}
        if not sub:
            continue
        for name, fn in _layouts(encoder).items():
            mapped = {}
            for k, orig in sub.items():
                mk = fn(k)
                if mk is not None and mk in ours:
                    mapped[mk] = orig
            if len(mapped) > best[0]:
                best = (len(mapped), name, prefix, mapped)
    count, layout, prefix, mapped = best
    if count == 0:
        sample = ", ".join(list(sd)[:3])
        raise SegtrainError(f"{path}: no tensor matches the {model_name} encoder (tried layouts "
                            f"{', '.join(_layouts(encoder))}; the file has e.g. {sample})")
    new_state = {}
    for ours_key, their_key in mapped.items():
        value = _fit(sd[their_key], ours[ours_key])
        if value is None:
            raise SegtrainError(f"{path}: {their_key} has shape {list(sd[their_key].shape)} but {model_name} "
                                f"encoder.{ours_key} needs {list(ours[ours_key].shape)} (another depth or "
                                "width: check --model-opt)")
        new_state[ours_key] = value
    encoder.load_state_dict(new_state, strict=False)
    used = set(mapped.values())
    report = LoadReport(source=str(path), layout=layout + (f", prefix {prefix!r}" if prefix else ""),
                        loaded=sorted(mapped),
                        missing=sorted(k for k in ours if k not in mapped and not k.endswith("num_batches_tracked")),
                        unexpected=sorted(k for k in sd if k not in used))
    return report


def init_from_state(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                    same_classes: bool) -> LoadReport:
    """Load another run's weights: everything but the head, and the head only when the class
    table is the same. Any other shape mismatch means another architecture and is refused."""
    ours = model.state_dict()
    report = LoadReport(source=source)
    new_state = {}
    for k, v in state.items():
        if k not in ours:
            report.unexpected.append(k)
            continue
        if k.startswith("head.") and not same_classes:
            report.skipped.append(k)
            continue
        fitted = _fit(v, ours[k])
        if fitted is None:
            raise SegtrainError(f"{source}: {k} has shape {list(v.shape)} but this model needs "
                                f"{list(ours[k].shape)} (the checkpoint is another architecture or width)")
        new_state[k] = fitted
    model.load_state_dict(new_state, strict=False)
    report.loaded = sorted(new_state)
    report.skipped.sort()
    report.unexpected.sort()
    report.missing = sorted(k for k in ours if k not in state and not k.endswith("num_batches_tracked"))
    return report
