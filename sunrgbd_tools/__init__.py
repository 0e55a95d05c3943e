"""SUN RGB-D → Cityscapes-style dataset toolkit (the `sunrgbd` command)."""

__version__ = "0.1.0"
