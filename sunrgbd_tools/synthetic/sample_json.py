"""SAMPLE.json: the arguments of a `sunrgbd sample` run and what it generated per scene.

Why: the file claims an output folder (a resume needs the same arguments and generator
revision) and is the ground truth tests read (docs/synthetic.md, "SAMPLE.json").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sunrgbd_tools import __version__

SCHEMA_VERSION = 1
# Bumped whenever the same arguments would give different scenes (looks, furniture, scene
# mix), so a resumed run never mixes scenes of two generator revisions. 2: distinct looks for
# room-mates, bigger sinks/paper/shelves, more bathrooms and kitchens. 3: allsplit.mat
# trailing slashes follow the real file and SUNRGBDMeta paths carry the matching '//'.
# 4: SUNRGBD2Dseg.mat's seglabel follows the generator's own official mapping
# (OFFICIAL_DIFFERENCES, OFFICIAL_BY_SCENE_TYPE). 5: index.json names have no spaces, as in
# every real index.json (`nightstand`; seg.mat keeps `night stand`).
GENERATOR_REVISION = 5
SAMPLE_FILE = "SAMPLE.json"
KV2_SIZE = (530, 730)  # (H, W) of kv2 image/ and depth/ files
KV1_SIZE = (427, 561)  # (H, W) of kv1 (b3dodata) files


@dataclass(frozen=True)
class SampleParams:
    """Arguments of one `sunrgbd sample` run; SAMPLE.json stores them as `args`."""

    scenes: int = 40
    seed: int = 0
    quirks: bool = True
    size: tuple[int, int] = KV2_SIZE

    def __post_init__(self):
        if self.scenes < 1:
            raise ValueError(f"scenes must be >= 1, got {self.scenes}")
        if len(self.size) != 2 or min(self.size) < 32:
            raise ValueError(f"size must be two numbers >= 32 (H, W), got {self.size}")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    def to_json(self) -> dict:
        return {"scenes": self.scenes, "seed": self.seed, "quirks": self.quirks,
                "size": list(self.size)}

    @classmethod
    def from_json(cls, d: dict) -> SampleParams:
        return cls(int(d["scenes"]), int(d["seed"]), bool(d["quirks"]), tuple(d["size"]))


@dataclass
class SceneInfo:
    """What SAMPLE.json says about one scene (tests use it as ground truth)."""

    index: int
    key: str  # path below SUNRGBD/, e.g. kv2/kinect2data/<scene>
    sensor: str
    split: str  # train / val / test / none
    image: str  # path of the RGB file relative to <out>
    size: tuple[int, int]  # (H, W) of the image
    scene_type: str
    labels: list[str]  # label files present: "seg" (seg.mat), "polygons" (index.json)
    quirks: list[str]
    names: list[str]  # object names painted in the scene (= seg.mat names)
    official_index: int  # 1-based entry in SUNRGBDMeta / SUNRGBD2Dseg
    intrinsics: list[float]  # 9 numbers, row-major
    extrinsics: list[float]  # 12 numbers of the last extrinsics file
    extrinsics_files: list[str]
    depth: bool  # depth/ written

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SceneInfo:
        d = dict(d)
        d["size"] = tuple(d["size"])
        return cls(**d)


@dataclass
class SampleInfo:
    """The content of SAMPLE.json: arguments and per-scene facts."""

    params: SampleParams
    scenes: list[SceneInfo] = field(default_factory=list)
    complete: bool = True

    def scene(self, key: str) -> SceneInfo:
        for s in self.scenes:
            if s.key == key:
                return s
        raise KeyError(f"no scene {key!r} in this sample")

    def to_json(self) -> dict:
        counts = {s: sum(1 for x in self.scenes if x.split == s)
                  for s in ("train", "val", "test", "none")}
        return {
            "schema_version": SCHEMA_VERSION,
            "generator": {"tool": "sunrgbd-tools", "version": __version__,
                          "revision": GENERATOR_REVISION,
                          "command": "sunrgbd sample"},
            "complete": self.complete,
            "args": self.params.to_json(),
            "split_counts": counts,
            "scenes": [s.to_json() for s in self.scenes],
        }

    @classmethod
    def from_json(cls, d: dict) -> SampleInfo:
        return cls(SampleParams.from_json(d["args"]),
                   [SceneInfo.from_json(s) for s in d.get("scenes", [])],
                   bool(d.get("complete", False)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> SampleInfo:
        """Read SAMPLE.json (pass the file or the folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / SAMPLE_FILE
        return cls.from_json(json.loads(p.read_text(encoding="utf-8")))


class SampleConflict(Exception):
    """The output folder holds a raw tree this run must not overwrite."""
