"""The rule tables (synonyms.csv, spelling.csv, manual.csv) and the rule chain over them.

The same chain builds names.csv (`sunrgbd mapping build`) and maps names that are not in
names.csv at convert time, so a name gets the same class either way:

    manual row (raw name)  →  exact class name  →  normalised key equals a class name
    →  synonym (a name, or a `*_head` pattern for compounds such as `coffee_table`)
    →  spelling fix, then the class/synonym steps again
    →  compound: tokens cut into known words (`officechair` → `office_chair` → `*_chair`)
    →  fuzzy: tokens that are no word corrected to the one closest word (`celing` → ceiling)
    →  last readings: as one word (`TVdesk` → t_vdesk → tvdesk), a kept `-us`/`-is` plural
       without its `s` (`cpus`), without numbers inside (`2ndchair`, `chair3back`)
    →  Other (rule `default`)

A part names its whole (`chair_leg`, `chairback`, `cabinet_door` → the whole's class; the
part words are the partitives of phrases.csv); otherwise the last word, the head noun,
decides. The word list of the last two steps is derived from the tables and names.csv
(sunrgbd_tools/labels/words.py), so every result is a pure function of the mapping files
(see docs/mapping.md).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sunrgbd_tools.labels.normalise import SEPARATOR, fold_plural, normalise, squash, tokens
from sunrgbd_tools.labels.words import Vocabulary

SYNONYMS_FILE = "synonyms.csv"
SPELLING_FILE = "spelling.csv"
MANUAL_FILE = "manual.csv"
PHRASES_FILE = "phrases.csv"
PHRASE_ROLES = ("preposition", "genitive", "attached", "partitive", "locative", "function")

# The rules a names.csv row may carry, strongest first (used to break ties between rows).
RULES = ("exact", "manual", "official", "normalised", "synonym", "spelling", "compound", "fuzzy",
         "default")
PATTERN_PREFIX = "*" + SEPARATOR
MAX_MODIFIER = 8  # letters of an unknown modifier before a `*_head` ending (`smallpaper`)
# longer unknown modifiers (`executivechair`, `separationwall`) cut unless they end in a
# phrase's function word after a word (`bookswith|paper`, `tablesand|chair`): up to this many
LONG_MODIFIER = 12
# a number inside a name (`2ndchair`, `chair3back`, `wal2l`): digits, with the ordinal suffix
# that belongs to them (1st 2nd 3rd 4th 11th 12th 13th 21st …)
_NUMBER = re.compile(r"(\d+)(st|nd|rd|th)?")


def _ordinal_suffix(digits: str) -> str:
    n = int(digits[-2:])
    return "th" if 11 <= n <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def drop_numbers(key: str) -> str:
    """The key without the numbers typed inside its words (`2nd_chair`, `chair3back` →
    `chair`, `chairback`; `wal2l` → `wall`); trailing ones are gone already (normalise).
    An ordinal's suffix goes with its digits only when it is the one the number takes
    (`2nd`, `11th`; in `2st` the letters stay)."""
    def cut(m: re.Match) -> str:
        suffix = m.group(2) or ""
        return "" if suffix == _ordinal_suffix(m.group(1)) else suffix
    return SEPARATOR.join(t for t in (_NUMBER.sub(cut, t) for t in tokens(key)) if t)


def by_squashed_key(rows: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """{squashed normalised key: (class, raw name)} from {raw name: (class, rule)}: for each
    key the row of the strongest rule (then the first name), `default` rows left out. Names
    whose keys meet share this class, at build time and at convert time alike."""
    rank = {r: i for i, r in enumerate(RULES)}
    out: dict[str, tuple[str, str]] = {}
    for raw, (cls_name, rule) in sorted(rows.items(), key=lambda kv: (rank.get(kv[1][1], 99), kv[0])):
        key = squash(normalise(raw))
        if rule != "default" and key:
            out.setdefault(key, (cls_name, raw))
    return out


@dataclass(frozen=True)
class Resolution:
    """Outcome of the rule chain: target class, the rule that fired and the table entry."""

    class_name: str
    rule: str
    via: str


def _csv_rows(reader: csv.DictReader, path: Path) -> Iterator[dict]:
    """`reader`'s rows; a row csv refuses (a cell past its field limit) is a ValueError naming
    the file and line, not a traceback."""
    try:
        yield from reader
    except csv.Error as e:
        # line_num counts the lines read before the one csv refused
        raise ValueError(f"{path} line {reader.line_num + 1}: not a readable CSV row ({e})") from None


def read_csv_table(path: Path, need: tuple[str, ...],
                   hand_edited: bool = False) -> tuple[list[tuple[int, dict]], bytes]:
    """Rows of a UTF-8 CSV (BOM tolerated) as (line number, row); checks the header.

    `hand_edited` (the mapping tables people write, a `--mapping` CSV): header cells are
    read without surrounding spaces, and two slips that the csv module silently turns into
    another row are refused with the line: more cells than the header (an unquoted comma in
    a name: `table,chair,chair` mapped `table` to chair) and a quote left open (the rest
    of the file became one cell and its rows vanished).
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 (byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if hand_edited and reader.fieldnames:
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
    fields = reader.fieldnames or []
    missing = [c for c in need if c not in fields]
    if missing:
        header = text.split("\n", 1)[0]
        sep = next((f" (its header is separated by {c!r}, not ',': save it as comma-separated)"
                    for c in (";", "\t") if hand_edited and c in header and "," not in header), "")
        raise ValueError(f"{path}: needs columns {', '.join(need)} (missing {', '.join(missing)}){sep}")
    rows = []
    lines = io.StringIO(text, newline="").readlines()  # the lines the reader counts
    end = reader.line_num
    for r in _csv_rows(reader, path):
        start, end = end + 1, reader.line_num
        while start < end and lines[start - 1] in ("\n", "\r", "\r\n"):  # blank lines it skipped
            start += 1
        if hand_edited:
            if any(v is not None and ("\n" in v or "\r" in v) for v in r.values() if isinstance(v, str)):
                raise ValueError(f"{path} line {start}: a quote opened on this line is not closed"
                                 + (f" (the cell runs on to line {end})" if end > start else ""))
            if None in r:
                raise ValueError(f"{path} line {end}: {len(fields) + len(r[None])} cells but the header has "
                                 f"{len(fields)} (quote a name that holds a comma: \"table,chair\")")
        rows.append((end, {k: (v if v is not None else "") for k, v in r.items() if k}))
    return rows, data


@dataclass
class RuleTables:
    """synonyms.csv, spelling.csv and manual.csv, indexed by squashed normalised keys."""

    class_names: tuple[str, ...]  # classes a name may map to (all but `unlabeled`)
    synonyms: dict[str, tuple[str, str]] = field(default_factory=dict)  # squash → (class, name)
    heads: dict[str, tuple[str, str]] = field(default_factory=dict)  # squash(head) → (class, pattern)
    spelling: dict[str, tuple[str, str]] = field(default_factory=dict)  # squash(wrong) → (right key, wrong)
    spelling_tokens: dict[str, str] = field(default_factory=dict)  # wrong token → right key
    manual: dict[str, str] = field(default_factory=dict)  # raw name → class
    prepositions: frozenset[str] = frozenset()  # `box_of_paper`: the head is before `of`
    genitives: frozenset[str] = frozenset()  # `of`: after a partitive the whole follows
    attached: frozenset[str] = frozenset()  # `on`: a part before it is the whole's after it
    partitives: frozenset[str] = frozenset()  # `stack_of_books`: the head is after `of`
    locatives: frozenset[str] = frozenset()  # partitives that after a word mean (in) `front_of`
    functions: frozenset[str] = frozenset()  # `and`, `a`: with the prepositions, never end a modifier
    phrase_ends: tuple[str, ...] = ()  # prepositions and function words, longest first (load)
    phrase_cutters: tuple[str, ...] = ()  # those that cut inside an unknown token (load)
    files: dict[str, bytes] = field(default_factory=dict)  # file name → bytes read
    words: Vocabulary | None = None  # compound splitting and spelling correction (attach_words)

    def __post_init__(self):
        self.class_keys = {}
        for c in self.class_names:
            self.class_keys.setdefault(squash(normalise(c)), c)

    # ---- loading ---------------------------------------------------------------------
    @classmethod
    def load(cls, folder: Path, class_names: tuple[str, ...], manual: bool = True,
             fallback: Path | None = None) -> RuleTables:
        """Read the rule tables of `folder` (those it lacks from `fallback`, else empty)."""
        t = cls(class_names)
        valid = set(class_names)

        def pick(fname: str) -> Path | None:
            for base in (folder, fallback):
                if base is not None and (Path(base) / fname).is_file():
                    return Path(base) / fname
            return None

        p = pick(SYNONYMS_FILE)
        if p is not None:
            rows, t.files[SYNONYMS_FILE] = read_csv_table(p, ("name", "class"), hand_edited=True)
            for line, r in rows:
                t._add_synonym(r["name"].strip(), r["class"].strip(), valid, f"{p} line {line}")
        p = pick(SPELLING_FILE)
        if p is not None:
            rows, t.files[SPELLING_FILE] = read_csv_table(p, ("wrong", "right"), hand_edited=True)
            for line, r in rows:
                t._add_spelling(r["wrong"].strip(), r["right"].strip(), f"{p} line {line}")
        p = pick(PHRASES_FILE)
        if p is not None:
            rows, t.files[PHRASES_FILE] = read_csv_table(p, ("word", "role"), hand_edited=True)
            roles: dict[str, set[str]] = {r: set() for r in PHRASE_ROLES}
            for line, r in rows:
                word, role = normalise(r["word"]), r["role"].strip()
                if role not in roles or not word or SEPARATOR in word:
                    raise ValueError(f"{p} line {line}: need one word and a role in {', '.join(PHRASE_ROLES)}")
                roles[role].add(word)
            t.prepositions = frozenset(roles["preposition"] | roles["genitive"] | roles["attached"])
            t.genitives = frozenset(roles["genitive"])
            t.attached = frozenset(roles["attached"])
            t.partitives = frozenset(roles["partitive"] | roles["locative"])
            t.locatives = frozenset(roles["locative"])
            t.functions = frozenset(roles["function"])
            # the words that end a phrase's modifier, longest first: prepositions and function
            # words; those that cut inside an unknown token: `of` and prepositions of 3+ letters
            t.phrase_ends = tuple(sorted(t.prepositions | t.functions, key=lambda w: (-len(w), w)))
            t.phrase_cutters = tuple(w for w in t.phrase_ends
                                     if w in t.prepositions and (len(w) > 2 or w in t.genitives))
        p = pick(MANUAL_FILE) if manual else None
        if p is not None:
            rows, t.files[MANUAL_FILE] = read_csv_table(p, ("raw_name", "class"), hand_edited=True)
            for line, r in rows:
                raw, target = r["raw_name"], r["class"].strip()
                where = f"{p} line {line}"
                if target not in valid:
                    raise ValueError(f"{where}: unknown class {target!r}")
                if raw in t.manual and t.manual[raw] != target:
                    raise ValueError(f"{where}: {raw!r} is listed twice with different classes")
                t.manual[raw] = target
        return t

    def table_words(self) -> set[str]:
        """Every word of the class names, synonyms, spelling fixes and phrase words."""
        names = list(self.class_names) + [n for _c, n in self.synonyms.values()]
        names += [n[len(PATTERN_PREFIX):] for _c, n in self.heads.values()]
        names += [r for r, _w in self.spelling.values()]
        keys = [normalise(n) for n in names]
        out = {t for k in keys for t in tokens(k)} | {squash(k) for k in keys}  # `floormat` too
        return out | self.prepositions | self.partitives

    def attach_words(self, raw_names) -> RuleTables:
        """Enable the compound and fuzzy steps with a word list from these raw names
        (names.csv's, so that build time and convert time use the same list)."""
        self.words = Vocabulary.build((normalise(n) for n in raw_names), self.table_words())
        return self

    def _add_synonym(self, name: str, target: str, valid: set[str], where: str) -> None:
        if target not in valid:
            raise ValueError(f"{where}: unknown class {target!r}")
        is_head = name.startswith(PATTERN_PREFIX)
        key = squash(normalise(name[len(PATTERN_PREFIX):] if is_head else name))
        if not key:
            raise ValueError(f"{where}: name {name!r} normalises to nothing")
        index = self.heads if is_head else self.synonyms
        old = index.get(key)
        if old is not None and old[0] != target:
            raise ValueError(f"{where}: {name!r} already maps to {old[0]!r} (as {old[1]!r})")
        if key in self.class_keys and not is_head and self.class_keys[key] != target:
            raise ValueError(f"{where}: {name!r} is the class {self.class_keys[key]!r} itself")
        index.setdefault(key, (target, name))

    def _add_spelling(self, wrong: str, right: str, where: str) -> None:
        w, r = normalise(wrong), normalise(right)
        if not w or not r:
            raise ValueError(f"{where}: spelling fix {wrong!r} → {right!r} normalises to nothing")
        if squash(w) == squash(r):
            raise ValueError(f"{where}: {wrong!r} and {right!r} are the same after normalising")
        old = self.spelling.get(squash(w))
        if old is not None and old[0] != r:
            raise ValueError(f"{where}: {wrong!r} already corrected to {old[0]!r}")
        self.spelling[squash(w)] = (r, wrong)
        if SEPARATOR not in w:
            self.spelling_tokens[w] = r

    # ---- the chain -------------------------------------------------------------------
    def resolve_key(self, key: str) -> Resolution | None:
        """Class of a normalised key from the class names and synonyms, or None."""
        if not key:
            return None
        sq = squash(key)
        if sq in self.class_keys:
            return Resolution(self.class_keys[sq], "normalised", self.class_keys[sq])
        if sq in self.synonyms:
            target, name = self.synonyms[sq]
            return Resolution(target, "synonym", name)
        toks = tokens(key)
        for i in range(1, len(toks) - 1):  # `box_of_paper`, `stack_of_books`
            if toks[i] in self.prepositions:
                left, right = toks[:i], toks[i + 1:]
                if toks[i] in self.genitives and fold_plural(left[-1]) in self.partitives:
                    if len(left) > 1 and left[-1] in self.locatives:  # `rug_front_of_sofa`: a rug
                        return self.resolve_key(SEPARATOR.join(left[:-1]))
                    return self.resolve_key(SEPARATOR.join(right))
                if (toks[i] in self.attached and fold_plural(left[-1]) in self.partitives
                        and left[-1] not in self.locatives):
                    whole = self.resolve_key(SEPARATOR.join(right))  # `locking_wheel_on_desk`
                    if whole is not None:
                        return Resolution(whole.class_name, whole.rule, f"part of {whole.via}")
                return self.resolve_key(SEPARATOR.join(left))
        if len(toks) > 1 and fold_plural(toks[-1]) in self.partitives:  # `chair_leg`, `table_top`
            hit = self.resolve_key(SEPARATOR.join(toks[:-1]))
            if hit is not None:
                return Resolution(hit.class_name, hit.rule, f"part of {hit.via}")
        for i in range(1, len(toks)):  # longest head first: `big_office_chair` → `*_chair`
            cut = self._phrase_cut(toks[i - 1])  # `Dresserwith_Mirror`: dresser+with+mirror
            if cut is not None:
                return self.resolve_key(SEPARATOR.join(toks[:i - 1] + cut + toks[i:]))
            hit = self.heads.get(squash(SEPARATOR.join(toks[i:])))
            if hit is not None:
                return Resolution(hit[0], "synonym", hit[1])
            # a synonym of two or more words ends the name: it is the head (`brown_paperbag`,
            # `lower_door_glass`); one-word synonyms only as `*_head` patterns (`woodframe`)
            hit = self.synonyms.get(squash(SEPARATOR.join(toks[i:])))
            if hit is not None and SEPARATOR in normalise(hit[1]):
                return Resolution(hit[0], "synonym", f"*_{hit[1]}")
        return None

    def fix_spelling(self, key: str) -> tuple[str, str]:
        """(corrected key, description of the fixes applied); the key itself if none apply."""
        hit = self.spelling.get(squash(key))
        if hit is not None:
            return hit[0], f"{hit[1]}→{hit[0]}"
        toks = tokens(key)
        fixed, notes = [], []
        for t in toks:
            r = self.spelling_tokens.get(t)
            if r is None:
                fixed.append(t)
            else:
                fixed.append(r)
                notes.append(f"{t}→{r}")
        if not notes:
            return key, ""
        return normalise(SEPARATOR.join(fixed)), ", ".join(notes)

    def resolve(self, raw: str, use_manual: bool = True) -> Resolution | None:
        """The rule chain for one raw name (None when it falls through to Other)."""
        if use_manual and raw in self.manual:
            return Resolution(self.manual[raw], "manual", MANUAL_FILE)
        if raw in self.class_names:
            return Resolution(raw, "exact", raw)
        key = normalise(raw)
        hit = self.resolve_key(key)
        if hit is not None:
            return hit
        fixed, note = self.fix_spelling(key)
        if note:
            hit = self.resolve_key(fixed)
            if hit is not None:
                return Resolution(hit.class_name, "spelling", f"{note}; {hit.rule} {hit.via}")
        if self.words is None:
            return None
        hit = self._resolve_words(fixed)
        if hit is None and SEPARATOR in fixed:
            # the separated reading failed; as if typed as one word (`Make-UpBag` → make_upbag
            # → makeupbag, `TVdesk` → t_vdesk → tvdesk, `SinkH` → sinkh → sink)
            hit = self.resolve(squash(fixed), use_manual=False)
            if hit is not None:
                return Resolution(hit.class_name, hit.rule, f"{fixed}→{squash(fixed)}; {hit.via}")
        if hit is None and fixed.endswith(("us", "is")):
            # plural folding keeps `-us`, `-is` (bus, tennis); the plural of an abbreviation
            # or a misspelling is the exception that falls through (`cpus`, `teepois`)
            hit = self.resolve(fixed[:-1], use_manual=False)
            if hit is not None:
                return Resolution(hit.class_name, hit.rule, f"{fixed}→{fixed[:-1]}; {hit.via}")
        if hit is None and any(c.isdigit() for c in key):
            bare = normalise(drop_numbers(key))  # `2ndchair`, `chair3back`, `wal2l`
            if bare and bare != key:
                hit = self.resolve(bare, use_manual=False)
                if hit is not None:
                    return Resolution(hit.class_name, "compound", f"{key}→{bare} (number dropped); "
                                      f"{hit.rule} {hit.via}")
        return hit

    def head_split(self, token: str) -> tuple[str, str] | None:
        """`smallpaper` → (small, paper): the longest `*_head` pattern ending the token after
        a modifier of 3 to MAX_MODIFIER letters (up to LONG_MODIFIER when it is no phrase,
        longer only when it splits into words), for a token that is not itself a known
        word; else None. Only patterns
        count, not every synonym, so endings such as `art`, `man`, `ground` never cut;
        words that merely end in a head (`vegetable`) are known words or synonyms.csv rows."""
        if not token.isalpha() or token in self.words:
            return None
        for i in range(3, len(token) - 1):
            if token[i:] in self.heads:
                # a modifier over LONG_MODIFIER letters that splits into no words is more
                # likely a phrase than a word (`bookshelfcontaining|book`); junk before a head
                # still cuts (`wppdemrpimd|chair` → chair: the one real case; a chair it names)
                if (i > MAX_MODIFIER and self.words.split(token[:i]) is None
                        and (i > LONG_MODIFIER or not self._same_class_list(token[:i], token[i:]))):
                    return None
                return token[:i], token[i:]
        return None

    def _same_class_list(self, modifier: str, head: str) -> bool:
        """True when `modifier` is no phrase, or a word joined to the head by a function word
        that is no preposition (`photosand|picture`, `rugor|carpet`) whose class is the
        head's: a list of one class (`tablesand|chair` lists two and stays a phrase)."""
        cut = self._phrase_cut(modifier)
        if cut is None:
            return True
        words = [w for w in cut if w not in self.functions]
        if len(words) == len(cut) or any(w in self.prepositions for w in cut):
            return False
        hit = self.resolve_key(SEPARATOR.join(words))
        return hit is not None and hit.class_name == self.heads[head][0]

    def _phrase_cut(self, modifier: str) -> list[str] | None:
        """`modifier` cut into a word and the function words that end it (prepositions,
        `and`, `a`: `bookswith` → books+with, `comforterina` → comforter+in+a), or None
        when it is a word or ends in none: what follows such a modifier is not its head
        (`books with papers` is books, `comforter in a bag` a comforter). None without a
        word list."""
        if self.words is None or modifier in self.words:
            return None
        split = self.words.split(modifier)
        ends = self.phrase_ends
        if split is not None and set(split).isdisjoint(ends):
            return None  # known words and no phrase word: `singlesofa` is single+sofa
        rest, cut = modifier, []
        while True:
            end = next((w for w in ends if rest.endswith(w) and len(rest) > len(w)), None)
            if end is None:
                return None
            rest, cut = rest[:-len(end)], [end] + cut
            typed = rest  # `boxes|of`: the word as typed, before its plural is folded
            if rest not in self.words and fold_plural(rest) in self.words:
                rest = fold_plural(rest)  # `papers|on`: the word is paper
            words = self.words.split(rest) or self.words.split(fold_plural(rest))
            if rest in self.words or words:
                words = words or (rest,)
                last = next((w for w in reversed(words) if w not in ends), words[0])
                if min(len(w) for w in cut) <= 2 and len(typed if len(words) == 1 else last) < 4:
                    return None  # `can|on`: a short ending cuts only after a word of 4+ letters
                if self.words.near(modifier):
                    return None  # a misspelt word: `cardon` (carton), `heator`, `musica`, `shopa`
                return [*words, *cut]  # `miscitems|in|a`: misc+item+in+a

    def _split_heads(self, key: str) -> tuple[str, str]:
        toks, notes = [], []
        for t in tokens(key):
            cut = None if self.resolve_key(t) else self.head_split(t)
            toks.extend(cut or (t,))
            if cut:
                notes.append("+".join(cut))
        return SEPARATOR.join(toks), ", ".join(notes)

    def _is_compound(self, token: str) -> bool:
        return self.words.split(token) is not None or self.head_split(token) is not None

    def _split_phrases(self, key: str) -> tuple[str, str]:
        """Cut an unknown token at a preposition after a word (`pictureofbeach` →
        picture+of+beach, `dresserwithmirroe` → dresser+with+mirroe): what follows the
        preposition need not be a word, as the head comes before it. Only `of` and
        prepositions of 3+ letters cut: `in`, `on`, `at` end too many words
        (`skirt|in|gboard`)."""
        toks, notes = [], []
        for t in tokens(key):
            cut = None
            if t.isalpha() and t not in self.words and self.words.split(t) is None:
                for i in range(3, len(t) - 4):
                    left = t[:i]
                    if left not in self.words and fold_plural(left) in self.words:
                        left = fold_plural(left)  # `bookswith…`: the word is book
                    if left not in self.words and self.words.split(left) is None:
                        continue
                    p = next((w for w in self.phrase_cutters
                              if t.startswith(w, i) and len(t) - i - len(w) >= 3), None)
                    if p is not None and any(
                            t[i:e] in self.words for e in range(i + max(4, len(p) + 1), len(t) + 1)):
                        continue  # `home|of|fice`: a longer word (`office`) starts at the cut
                    if p is not None:
                        cut = (*(self.words.split(left) or (left,)), p, t[i + len(p):])
                        break
            toks.extend(cut or (t,))
            if cut:
                notes.append("+".join(cut))
        return SEPARATOR.join(toks), ", ".join(notes)

    def _resolve_words(self, key: str) -> Resolution | None:
        """The compound step (known words, then a `*_head` ending), then the fuzzy step,
        each followed by the spelling table. Compounds are never spelling-corrected."""
        steps = []
        split, split_note = self.words.split_key(key)
        if split_note:
            steps.append(("compound", split, split_note))
        heads, heads_note = self._split_heads(split)
        if heads_note:
            steps.append(("compound", heads, ", ".join(x for x in (split_note, heads_note) if x)))
        corrected, fix_note = self.words.correct_key(key, keep=self._is_compound)
        if fix_note:
            again, again_note = self.words.split_key(corrected)
            steps.append(("fuzzy", again, fix_note + (f", {again_note}" if again_note else "")))
        for rule, k, note in steps:
            hit = self._resolve_step(rule, k, note)
            if hit is not None:
                return hit
        # the phrase cut last, and only when the compound and fuzzy readings missed
        phrase, phrase_note = self._split_phrases(split)
        if phrase_note:
            return self._resolve_step("compound", phrase, ", ".join(x for x in (split_note, phrase_note) if x))
        return None

    def _resolve_step(self, rule: str, key: str, note: str) -> Resolution | None:
        fixed, spell_note = self.fix_spelling(key)
        hit = self.resolve_key(fixed)
        if hit is not None:
            notes = "; ".join(x for x in (note, spell_note, f"{hit.rule} {hit.via}") if x)
            return Resolution(hit.class_name, rule, notes)
        return None

    def sha256(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(self.files.items())}
