"""Shared test fixtures: where the real SUN RGB-D files live, and small generated trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# `make test` (and so CI) runs the property tests on a fixed, derandomised set of examples,
# so a green main stays green; a plain `pytest` explores new random examples each run.
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Tests use tiny tensors: one intra-op thread is fastest and keeps the suite quick when
# the machine is shared (2 threads per process made small convolutions ~100x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
# Real SUN RGB-D files shared beside the checkout (never copied into the project).
REALDATA = ROOT.parent / "shared" / "realdata"


def realdata(*parts: str) -> Path:
    """Path of a file in ../shared/realdata, skipping the test when it is not there."""
    p = REALDATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real SUN RGB-D file not available: {p}")
    return p
