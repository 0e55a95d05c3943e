"""Where SUN RGB-D comes from: the official folder URL and the toolbox zip's published MD5.

A module of constants only, so `sunrgbd download --help` shows its defaults without importing
the downloader (urllib3, numpy)."""

from __future__ import annotations

OFFICIAL_BASE_URL = "http://rgbd.cs.princeton.edu/data/"
TOOLBOX_MD5 = "18d22e1761d36352f37232cba102f91f"  # published by the dataset authors
