"""The class table of a clean tree and the look-up arrays derived from it.

Label PNGs are uint8, so every array is indexed by a pixel value 0..255: id → train id,
id → colour, which ids the table defines. The converter builds them from mappings/
classes.csv, the readers from dataset.json's `classes`; both through `ClassLookup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where an array is built: `sunrgbd stats --help` reads
    import numpy as np  # DEFAULT_WEIGHT_METHOD through cleantree.dataset and loads click alone

# fixed by the contract: trainIds value of unlabelled / ignored pixels, and the loss's
# ignore_index; a dataset.json saying otherwise is refused (cleantree.dataset)
IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassEntry:
    """One row of dataset.json `classes`."""

    id: int
    train_id: int
    name: str
    color: tuple[int, int, int]  # RGB
    ignore_in_eval: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "train_id": self.train_id, "name": self.name, "color": list(self.color),
                "ignore_in_eval": self.ignore_in_eval}


@dataclass(frozen=True)
class TrainClass:
    """One train id and the class ids mapped onto it (in table order)."""

    train_id: int
    names: tuple[str, ...]
    ids: tuple[int, ...]
    color: tuple[int, int, int]  # of the first class
    ignore_in_eval: bool  # every class of this train id is ignore_in_eval

    @property
    def name(self) -> str:
        return self.names[0]


class ClassLookup:
    """Look-up arrays of a class table. Builds no checks of its own: the dataset.json reader
    checks a table before it gets here (the converter's table is checked on load)."""

    def __init__(self, entries: list[ClassEntry] | tuple[ClassEntry, ...]):
        self.entries = tuple(entries)

    @cached_property
    def id_to_train_id(self) -> np.ndarray:
        """uint8[256]: labelIds value → trainIds value (255 for ignore and unknown ids)."""
        import numpy as np

        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for c in self.entries:
            lut[c.id] = c.train_id
        return lut

    @cached_property
    def id_to_color(self) -> np.ndarray:
        """uint8[256, 3] RGB colour per labelIds value (black for unknown ids)."""
        import numpy as np

        lut = np.zeros((256, 3), dtype=np.uint8)
        for c in self.entries:
            lut[c.id] = c.color
        return lut

    @cached_property
    def valid_ids(self) -> np.ndarray:
        """bool[256]: which labelIds values the table defines."""
        import numpy as np

        ok = np.zeros(256, dtype=bool)
        ok[[c.id for c in self.entries]] = True
        return ok

    @cached_property
    def train_classes(self) -> list[TrainClass]:
        """One entry per train id other than 255, in train-id order."""
        members: dict[int, list[ClassEntry]] = {}
        for c in self.entries:
            if c.train_id != IGNORE_INDEX:
                members.setdefault(c.train_id, []).append(c)
        return [TrainClass(t, tuple(c.name for c in m), tuple(c.id for c in m), m[0].color,
                           all(c.ignore_in_eval for c in m))
                for t, m in sorted(members.items())]

    @property
    def num_classes(self) -> int:
        """Train ids other than 255 (dataset.json `num_classes`)."""
        return len(self.train_classes)

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.entries]
