"""The named parts every segtrain model has (encoder -> decoder -> head) and how
--train-parts names a subset of them.

The owner of PARTS: models/base.py builds SegmentationModel on it, config.py checks
--train-parts with it. It imports nothing (not torch), so the command line can validate
a config before the deep-learning stack is loaded (`segtrain.models` imports torch and
every architecture).
"""

from __future__ import annotations

from collections.abc import Iterable

PARTS = ("encoder", "decoder", "head")


def parse_parts(text: str | Iterable[str]) -> tuple[str, ...]:
    """'head' | 'decoder,head' | 'all' (also 'decoder+head') -> parts in model order."""
    items = text if not isinstance(text, str) else text.replace("+", ",").replace(" ", ",").split(",")
    items = [i.strip() for i in items if i and i.strip()]
    if items == ["all"]:
        return PARTS
    bad = sorted(set(items) - set(PARTS))
    if bad or not items:
        raise ValueError(f"train parts {','.join(items) or '(none)'!r} invalid: give all or a comma list of "
                         f"{', '.join(PARTS)} (e.g. head, decoder,head)")
    return tuple(p for p in PARTS if p in items)


def parts_label(parts: Iterable[str]) -> str:
    """The --train-parts spelling of `parts`: 'all' for every part, else a comma list."""
    parts = tuple(parts)
    return "all" if parts == PARTS else ",".join(parts)
