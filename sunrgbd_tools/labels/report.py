"""What the mapping achieves, measured three ways (`sunrgbd mapping report`).

1. Over seglistall's 6,585 cleaned names (shipped in raw_names.csv), weighted by images.
2. Over the names as they are really written in the annotation JSON of the real scenes
   (a names list, optionally weighted by how many scenes use each name): the crowd typed
   `officechair` and `celing`, which seglistall's cleaned list mostly does not contain.
3. Against an outside expert mapping: ScanNet's raw-name → NYU40 table. seg37 is NYU40's
   first 37 classes in the same order, so NYU40 id k ≤ 37 is our class id k, and NYU40's
   three "other" classes (ids 38-40) are our Other. Every disagreement is listed, weighted
   by ScanNet's instance count, so the decisions that matter can be argued in docs/mapping.md.

Each side is compared with the exact-name baseline: a name maps only when it *is* a seg37
class name (what the official toolbox and crmauceri's seglistall.csv do).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from sunrgbd_tools.labels.build import RawName
from sunrgbd_tools.labels.table import GROUPS, ClassTable, NameMapper

NYU40_OTHER = (38, 39, 40)  # NYU40's otherstructure/otherfurniture/otherprop; ids 1..37 are seg37's


@dataclass(frozen=True)
class WeightedName:
    name: str
    weight: int  # images or scenes that use the name (1 when unknown)


def report_groups(table: ClassTable) -> tuple[str, ...]:
    """The classes.csv groups a raw name can map to (those of the evaluated classes), in
    table.GROUPS order but with Other's group, the catch-all, last: seg37, computer, other."""
    present = {c.group for c in table.classes if not c.ignore_in_eval}
    catch_all = table.by_name[NameMapper.OTHER].group
    return tuple(g for g in GROUPS if g in present and g != catch_all) + (catch_all,)


def _extra_groups(table: ClassTable) -> frozenset[str]:
    """The groups NYU40 has no class for (our extra classes: computer): NYU40's first 37
    classes are seg37 and its "other*" ones our Other."""
    return frozenset(report_groups(table)) - {"seg37", table.by_name[NameMapper.OTHER].group}


def _seg37(mapper: NameMapper) -> set[str]:
    return {mapper.table.by_id[i].name for i in mapper.table.seg37_ids}


def coverage(mapper: NameMapper, names: list[WeightedName]) -> dict:
    """Names and weighted occurrences per group and per class, exact baseline vs ours,
    and the rules that produced our classes (names and weight)."""
    seg37 = _seg37(mapper)
    groups = report_groups(mapper.table)
    res: dict = {"names": len(names), "weight": sum(n.weight for n in names)}
    for label, fn in (("exact_baseline", lambda n: n if n in seg37 else NameMapper.OTHER),
                      ("ours", lambda n: mapper.lookup(n).class_name)):
        by_names = dict.fromkeys(groups, 0)
        by_weight = dict.fromkeys(groups, 0)
        per_class: dict[str, int] = {}
        for n in names:
            cls_name = fn(n.name)
            g = mapper.table.by_name[cls_name].group
            by_names[g] += 1
            by_weight[g] += n.weight
            per_class[cls_name] = per_class.get(cls_name, 0) + n.weight
        res[label] = {"names": by_names, "weight": by_weight, "weight_per_class": per_class}
    rules: dict[str, list[int]] = {}
    for n in names:
        r = rules.setdefault(mapper.lookup(n.name).rule, [0, 0])
        r[0] += 1
        r[1] += n.weight
    res["rules"] = {k: {"names": v[0], "weight": v[1]} for k, v in sorted(rules.items())}
    return res


def coverage_report(mapper: NameMapper, raw: list[RawName]) -> dict:
    """Coverage of seglistall's names (those with a seglistall index), weighted by images."""
    names = [WeightedName(r.name, r.images or 0) for r in raw if r.seglistall_index is not None]
    return coverage(mapper, names)


# ------------------------------------------------------------------------------ real names
def _read_text(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 (byte {e.start})") from None


def read_real_names(path: str | Path) -> list[str]:
    """Distinct object names from a JSON list, or the keys of a JSON object (the form of
    Yannick947's class_map_detected_full.json: every name in the real index.json files)."""
    p = Path(path)
    try:
        doc = json.loads(_read_text(p))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not JSON ({e.msg}, line {e.lineno})") from None
    names = list(doc) if isinstance(doc, (dict, list)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{p}: need a JSON list of names or an object keyed by name")
    return sorted(set(names))


def read_frequencies(path: str | Path) -> list[WeightedName]:
    """A CSV with a `class` (or `name`) column and a `scene_frequency` (or `count`) column:
    in how many real scenes each name occurs (ryanlearnscs50's class_frequencies.csv)."""
    p = Path(path)
    reader = csv.DictReader(io.StringIO(_read_text(p), newline=""))
    fields = reader.fieldnames or []
    name_col = next((c for c in ("class", "name") if c in fields), None)
    weight_col = next((c for c in ("scene_frequency", "count") if c in fields), None)
    if name_col is None or weight_col is None:
        raise ValueError(f"{p}: needs a name column (class or name) and a count column "
                         "(scene_frequency or count)")
    out: dict[str, int] = {}
    for r in reader:
        try:
            w = int(r[weight_col])
        except (TypeError, ValueError):
            raise ValueError(f"{p} line {reader.line_num}: {weight_col} {r[weight_col]!r} "
                             "is not a whole number") from None
        if w < 0:
            raise ValueError(f"{p} line {reader.line_num}: negative {weight_col}")
        out[r[name_col]] = out.get(r[name_col], 0) + w
    if not out:
        raise ValueError(f"{p}: no rows")
    return [WeightedName(n, w) for n, w in sorted(out.items())]


# ------------------------------------------------------------------------------ ScanNet
@dataclass(frozen=True)
class CrossCheckRow:
    name: str  # ScanNet's raw_category
    count: int  # ScanNet instances with that name
    ours: str
    rule: str
    theirs: str  # NYU40 class as our class name (other* → other)
    nyu40: str  # NYU40 class name as written in the table
    extra: str = ""  # the group of `ours` when NYU40 has no class for it (`_extra_groups`), else ""

    @property
    def kind(self) -> str:
        if self.ours == self.theirs:
            return "agree"
        if self.extra and self.theirs == NameMapper.OTHER:
            return self.extra  # our extra class (computer); NYU40 has none (monitor → otherprop)
        if self.ours == NameMapper.OTHER:
            return "ours_other"
        if self.theirs == NameMapper.OTHER:
            return "theirs_other"
        return "different_class"


def read_scannet(path: str | Path, mapper: NameMapper) -> list[CrossCheckRow]:
    """ScanNet's scannetv2-labels.combined.tsv: raw_category, count, nyu40id, nyu40class."""
    p = Path(path)
    reader = csv.DictReader(io.StringIO(_read_text(p), newline=""), delimiter="\t")
    need = ("raw_category", "count", "nyu40id", "nyu40class")
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{p}: needs tab-separated columns {', '.join(need)} (missing {', '.join(missing)})")
    by_id, by_name = mapper.table.by_id, mapper.table.by_name
    seg37 = mapper.table.seg37_ids  # NYU40's first 37 classes are seg37, same ids and order
    extras = _extra_groups(mapper.table)
    rows = []
    for r in reader:
        where = f"{p} line {reader.line_num}"
        try:
            nyu40id, count = int(r["nyu40id"]), int(r["count"] or 0)
        except ValueError:
            raise ValueError(f"{where}: nyu40id/count must be whole numbers") from None
        if nyu40id not in seg37 and nyu40id not in NYU40_OTHER:
            continue  # 0: ScanNet left the name unmapped
        theirs = by_id[nyu40id].name if nyu40id in seg37 else NameMapper.OTHER
        hit = mapper.lookup(r["raw_category"])
        rows.append(CrossCheckRow(r["raw_category"], count, hit.class_name, hit.rule, theirs, r["nyu40class"],
                                  g if (g := by_name[hit.class_name].group) in extras else ""))
    if not rows:
        raise ValueError(f"{p}: no rows with an NYU40 class")
    return sorted(rows, key=lambda x: (-x.count, x.name))


def crosscheck(rows: list[CrossCheckRow]) -> dict:
    """Agreement with ScanNet by names and by instances, and every disagreement."""
    kinds: dict[str, dict[str, int]] = {}
    for r in rows:
        k = kinds.setdefault(r.kind, {"names": 0, "instances": 0})
        k["names"] += 1
        k["instances"] += r.count
    return {
        "names": len(rows), "instances": sum(r.count for r in rows),
        "kinds": dict(sorted(kinds.items())),
        "disagreements": [{"name": r.name, "count": r.count, "ours": r.ours, "rule": r.rule,
                           "theirs": r.theirs, "nyu40class": r.nyu40, "kind": r.kind}
                          for r in rows if r.kind != "agree"],
    }


# ------------------------------------------------------------------------------ Markdown
def _pct(a: int, b: int) -> str:
    return f"{a} ({100 * a / b:.1f}%)" if b else str(a)


def coverage_markdown(rep: dict, table_order: list[str], what: str, weight: str) -> list[str]:
    n, w = rep["names"], rep["weight"]
    groups = list(rep["ours"]["names"])  # report_groups, in order
    heads = [f"names → {g}" for g in groups] + [f"{weight} → {g}" for g in groups]
    lines = [f"{what}: {n} names; {weight}: {w}.", "", "| mapping | " + " | ".join(heads) + " |",
             "|---" * (len(heads) + 1) + "|"]
    for label in ("exact_baseline", "ours"):
        s = rep[label]
        cells = [_pct(s["names"][g], n) for g in groups] + [_pct(s["weight"][g], w) for g in groups]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"{weight.capitalize()} per class (exact baseline → ours):", "",
              "| class | exact | ours | ratio |", "|---|---|---|---|"]
    for c in table_order:
        a = rep["exact_baseline"]["weight_per_class"].get(c, 0)
        b = rep["ours"]["weight_per_class"].get(c, 0)
        lines.append(f"| {c} | {a} | {b} | {f'{b / a:.2f}×' if a else 'new'} |")
    lines += ["", "Rules (names / " + weight + "): "
              + ", ".join(f"{k} {v['names']} / {v['weight']}" for k, v in rep["rules"].items()) + ".", ""]
    return lines


def crosscheck_markdown(rep: dict, top: int = 40) -> list[str]:
    n, inst = rep["names"], rep["instances"]
    lines = [f"ScanNet cross-check: {n} ScanNet names with an NYU40 class, {inst} instances.", "",
             "| outcome | names | instances |", "|---|---|---|"]
    for k, v in rep["kinds"].items():
        lines.append(f"| {k} | {_pct(v['names'], n)} | {_pct(v['instances'], inst)} |")
    lines += ["", f"Largest disagreements (of {len(rep['disagreements'])}; `computer` rows are our extra "
              "class, by design):", "", "| ScanNet name | instances | ours (rule) | NYU40 | kind |",
              "|---|---|---|---|---|"]
    for d in rep["disagreements"][:top]:
        lines.append(f"| {d['name']} | {d['count']} | {d['ours']} ({d['rule']}) | {d['nyu40class']} | {d['kind']} |")
    return lines + [""]


def report_markdown(rep: dict, table_order: list[str]) -> str:
    lines = coverage_markdown(rep["seglistall"], table_order, "seglistall", "images")
    if "real_frequencies" in rep:
        lines += coverage_markdown(rep["real_frequencies"], table_order,
                                   "Real names (scene frequencies)", "scenes")
    if "real_names" in rep:
        r = rep["real_names"]
        groups = list(r["ours"]["names"])
        lines += [f"Real names as written: {r['names']} distinct; ours: "
                  + ", ".join(f"{g} {_pct(r['ours']['names'][g], r['names'])}" for g in groups)
                  + "; exact baseline: "
                  + ", ".join(f"{g} {_pct(r['exact_baseline']['names'][g], r['names'])}" for g in groups)
                  + ".", "Rules: " + ", ".join(f"{k} {v['names']}" for k, v in r["rules"].items()) + ".", ""]
    if "scannet" in rep:
        lines += crosscheck_markdown(rep["scannet"])
    return "\n".join(lines)
