"""The word list behind compound splitting and spelling correction of raw names.

Real SUN RGB-D names are typed without spaces (`officechair`, `tilefloor`, `chairleg`) and
misspelt (`celing`, `cuboard`). Both are handled with one word list derived from the
mapping tables themselves, never from outside data, so every result stays a pure function
of the files whose checksums dataset.json records:

- a word is a token of a class name, a synonym, a spelling fix or a phrase word (the
  tables: words people chose), or an alphabetic token of 3+ letters that occurs in at
  least `MIN_NAMES` distinct normalised raw names of names.csv (words the crowd typed
  with a separator often enough to be trusted: `office` in `office_chair`, `office_desk`);
- `split` cuts a token into the fewest words, ties broken by the most frequent words, then
  alphabetically (`officechair` → `office chair`, `bedsheet` → `bed sheet`);
- `correct` replaces a token that is not a word by the one word within optimal string
  alignment distance 1 (2 for tokens of `LONG` letters or more), preferring the word most
  names use; it gives up when two words tie, never touches tokens shorter than `SHORT`
  letters, where one edit turns a word into another word (`lamp`/`lamb`), and below
  `FIRST_LETTER` letters keeps the first letter (`lable` is not `table`), since typists
  rarely miss the first letter and short words differ mostly there.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from sunrgbd_tools.labels.normalise import SEPARATOR, fold_plural, tokens

MIN_NAMES = 2  # a crowd token is a word when this many distinct names use it
MIN_LETTERS = 3  # crowd tokens shorter than this are never words (`ab`, `st`)
SHORT = 5  # tokens shorter than this are never spelling-corrected
LONG = 10  # tokens this long may be corrected at distance 2
FIRST_LETTER = 7  # shorter tokens are only corrected to words with the same first letter
MAX_SPLIT = 40  # longer tokens are not split (no real name comes close)


def osa_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions (`cahir` → `chair` is 1)."""
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                d = min(d, prev2[j - 2] + 1)
            cur.append(d)
        prev2, prev = prev, cur
    return prev[-1]


def deletes(word: str, depth: int) -> set[str]:
    """Every string reachable from `word` by up to `depth` deletions (SymSpell's index key)."""
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


class Vocabulary:
    """Known words with the number of distinct raw names that use each."""

    def __init__(self, counts: dict[str, int]):
        self.counts = dict(sorted(counts.items()))
        self._index: dict[str, list[str]] | None = None
        self._split_cache: dict[str, tuple[str, ...] | None] = {}

    @classmethod
    def build(cls, name_keys: Iterable[str], table_words: Iterable[str]) -> Vocabulary:
        """From the normalised raw-name keys of names.csv and the words of the rule tables."""
        use: Counter[str] = Counter()
        for key in set(name_keys):
            for t in set(tokens(key)):
                if t.isalpha():
                    use[t] += 1
        counts = {t: n for t, n in use.items() if len(t) >= MIN_LETTERS and n >= MIN_NAMES}
        for w in table_words:
            if w.isalpha() and len(w) >= 2:
                counts[w] = max(counts.get(w, 0), use.get(w, 0), 1)
        return cls(counts)

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    # ---- compounds -------------------------------------------------------------------
    def split(self, token: str) -> tuple[str, ...] | None:
        """The best cut of `token` into 2+ words, or None (`officechair` → office, chair)."""
        if token in self._split_cache:
            return self._split_cache[token]
        out = None
        n = len(token)
        if token.isalpha() and 4 <= n <= MAX_SPLIT:
            # best[i] = (words, -Σ log count, cut) for token[:i]; fewest words, then commonest
            best: list[tuple[int, float, tuple[str, ...]] | None] = [None] * (n + 1)
            best[0] = (0, 0.0, ())
            for i in range(1, n + 1):
                for j in range(max(0, i - MAX_SPLIT), i - 1):
                    prev, word = best[j], token[j:i]
                    if prev is None or word not in self.counts:
                        continue
                    cand = (prev[0] + 1, prev[1] - math.log(self.counts[word]), prev[2] + (word,))
                    if best[i] is None or cand < best[i]:
                        best[i] = cand
            if best[n] is not None and best[n][0] >= 2:
                out = best[n][2]
        self._split_cache[token] = out
        return out

    def split_key(self, key: str) -> tuple[str, str]:
        """(key with every splittable token cut into words, `a+b` notes; '' when none)."""
        toks, notes = [], []
        for t in tokens(key):
            cut = self.split(t)
            if cut is None:
                toks.append(t)
            else:
                toks.extend(cut)
                notes.append("+".join(cut))
        return SEPARATOR.join(toks), ", ".join(notes)

    # ---- spelling --------------------------------------------------------------------
    def _deletion_index(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for w in self.counts:
                if len(w) >= SHORT - 1:
                    for d in deletes(w, 2 if len(w) >= LONG - 1 else 1):
                        index.setdefault(d, []).append(w)
            self._index = index
        return self._index

    def correct(self, token: str) -> str | None:
        """The one word `token` is a misspelling of, or None (a word, too short, a tie)."""
        if token in self.counts or not token.isalpha() or len(token) < SHORT:
            return None
        single = fold_plural(token)  # `dresses` is the plural of a word, not a misspelling
        if single in self.counts:
            return single
        limit = 2 if len(token) >= LONG else 1
        pool = self._candidates(token, limit)
        scored = sorted((osa_distance(token, w), -self.counts[w], w) for w in pool)
        scored = [s for s in scored if s[0] <= limit and len(s[2]) >= SHORT - 1
                  and (len(token) >= FIRST_LETTER or s[2][0] == token[0])]
        if not scored:
            return None
        if len(scored) > 1 and scored[1][:2] == scored[0][:2]:
            return None  # two words equally close and equally common: no basis to choose
        return scored[0][2]

    def near(self, token: str) -> bool:
        """True when a known word of SHORT - 1 or more letters is one edit from `token`
        (`cardon` → carton, `heator` → heater): such a token is read as that word misspelt."""
        return any(osa_distance(token, w) == 1 for w in self._candidates(token, 1))

    def _candidates(self, token: str, limit: int) -> set[str]:
        """The known words of SHORT - 1 or more letters that share a deletion of up to `limit`
        letters with `token`: every word within `limit` edits of it, and some further off."""
        index = self._deletion_index()
        pool: set[str] = set()
        for d in deletes(token, limit):
            pool.update(index.get(d, ()))
        return pool

    def correct_key(self, key: str, keep=lambda t: False) -> tuple[str, str]:
        """(key with misspelt tokens corrected, `wrong→right` notes; '' when none).
        Tokens for which `keep` is true (compounds of known words) are left alone."""
        toks, notes = [], []
        for t in tokens(key):
            fix = None if keep(t) else self.correct(t)
            toks.append(fix or t)
            if fix:
                notes.append(f"{t}→{fix}")
        return SEPARATOR.join(toks), ", ".join(notes)
