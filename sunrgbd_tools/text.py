"""Text helpers for messages: counts in the right number, a few names of a long list.

One place, so every command words a count and a shortened list the same way.
"""

from __future__ import annotations

from collections.abc import Sequence


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 attempt`, `2 attempts`: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def first_names(names: Sequence[str], shown: int = 3) -> str:
    """`a, b, c and 5 more`: the first `shown` of `names` and how many are left unsaid
    (a one-line problem stays one line for 856 names)."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")
