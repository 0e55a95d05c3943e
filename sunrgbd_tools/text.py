"""Text helpers for messages: counts in the right number, a few names of a long list.

One place, so every command words a count and a shortened list the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 attempt`, `2 attempts`: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def first_names(names: Sequence[str], shown: int = 3) -> str:
    """`a, b, c and 5 more`: the first `shown` of `names` and how many are left unsaid
    (a one-line problem stays one line for 856 names)."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


# how a batch job's per-scene line ends when it skipped the scene (what shared_skips_once matches)
SCENE_SKIPPED = " (scene skipped)"


def shared_skips_once(results: Iterable[tuple[str, Sequence[str], bool]]) -> list[str]:
    """Every (key, problems, skipped) result's problems, but a skip line that several scenes
    share word for word once: a scene's own problems name the scene, so such a line names a
    file they share (a damaged SUNRGBD2Dseg.mat entry store: one identical line per scene),
    and says how many scenes it skipped and which. Used by convert and `mapping audit`."""
    results = list(results)
    by_line: dict[str, list[str]] = {}
    for key, problems, skipped in results:
        if skipped and problems and problems[-1].endswith(SCENE_SKIPPED):
            by_line.setdefault(problems[-1], []).append(key)
    out: list[str] = []
    for _key, problems, skipped in results:
        shared = skipped and len(by_line.get(problems[-1] if problems else "", ())) > 1
        out.extend(problems[:-1] if shared else problems)
    for line, keys in by_line.items():
        if len(keys) > 1:
            out.append(f"{line.removesuffix(SCENE_SKIPPED)} ({plural(len(keys), 'scene')} skipped: {first_names(sorted(keys))})")
    return out


Problem = tuple[os.PathLike, str]  # (the file, what is wrong), kept apart until printed


def named_once(*groups: Iterable[Problem], already: Iterable[os.PathLike] = ()) -> list[Problem]:
    """The (path, message) problems of every group, leaving out a problem for a file in
    `already` or named by an earlier group (verify: a sample file that differs from
    manifest.csv is not named again for SHA256SUMS). Paths are compared, never parsed back out
    of the text (a name may hold ": "); `problem_lines` prints them."""
    named: set = set(already)
    out: list[tuple[os.PathLike, str]] = []
    for group in groups:
        group = list(group)
        out.extend((path, msg) for path, msg in group if path not in named)
        named.update(path for path, _ in group)
    return out


def one_line(text: str | os.PathLike) -> str:
    """A file's path (or a line naming one) on one line: undecodable bytes as \\xNN, line
    breaks escaped (a file name may hold either)."""
    shown = os.fsencode(text).decode("utf-8", "backslashreplace")
    return shown.replace("\n", "\\n").replace("\r", "\\r")


def problem_lines(problems: Iterable[Problem]) -> list[str]:
    """`path: message`, the printed form of (path, message) problems, each on one line
    (`one_line`: a stray file named with a line break is one problem, not two lines)."""
    return [one_line(f"{path}: {msg}") for path, msg in problems]
