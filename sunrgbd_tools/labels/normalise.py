"""The name normaliser: one canonical key for the many spellings of one SUN RGB-D name.

Crowd workers typed `Chair 2`, `chair_2`, `chairs`, `"chair"`, `wal;l`, `night stand`,
`painting_(bottom)` and mojibake such as `wall_√¢¬Ñ¬ñ`. `normalise` maps all of these to a
key made of lower-case letters and digits in `_`-separated tokens (`chair`, `wall`,
`night_stand`, `painting`). It is a pure function of its input (no tables), total (any
string, including empty strings, control characters and broken Unicode, gives a key,
possibly the empty key), and idempotent: ``normalise(normalise(s)) == normalise(s)``.

`squash` drops the separators (`night_stand` → `nightstand`) so that `bookshelf`,
`book_shelf` and `book shelf` meet in the tables' indices.

Steps, in order (see docs/mapping.md):
1. repair mojibake (UTF-8 read as cp1252 / Latin-1 / Mac Roman, possibly twice);
2. drop symbol characters (`©`, `√`, `№`, `¬`, …) and control/format characters;
3. camel-case boundaries become separators (`CubicleWall` → `Cubicle_Wall`, `PCTower` →
   `PC_Tower`; `iPad`, `TV` and all-caps words are left alone), then Unicode NFKC, case
   folding, accents stripped (`é` → `e`);
4. drop bracketed qualifiers: `painting_(bottom)` → `painting` (kept when nothing else is left);
5. separators (space, `_`, `-`, `/`, `&`, `+`, `.`, `,`, `:`) → one `_`; any other
   punctuation (quotes, `#`, backslashes, `;`, `]`, `|`, …) is deleted, so `wal;l` → `wall`;
6. trailing digits removed: `chair2`, `chair_2` → `chair`;
7. simple plural folding of the last token: `chairs` → `chair`, `boxes` → `box`,
   `batteries` → `battery`, `glasses` → `glass` (`ss`, `us`, `is` endings are kept).
The whole pipeline is applied until the key stops changing, which makes it idempotent
by construction (a repaired mojibake can expose more work).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

SEPARATOR = "_"
_SEPARATORS = frozenset(" _-/&+.,:\t\n\r\f\v")
_MOJIBAKE_CODECS = ("cp1252", "latin-1", "mac_roman")
_BRACKETED = re.compile(r"\([^()]*\)")
_RUNS = re.compile(r"_+")
_TRAILING_DIGITS = re.compile(r"[\d_]+$")
_MAX_PASSES = 8
# `CubicleWall`, `officeChair`: a lower-case run of 2+ letters followed by a capital;
# `PCTower`, `DVDPlayer`: a capital run followed by a capitalised word of 2+ letters.
_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2})")


def _repair_mojibake(s: str) -> str:
    """Undo UTF-8 bytes decoded with a legacy 8-bit codec, up to three layers deep.

    A repair is accepted only when the re-encoded bytes are valid UTF-8 and the text gets
    shorter, which genuine non-ASCII names (`café`, `ø`, CJK) practically never satisfy.
    """
    for _ in range(3):
        if s.isascii():
            return s
        for codec in _MOJIBAKE_CODECS:
            try:
                fixed = s.encode(codec).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if len(fixed) < len(s):
                s = fixed
                break
        else:
            return s
    return s


def _keep_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # S*: symbols (©, √, ¬, №, emoji); C*: control, format, unassigned, private use.
    return not (cat[0] == "S" or cat[0] == "C") or ch in _SEPARATORS


def _strip_accents(s: str) -> str:
    decomposed = unicodedata.normalize("NFKD", s)
    return unicodedata.normalize(
        "NFKC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


def _drop_bracketed(s: str) -> str:
    out = s
    while True:
        nxt = _BRACKETED.sub(" ", out)
        if nxt == out:
            break
        out = nxt
    # keep the bracket's content when the qualifier is all there is: `(reflection)`
    if not any(ch.isalnum() for ch in out):
        return s
    return out


def fold_plural(token: str) -> str:
    """English plural → singular for one alphabetic token; anything else is returned as is."""
    if not token.isalpha() or not token.endswith("s"):
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes")) and len(token) > 4:
        return token[:-2]
    if token.endswith(("ss", "us", "is")) or len(token) < 3:
        return token
    return token[:-1]


def _one_pass(name: str) -> str:
    s = _repair_mojibake(name)
    s = "".join(ch for ch in s if _keep_char(ch))
    s = _CAMEL.sub(SEPARATOR, s)
    s = unicodedata.normalize("NFKC", s).casefold()
    s = _strip_accents(s)
    s = _drop_bracketed(s)
    chars = []
    for ch in s:
        if ch.isalnum():
            chars.append(ch)
        elif ch in _SEPARATORS or ch.isspace():
            chars.append(SEPARATOR)
        # any other punctuation is deleted: `wal;l` -> `wall`, `"chair"` -> `chair`
    s = _RUNS.sub(SEPARATOR, "".join(chars)).strip(SEPARATOR)
    s = _TRAILING_DIGITS.sub("", s)
    if not s:
        return ""
    tokens = s.split(SEPARATOR)
    tokens[-1] = fold_plural(tokens[-1])
    return SEPARATOR.join(tokens)


@lru_cache(maxsize=65536)
def normalise(name: str) -> str:
    """Canonical lookup key of a raw object name ('' when nothing usable is left)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    key = name
    for _ in range(_MAX_PASSES):
        nxt = _one_pass(key)
        if nxt == key:
            break
        key = nxt
    return key


def squash(key: str) -> str:
    """A key without separators: `night_stand`, `nightstand` and `night stand` meet here."""
    return key.replace(SEPARATOR, "")


def tokens(key: str) -> list[str]:
    return [t for t in key.split(SEPARATOR) if t]
