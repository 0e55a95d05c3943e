"""The numbers of each `--augment` pipeline, written once.

Both places that augment read this table: segtrain.transforms builds the albumentations
pipeline of the loader from it, segtrain.device_augment draws the batched on-device
parameters from it, and the tests check each against it. Ranges follow albumentations'
conventions (ColorJitter's `brightness 0.2` is a factor in [0.8, 1.2], `hue` in turns), and a
transform whose probability is 0 is left out. Plain dataclasses: `--help` imports this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentParams:
    """One pipeline, in the order its transforms run: flip, affine, RGB shift, then colour
    jitter (p jitter_p) or one of blur and colour jitter (p blur_or_jitter_p), with the same
    jitter ranges."""

    flip_p: float = 0.0  # horizontal flip
    affine_p: float = 0.0  # scale, rotate and translate about the centre (transforms.ReflectAffine)
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: tuple[float, float] = (0.0, 0.0)  # degrees
    translate: float = 0.0  # fraction of the width / height, either way
    rgb_shift_p: float = 0.0
    rgb_shift: int = 0  # per channel, 0..255 levels either way
    jitter_p: float = 0.0  # colour jitter on the image (brightness, contrast, saturation, hue)
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur_or_jitter_p: float = 0.0  # one of: Gaussian blur, or the colour jitter above
    blur_limit: tuple[int, int] = (3, 3)  # Gaussian kernel sizes

    @property
    def on_device(self) -> bool:
        """What segtrain.device_augment implements: flip, scale / translate, colour jitter."""
        return self.rotate == (0.0, 0.0) and not self.rgb_shift_p and not self.blur_or_jitter_p


AUGMENT_PARAMS: dict[str, AugmentParams] = {
    "none": AugmentParams(),
    "basic": AugmentParams(flip_p=0.5, affine_p=0.5, scale=(0.75, 1.5), translate=0.1,
                           jitter_p=0.5, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
    "strong": AugmentParams(flip_p=0.5, affine_p=0.7, scale=(0.5, 2.0), rotate=(-15.0, 15.0), translate=0.15,
                            rgb_shift_p=0.3, rgb_shift=15, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05,
                            blur_or_jitter_p=0.6, blur_limit=(3, 5)),
}
AUGMENTS = tuple(AUGMENT_PARAMS)  # --augment's choices
DEVICE_AUGMENTS = tuple(name for name, a in AUGMENT_PARAMS.items() if a.on_device)  # --augment-on device's
