"""Scene discovery: which scene folders a raw tree holds for a subset, and their links."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sunrgbd_tools.raw.base import SENSORS, RawDataError


# ---------------------------------------------------------------------------- discovery
@dataclass(frozen=True)
class SceneRef:
    """A scene folder: `key` is its path below SUNRGBD/ (e.g. kv2/kinect2data/<scene>)."""

    key: str
    path: Path

    @property
    def sensor(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def sample_id(self) -> str:
        """Stable unique id: the key below the sensor with '/' → '__'."""
        return self.key.split("/", 1)[1].replace("/", "__")


def parse_subset(subset: str) -> tuple[str, ...]:
    """`kv2`, `kv2/align_kv2`, `all`, or a comma list of those → key prefixes."""
    out = []
    for part in subset.split(","):
        part = part.strip().strip("/")
        if not part:
            continue
        if part == "all":
            return SENSORS
        # `..` would walk another folder under keys no split lists (`kv2/../kv1`: 0 samples, exit 0)
        if part.split("/", 1)[0] not in SENSORS or any(p in ("", ".", "..") for p in part.split("/")):
            raise ValueError(
                f"unknown subset {part!r}; use one of {', '.join(SENSORS)}, all, "
                "or a sub-subset such as kv2/align_kv2"
            )
        out.append(part)
    if not out:
        raise ValueError("empty subset")
    return tuple(out)


def selects_all(subset: str) -> bool:
    """Whether `subset` (valid for `parse_subset`) names `all`: every sensor and whatever else
    SUNRGBD/ holds (the downloader then wants the whole data archive)."""
    return any(part.strip().strip("/") == "all" for part in subset.split(","))


@dataclass
class Discovery:
    """The scene folders found, and every folder that could not be read (path, reason)."""

    scenes: list[SceneRef]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def skipped_problems(self) -> list[str]:
        """One problem line per unreadable folder (`mapping check` and `mapping audit`)."""
        return [f"{p}: {why} (folder skipped)" for p, why in self.unreadable]


def discover(src: Path, subset: str) -> Discovery:
    """Scene folders (those holding image/) under `src/SUNRGBD/<subset>`, sorted by key.

    A folder that cannot be listed (permissions, I/O) is not silently passed over as a
    plain directory walk would: it is returned in `unreadable`, so its scenes can be
    reported and counted. The inside of a scene folder is left to the scene's readers.
    """
    root = Path(src) / "SUNRGBD"
    if not root.is_dir():
        raise RawDataError(root, "not found (expected the SUNRGBD/ folder of the official zip)"
                           + inside_sunrgbd_hint(src))
    scenes: dict[str, SceneRef] = {}
    unreadable: dict[str, tuple[Path, str]] = {}

    def failed(e: OSError) -> None:
        path = Path(e.filename) if e.filename else root
        unreadable[str(path)] = (path, e.strerror or type(e).__name__)

    for prefix in parse_subset(subset):
        base = root / prefix
        try:
            if not base.is_dir():
                continue
        except OSError as e:  # a folder above it cannot be searched
            failed(e)
            continue
        for dirpath, dirnames, _files in os.walk(base, onerror=failed):
            for d in [d for d in dirnames if not _utf8(d)]:
                # no SUN RGB-D name is: a stray folder such as a Latin-1 `café` once crashed
                # convert at the end, writing problems.txt; reported under an escaped name
                dirnames.remove(d)
                shown = Path(os.fsencode(Path(dirpath) / d).decode("utf-8", "backslashreplace"))
                unreadable[str(shown)] = (shown, "folder name is not UTF-8 (not walked)")
            if "image" in dirnames:
                scene = Path(dirpath)
                key = scene.relative_to(root).as_posix()
                scenes[key] = SceneRef(key, scene)
                dirnames[:] = []  # fullres/ and the other inner folders hold no scenes
            else:
                dirnames.sort()
                for d in dirnames:  # os.walk passes over linked folders: say so (see scene_links)
                    link = Path(dirpath) / d
                    if link.is_symlink():
                        unreadable[str(link)] = (link, f"symbolic link to {os.readlink(link)} (not followed)")
    return Discovery([scenes[k] for k in sorted(scenes)], [unreadable[k] for k in sorted(unreadable)])


def inside_sunrgbd_hint(src: Path) -> str:
    """A hint for a raw-tree path that is SUNRGBD/ itself (it holds the sensor folders):
    the tools want the folder above it, beside SUNRGBDtoolbox/. Empty otherwise."""
    sensors = [s for s in SENSORS if (Path(src) / s).is_dir()]
    if not sensors:
        return ""
    return f"; {src} holds {', '.join(s + '/' for s in sensors)}: it is SUNRGBD/ itself, pass the folder above it"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.walk gives undecodable bytes as surrogates
        return False
    return True


def check_scene_links(scene: Path) -> None:
    """Refuse a scene holding a symbolic link that leads outside its own folder.

    The raw tree often comes from someone else's archive or mirror; a link inside a scene
    could make `convert` read (and publish) any file on the machine. Links that stay inside
    the scene are followed; links above the scene folders (`--src`, `SUNRGBD/`, a subset
    folder) are the user's own arrangement and followed too. See docs/converter.md.
    """
    base = scene.resolve()
    for dirpath, dirnames, filenames in os.walk(scene):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if target != base and base not in target.parents:
                    raise RawDataError(p, f"symbolic link to {os.readlink(p)}, outside the scene folder (not followed)")


def discover_scenes(src: Path, subset: str) -> list[SceneRef]:
    """Scene folders under `src/SUNRGBD/<subset>`, sorted by key (see `discover`)."""
    return discover(src, subset).scenes


def first_file(folder: Path, pattern: str) -> Path | None:
    files = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    return files[0] if files else None


