"""Depth as network input: channel counts per --inputs and the depth encodings.

Depth arrives as float32 metres (0 = missing, the converter's contract) and is encoded on
the device. Missing pixels are 0 after encoding, i.e. exactly the dataset mean: the network
sees "no information" there, and nothing was ever interpolated into them (every geometric
transform moves depth nearest-neighbour, like the mask). No validity channel: a value of
exactly 0.0 never occurs for valid depth in practice and the channel count stays 4 / 1.

- metres: depth clipped to MAX_DEPTH_M, then (d - depth_mean) / depth_std with the
  statistics dataset.json holds (`sunrgbd stats`); without them FALLBACK_DEPTH_STATS (typical
  indoor values) and a warning, as the RGB normalisation falls back to ImageNet's.
- inverse: depth_mean / d - 1 with d clipped to [depth_mean / 4, MAX_DEPTH_M]: 0 at the mean
  depth, towards -1 far away, up to 3 close by (near structure gets the resolution).
"""

from __future__ import annotations

import torch

MAX_DEPTH_M = 10.0  # Kinect-class sensors are unreliable beyond ~8 m; the converter caps at 8
FALLBACK_DEPTH_STATS = (3.0, 1.5)  # metres (mean, std): used only when dataset.json has none

CHANNELS = {"rgb": (3, 0), "rgbd": (3, 1), "depth": (0, 1)}  # inputs -> (colour, depth) channels


def in_channels(inputs: str) -> int:
    rgb, depth = CHANNELS[inputs]
    return rgb + depth


def uses_depth(inputs: str) -> bool:
    return CHANNELS[inputs][1] > 0


def encode_depth(metres: torch.Tensor, encoding: str, mean: float, std: float) -> torch.Tensor:
    """(N, H, W) metres, 0 = missing -> (N, 1, H, W) float, missing = 0."""
    valid = metres > 0
    if encoding == "metres":
        x = (metres.clamp(max=MAX_DEPTH_M) - mean) / std
    elif encoding == "inverse":
        x = mean / metres.clamp(min=mean / 4, max=MAX_DEPTH_M) - 1.0
    else:
        raise ValueError(f"depth encoding {encoding!r} is not one of metres, inverse")
    return torch.where(valid, x, torch.zeros_like(x)).unsqueeze(1)
