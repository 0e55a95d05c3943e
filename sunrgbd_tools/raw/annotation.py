"""annotation2Dfinal/index.json: polygons and object names, salvaging the damaged files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sunrgbd_tools.raw.base import RawDataError, UnreadableFile


# ---------------------------------------------------------------------------- index.json
@dataclass
class Polygon:
    x: np.ndarray  # float64 image coordinates (0-based, may lie outside the image)
    y: np.ndarray
    object: int  # 0-based index into Annotation.names


@dataclass
class Salvage:
    """What reading a damaged index.json kept: where reading first failed (a byte offset
    into the file), how many places were damaged, and (kept, found) objects and polygons.
    "found" counts the elements whose start is still in the file (a cut file hides the rest)."""

    offset: int
    places: int
    objects: tuple[int, int]
    polygons: tuple[int, int]

    def to_json(self) -> dict:
        return {"offset": self.offset, "places": self.places,
                "objects": list(self.objects), "polygons": list(self.polygons)}


@dataclass
class Annotation:
    names: list[str | None]  # objects[k].name, None for null/{} objects (or lost to damage)
    polygons: list[Polygon]
    warnings: list[str] = field(default_factory=list)
    salvage: Salvage | None = None  # set when the file was damaged beyond the known repairs


# A name string whose closing quote is followed by the end of the value. The value never
# crosses a brace or a `":` (a key), so a repair cannot merge two objects into one and
# renumber the rest.
_NAME_VALUE = re.compile(r'("name"\s*:\s*")((?:(?!"\s*:|:\s*")[^{}])*?)"(?=\s*[,}\]])')


def _lenient_name(raw: str) -> str | None:
    """A name value as written between its quotes → str, accepting the two breakages of
    the real files (a trailing backslash that escapes the closing quote, `"wall\\"`, and
    unescaped inner quotes, `""propulsion"tool"`); any other damage → None."""
    try:
        return json.loads('"' + raw + '"')
    except ValueError:
        pass
    fixed = raw
    if raw.startswith('"') and raw.count('"') >= 2:  # the `""propulsion"tool"` shape only:
        # a lone inner quote is just as likely what is left of two merged entries
        fixed = re.sub(r'(?<!\\)((?:\\\\)*)"', r'\1\\"', raw)  # escape unescaped quotes
    if (len(fixed) - len(fixed.rstrip("\\"))) % 2:
        fixed += "\\"
    try:
        return json.loads('"' + fixed + '"')
    except ValueError:
        return None


def _repair_json(text: str) -> str:
    """Fix the two kinds of broken name strings found in the real index.json files:
    a trailing backslash that escapes the closing quote (`"wall\\"`) and unescaped inner
    quotes (`""propulsion"tool"`). Only name values are touched."""

    def fix(m: re.Match) -> str:
        value = _lenient_name(m.group(2))
        if value is None:  # another kind of damage: left for the salvage to judge
            return m.group(0)
        return m.group(1)[:-1] + json.dumps(value, ensure_ascii=False)

    return _NAME_VALUE.sub(fix, text)


# ------------------------------------------------------------------ salvaging damaged JSON
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_POLYGON_KEY = re.compile(r'"polygon"\s*:\s*\[')
_OBJECTS_KEY = re.compile(r'"objects"\s*:\s*\[')
_ONE_NAMED_OBJECT = re.compile(r'\{\s*"name"\s*:\s*"(.*)"\s*\}\Z', re.S)
_KEY = re.compile(r'"\s*:|:\s*"')  # what is left of a key: two entries may have merged
_JUNK_THEN_SEPARATOR = re.compile(r'[^{}\[\]",]*([,\]])')
_LIST_END = re.compile(r'\]\s*(?:,\s*"|\}|\Z)')


def _value_at(text: str, i: int) -> tuple[bool, object, int]:
    """(parsed, value, end) of the JSON value starting at i; on failure `end` is where."""
    try:
        value, end = _DECODER.raw_decode(text, i)
        return True, value, end
    except json.JSONDecodeError as e:
        return False, None, max(e.pos, i)
    except (ValueError, RecursionError):  # a huge integer, absurd nesting
        return False, None, i


def _ws(text: str, i: int) -> int:
    return _WS.match(text, i).end()


class _Salvager:
    """Read the polygon list and the object list of a damaged file element by element.

    Polygons carry their own object index, so after a damaged polygon reading resumes at
    the next `{` that parses as a polygon, and nothing later changes meaning. Objects are
    numbered by position: a damaged object is kept as lost (None) only when its text is
    plainly one `{"name": ...}` entry; when the damage may have merged or split entries,
    the numbering of every later object is uncertain and they are all given up rather than
    risk painting a polygon with another object's class.
    """

    def __init__(self, text: str):
        self.text = text
        self.damage: list[int] = []  # character offsets where reading failed

    def polygons(self) -> tuple[list, int, int]:
        """(elements, lost, polygon list start or -1)."""
        text = self.text
        m = _POLYGON_KEY.search(text)
        if m is None:
            self.damage.append(len(text))
            return [], 0, -1
        mo = _OBJECTS_KEY.search(text, m.end())
        stop = mo.start() if mo else len(text)
        out: list = []
        lost = 0
        i = m.end()
        while True:
            i = _ws(text, i)
            if i < len(text) and text[i] == "]":
                return out, lost, m.end()
            ok, value, end = _value_at(text, i)
            if ok and not isinstance(value, dict):  # e.g. a list opened by a stray `[`
                ok, end = False, i
            if ok:
                j = _ws(text, end)
                if j < len(text) and (text[j] in ",]" or text[j] == "{"):
                    out.append(value)  # a lost comma between two whole polygons costs nothing
                    i = j + (text[j] == ",")
                    if text[j] == "{":
                        self.damage.append(j)
                    continue
                if "x" in value or "y" in value:
                    out.append(value)  # polygons hold no dicts: this one is whole
                    i = j
                else:
                    ok = False  # a value not followed by a separator may be a fragment
            failed_at = end if not ok else i
            self.damage.append(failed_at)
            nxt = self._next_polygon(failed_at, stop)
            # polygons whose start lies in the skipped text (for the report)
            skipped = text.count("{", i, nxt if nxt >= 0 else stop)
            lost += skipped if ok else max(1, skipped)
            if nxt < 0:
                return out, lost, m.end()
            i = nxt

    def _next_polygon(self, i: int, stop: int) -> int:
        text = self.text
        while True:
            i = text.find("{", i, stop)
            if i < 0:
                return -1
            ok, value, _ = _value_at(text, i)
            if ok and isinstance(value, dict) and ("x" in value or "y" in value):
                return i
            i += 1

    def objects(self) -> tuple[list, list[int], bool, int]:
        """(names or None per position, positions lost to damage, complete, found)."""
        text = self.text
        m = _OBJECTS_KEY.search(text)
        if m is None:
            self.damage.append(len(text))
            return [], [], False, 0
        values: list = []
        lost: list[int] = []
        i = m.end()
        while True:
            i = _ws(text, i)
            if i < len(text) and text[i] == "]":
                j = _ws(text, i + 1)  # the list ends where the next key (or the document) begins
                if j < len(text) and ((text[j] == "}" and _ws(text, j + 1) == len(text)) or (
                        text[j] == "," and text[_ws(text, j + 1):_ws(text, j + 1) + 1] == '"')):
                    return values, lost, True, len(values)
                self.damage.append(i)  # a stray `]`: entries may follow
                return values, lost, False, len(values) + self._count_rest(i)
            ok, value, end = _value_at(text, i)
            if ok and not (value is None or isinstance(value, dict)):
                self.damage.append(i)  # not an entry: the damage is structural
                return values, lost, False, len(values) + self._count_rest(i)
            if ok:
                j = _ws(text, end)
                if j < len(text) and text[j] in ",]":
                    values.append(value)
                    i = j + (text[j] == ",")
                    continue
                if j < len(text) and text[j] == "{" and isinstance(value, dict):
                    # `}{`: a lost comma, or a whole entry deleted with its comma; the two
                    # look the same, so the numbering of every later entry is uncertain
                    values.append(value)
                    self.damage.append(j)
                    return values, lost, False, len(values) + self._count_rest(j)
                self.damage.append(j)
                # junk after a whole entry, then its comma: the numbering is still sure
                sep = _JUNK_THEN_SEPARATOR.match(text, j)
                if isinstance(value, dict) and sep:
                    values.append(value)
                    i = sep.end() if sep.group(1) == "," else sep.start(1)
                    continue
                # else the value may be a fragment of a broken entry
                return values, lost, False, len(values) + self._count_rest(i)
            self.damage.append(end)
            # one damaged entry, plainly one object with one name, keeps the numbering
            close = text.find("}", i)
            one = _ONE_NAMED_OBJECT.match(text, i, close + 1) if close >= 0 else None
            after = _ws(text, close + 1) if one else -1
            name = _lenient_name(one.group(1)) if one else None
            if one and "{" not in one.group(1) and not _KEY.search(one.group(1)) \
                    and (name is not None or '"' not in one.group(1)) \
                    and after < len(text) and text[after] in ",]":
                if name is None:
                    lost.append(len(values))
                values.append({"name": name} if name is not None else None)
                i = after + (text[after] == ",")
                continue
            return values, lost, False, len(values) + self._count_rest(i)

    def _count_rest(self, i: int) -> int:
        """Object entries that seem to start at or after i, up to what looks like the end of
        the list (for the report only)."""
        end = _LIST_END.search(self.text, i)
        return len(re.findall(r'\{\s*"name"\s*:|\bnull\b|\{\s*\}', self.text[i:end.start() if end else None]))


def _load_json_lenient(path: Path) -> tuple[object, str, Salvage | None, dict | None]:
    """→ (document or salvaged parts, how: "strict" | "repaired" | "salvaged", salvage, info)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableFile(path, f"cannot read ({e.strerror or type(e).__name__})") from None
    # one character per undecodable byte, so character offsets map back to byte offsets
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        return json.loads(text), "strict", None, None
    except json.JSONDecodeError as e:
        first = (e.lineno, e.colno, e.msg)
        first_pos = [e.pos]
    except (ValueError, RecursionError) as e:
        first = (1, 1, type(e).__name__)
        first_pos = []
    try:
        return json.loads(_repair_json(text)), "repaired", None, None
    except (ValueError, RecursionError):
        pass
    sv = _Salvager(text)
    polys, polys_lost, _ = sv.polygons()
    objs, objs_lost, complete, found = sv.objects()
    if not polys and not any(isinstance(o, dict) for o in objs):
        raise RawDataError(
            path, f"not valid JSON (line {first[0]} column {first[1]}: {first[2]}) and nothing could be salvaged"
        )
    places = set(sv.damage) | set(first_pos)  # the strict parser's stop may lie outside both lists
    at = min(places) if places else len(text)
    offset = len(text[:at].encode("utf-8", errors="surrogateescape"))
    kept_objs = sum(1 for k in range(len(objs)) if k not in objs_lost)
    salvage = Salvage(offset, len(places), (kept_objs, max(found, len(objs))),
                      (len(polys), len(polys) + polys_lost))
    doc = {"objects": objs, "frames": [{"polygon": polys}]}
    return doc, "salvaged", salvage, {"first": first, "objects_complete": complete,
                                      "objects_lost": set(objs_lost)}


def _clean_name(name: str) -> str:
    """Undecodable bytes (kept as surrogates while parsing) → U+FFFD."""
    if name.isascii():
        return name
    return name.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def read_index_json(path: Path) -> Annotation:
    """annotation2Dfinal/index.json → object names and polygons of frame 0, in file order.

    Bad pieces (null objects, dangling indices, non-numeric or too-short polygons) are
    dropped with a warning. A file that is not JSON is repaired when the damage is one of
    the two known kinds, else salvaged: every object and polygon that still parses is kept
    and what was lost is reported (`Annotation.salvage`). Only a file from which nothing
    can be salvaged raises RawDataError.
    """
    if not path.exists():
        raise RawDataError(path, "file not found")
    doc, how, salvage, info = _load_json_lenient(path)
    warnings = []
    if how == "repaired":
        warnings.append(f"{path}: invalid JSON repaired (broken name strings)")
    if not isinstance(doc, dict):
        raise RawDataError(path, "top level is not a JSON object")
    if salvage is not None:
        line, col, msg = info["first"]
        warnings.append(
            f"{path}: damaged JSON from byte {salvage.offset} (line {line} column {col}: {msg}; "
            f"{salvage.places} damaged place(s)); salvaged {salvage.objects[0]} of "
            f"{salvage.objects[1]} objects and {salvage.polygons[0]} of {salvage.polygons[1]} "
            "polygons found")
    names: list[str | None] = []
    objects = doc.get("objects")
    for obj in objects if isinstance(objects, list) else []:
        name = obj.get("name") if isinstance(obj, dict) else None
        names.append(_clean_name(name) if isinstance(name, str) and name != "" else None)
    lost = set(info["objects_lost"]) if info else set()
    frames = doc.get("frames")
    frame = frames[0] if isinstance(frames, list) and frames and isinstance(frames[0], dict) else {}
    plist = frame.get("polygon")
    if not isinstance(plist, list) or not plist:
        what = ("frames is " + json.dumps(frames)[:20] if not isinstance(frames, list) or not frames
                else "frame 0 has no polygon list" if not isinstance(plist, list) else "frame 0 has no polygons")
        warnings.append(f"{path}: no polygons ({what})")
    polygons: list[Polygon] = []
    bad: dict[str, int] = {}
    for poly in plist if isinstance(plist, list) else []:
        if not isinstance(poly, dict):
            bad["not an object"] = bad.get("not an object", 0) + 1
            continue
        k = poly.get("object")
        if not isinstance(k, int) or isinstance(k, bool):
            bad["no object index"] = bad.get("no object index", 0) + 1
            continue
        # an object lost to damage: the polygon is kept and painted unlabelled, so it still
        # hides what lies under it instead of letting an earlier polygon's class show
        lost_object = info is not None and (k in lost or (
            len(names) <= k < 1 << 16 and not info["objects_complete"]))
        if not lost_object and not 0 <= k < len(names):
            bad["dangling object index"] = bad.get("dangling object index", 0) + 1
            continue
        if not lost_object and names[k] is None:
            bad["null or nameless object"] = bad.get("null or nameless object", 0) + 1
            continue
        try:
            x = np.asarray(poly.get("x"), dtype=np.float64).ravel()
            y = np.asarray(poly.get("y"), dtype=np.float64).ravel()
        except (TypeError, ValueError, OverflowError):
            bad["non-numeric coordinates"] = bad.get("non-numeric coordinates", 0) + 1
            continue
        if x.size != y.size:
            bad["x and y of different lengths"] = bad.get("x and y of different lengths", 0) + 1
            continue
        if x.size < 3:
            bad["fewer than 3 points"] = bad.get("fewer than 3 points", 0) + 1
            continue
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            bad["non-finite coordinates"] = bad.get("non-finite coordinates", 0) + 1
            continue
        if lost_object:
            bad["painted unlabelled, their object was lost to the damage"] = \
                bad.get("painted unlabelled, their object was lost to the damage", 0) + 1
        polygons.append(Polygon(x, y, k))
    if polygons:
        top = max(p.object for p in polygons)
        if top >= len(names):  # room for objects lost to damage (painted unlabelled)
            names.extend([None] * (top + 1 - len(names)))
    for what, n in sorted(bad.items()):
        if what.startswith("painted"):
            warnings.append(f"{path}: {n} polygon(s) {what}")
        else:
            warnings.append(f"{path}: {n} polygon(s) skipped: {what}")
    return Annotation(names, polygons, warnings, salvage)
