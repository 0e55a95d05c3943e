"""The name tables: every rule on real seglistall names, the round trip, user tables, CLI."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from conftest import realdata
from hypothesis import given, settings
from hypothesis import strategies as st

from sunrgbd_tools.cli.mapping import mapping
from sunrgbd_tools.labels.build import (
    build_names_csv,
    import_seglistall,
    load_build_inputs,
    raw_names_csv,
    read_raw_names,
)
from sunrgbd_tools.labels.report import coverage_report, report_groups
from sunrgbd_tools.labels.table import ClassTable, NameMapper, mappings_dir

SEGLISTALL = ("crmauceri-SUNRGBD_COCO", "seglistall.csv")


@pytest.fixture(scope="module")
def mapper() -> NameMapper:
    return NameMapper.load()


def _names_rows():
    with open(mappings_dir() / "names.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- tables are current
def test_committed_names_csv_is_a_rebuild_byte_for_byte():
    assert build_names_csv() == (mappings_dir() / "names.csv").read_text(encoding="utf-8")


def test_raw_names_are_the_seglistall_import():
    imported = import_seglistall(realdata(*SEGLISTALL))
    assert raw_names_csv(imported) == (mappings_dir() / "raw_names.csv").read_text(encoding="utf-8")
    assert sum(1 for n in imported if n.seglistall_index) == 6585


def test_every_seglistall_name_has_a_row(mapper):
    with open(realdata(*SEGLISTALL), encoding="utf-8-sig", newline="") as f:
        names = {r["original_labels"] for r in csv.DictReader(f)}
    assert len(names) > 7000
    assert names <= set(mapper.rows)


def test_exact_baseline_is_crmauceris_mapping(mapper):
    """crmauceri's seg37 column maps exactly the 37 class names and nothing else."""
    seg37 = {mapper.table.by_id[i].name for i in mapper.table.seg37_ids}
    with open(realdata(*SEGLISTALL), encoding="utf-8-sig", newline="") as f:
        mapped = {r["original_labels"] for r in csv.DictReader(f) if int(r["seg37list index"]) > 0}
    assert mapped == seg37


def test_non_exact_rows_are_justified_by_the_rule_tables(mapper):
    """No hand edits in names.csv: every row's class is what the chain gives its raw name."""
    _table, rules, _raw = load_build_inputs()  # the rule tables with manual.csv
    rows = {r["raw_name"]: r for r in _names_rows()}
    for r in rows.values():
        res = rules.resolve(r["raw_name"])
        if res is None and r["rule"] == "normalised":  # a row with the same squashed key
            other = rows[r["via"].removeprefix("same key as ")]
            assert other["key"].replace("_", "") == r["key"].replace("_", ""), r["raw_name"]
            assert other["class"] == r["class"] and other["rule"] != "default", r["raw_name"]
            continue
        expected = (res.class_name, res.rule) if res else ("other", "default")
        assert (r["class"], r["rule"]) == expected, r["raw_name"]


# ---------------------------------------------------------------- every rule, real names
@pytest.mark.parametrize(
    "name, cls, rule",
    [
        ("chair", "chair", "exact"),
        ("night_stand", "night_stand", "exact"),
        ("computer", "computer", "exact"),
        ("night stand", "night_stand", "normalised"),
        ("floor mat", "floor_mat", "normalised"),
        ("shower curtain", "shower_curtain", "normalised"),
        ("book", "books", "normalised"),  # plural folding meets `books`
        ("blind", "blinds", "normalised"),
        ("box of paper", "box", "normalised"),  # head noun before the preposition
        ("wal;l", "wall", "normalised"),
        ("painting_(bottom)", "picture", "synonym"),
        ("bookcase", "bookshelf", "synonym"),
        ("shelf", "shelves", "synonym"),
        ("television", "tv", "synonym"),
        ("mini_refrigerator", "fridge", "synonym"),
        ("monitor", "computer", "synonym"),
        ("laptop", "computer", "synonym"),
        ("cpu", "computer", "synonym"),
        ("keyboard", "computer", "synonym"),
        ("mouse pad", "computer", "synonym"),
        ("desktop", "computer", "synonym"),
        ("poster", "picture", "synonym"),
        ("cupboard", "cabinet", "synonym"),
        ("rug", "floor_mat", "synonym"),
        ("coffee table", "table", "synonym"),  # *_table head pattern
        ("sofa_chair", "chair", "synonym"),  # *_chair head pattern
        ("black_book_shelf", "bookshelf", "synonym"),  # *_bookshelf, squashed
        ("rolling_white_board", "whiteboard", "synonym"),
        ("placemat", "other", "synonym"),
        ("stack_of_magazines", "books", "synonym"),  # partitive: what the stack holds
        ("refridgerator", "fridge", "spelling"),
        ("computor", "computer", "spelling"),
        ("moniters", "computer", "spelling"),
        ("lcd_moniters", "computer", "spelling"),
        ("atble", "table", "spelling"),
        ("boks", "books", "spelling"),
        ("wood_self", "shelves", "spelling"),
        ("kitchen_zink", "sink", "spelling"),
        ("bottle", "other", "default"),
        ("garbage_bin", "other", "default"),
        ("/Users/shuran/Documents/SUNRGBD/SUNRGBDtoolbox", "other", "manual"),
    ],
)
def test_rules_on_real_names(mapper, name, cls, rule):
    hit = mapper.lookup(name)
    assert name in mapper.rows  # all of these are real seglistall names
    assert (hit.class_name, hit.rule) == (cls, rule)
    assert hit.class_id == mapper.table.id_of(cls)
    assert mapper.is_unmapped(hit) == (rule == "default")


@pytest.mark.parametrize(
    "name, cls, rule",
    [
        ("Chair 7", "chair", "normalised"),  # a new spelling of a names.csv row
        ("Computor 2", "computer", "normalised"),  # row `computor` found via its key
        ("bookss", "books", "spelling"),
        ("pillows", "pillow", "normalised"),
        ("nightstand", "night_stand", "normalised"),  # squashed key meets night_stand
        ("white board", "whiteboard", "normalised"),
        ("book shelf", "bookshelf", "normalised"),
        ("refrigerator", "fridge", "synonym"),
        ("kitchen cabinet", "cabinet", "synonym"),
        ("piano keyboard", "other", "synonym"),  # an exception beats the *_keyboard head
        ("telivision_set", "tv", "spelling"),  # telivision → television; a `set` is a partitive
        ("huge_wooden_bookcase", "bookshelf", "synonym"),
        ("", "other", "default"),
    ],
)
def test_names_outside_the_table_go_through_the_same_chain(mapper, name, cls, rule):
    assert name not in mapper.rows
    hit = mapper.lookup(name)
    assert (hit.class_name, hit.rule) == (cls, rule)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_lookup_is_total(s):
    m = _MAPPER
    hit = m.lookup(s)
    assert m.table.valid_ids[hit.class_id] and hit.class_id != 0
    assert m.lookup(s) is hit  # cached


_MAPPER = NameMapper.load()


def test_coverage_beats_the_exact_baseline(mapper):
    rep = coverage_report(mapper, read_raw_names())
    assert rep["names"] == 6585
    ours, base = rep["ours"], rep["exact_baseline"]
    assert base["names"]["seg37"] == len(mapper.table.seg37_ids) and base["weight"]["computer"] == 0
    assert ours["weight"]["seg37"] > base["weight"]["seg37"]
    assert ours["weight"]["computer"] > 0
    assert ours["weight"]["other"] < base["weight"]["other"]
    # the exact names keep their class: no class lost occurrences
    for c, n in base["weight_per_class"].items():
        if c != "other":
            assert ours["weight_per_class"][c] >= n, c


# ---------------------------------------------------------------- user tables, checksums
def test_files_and_sha256(mapper):
    assert set(mapper.files) >= {"classes.csv", "names.csv", "synonyms.csv", "spelling.csv", "phrases.csv"}
    assert all(len(h) == 64 for h in mapper.files.values())
    assert NameMapper.load().sha256 == mapper.sha256


def test_overlay_file_from_suggest_is_laid_over_the_shipped_table(tmp_path, mapper):
    user = tmp_path / "mine.csv"
    user.write_text("raw_name,class,suggested_class\nbottle,box,\ngarbage_bin,,other\nxhair,chair,chair\n",
                    encoding="utf-8")
    m = NameMapper.load(user)
    assert (m.lookup("bottle").class_name, m.lookup("bottle").rule) == ("box", "manual")
    assert m.lookup("garbage_bin").rule == "default"  # empty class: not accepted, skipped
    assert m.lookup("Chaiir 2").class_name == "chair"  # normalised against the user's row
    assert m.lookup("chair").rule == "exact"
    assert "mine.csv" in m.files and m.sha256 != mapper.sha256


@pytest.mark.parametrize(
    "text, problem",
    [
        ("raw_name,class\nbottle,chiar\n", "line 2: unknown class 'chiar'"),
        ("raw_name,class,rule\nbottle,box,guess\n", "unknown rule 'guess'"),
        ("name,target\nbottle,box\n", "needs columns raw_name, class"),
        ("raw_name,class\nbottle,box\nbottle,bag\n", "listed twice"),
        ("raw_name,class\nbottle,unlabeled\n", "unknown class 'unlabeled'"),
        # hand-edited slips the csv module used to turn silently into other rows
        ("raw_name,class\ntable,chair,chair\n", "line 2: 3 cells but the header has 2"),
        ("raw_name,class\nbottle,box\n\"garbage_bin,box\ncup,box\n", "line 3: a quote opened on this line is "
         "not closed (the cell runs on to line 4)"),
        ("raw_name,class\r\n\r\n,box\r\n", "line 3: empty raw_name for class 'box'"),
        # blank lines before the open quote: it said "line 3"
        ("raw_name,class\nbottle,box\n\n\n\"garbage_bin,box\ncup,box\n", "line 5: a quote opened on this "
         "line is not closed (the cell runs on to line 6)"),
        ("raw_name,class\nbottle,box\n\r\n\"cup,box\n", "line 4: a quote opened on this line is not closed"),
        ("raw_name;class\r\nbottle;box\r\n", "separated by ';', not ','"),
    ],
)
def test_bad_user_tables_name_the_file_and_problem(tmp_path, text, problem):
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv") as e:
        NameMapper.load(p)
    assert problem in str(e.value)


def test_hand_edited_overlay_bom_crlf_blank_lines_and_spaces(tmp_path):
    """What a spreadsheet or a hand edit leaves in a --mapping CSV is read as meant."""
    p = tmp_path / "mine.csv"
    p.write_bytes("\ufeffraw_name , class\r\n\r\nbottle ,box \r\n,\r\n".encode())
    m = NameMapper.load(p)
    assert (m.lookup("bottle").class_name, m.lookup("bottle ").class_name) == ("box", "box")


def test_overlay_row_decides_the_shipped_spellings_of_its_key(tmp_path, mapper):
    """`Bottle,box` (a name as real index.json files write it) maps `bottle` and `bottles`
    too, which names.csv lists as rows of their own (they stayed other)."""
    assert {mapper.lookup(n).rule for n in ("bottle", "bottles")} == {"default"}
    p = tmp_path / "mine.csv"
    p.write_text("raw_name,class\nBottle,box\nCushions,sofa\nChair,table\n", encoding="utf-8")
    m = NameMapper.load(p)
    for name in ("Bottle", "bottle", "bottles"):
        assert (m.lookup(name).class_name, m.lookup(name).rule) == ("box", "manual"), name
    assert m.lookup("BOTTLE2").class_name == "box"  # no row: the normalised key, as before
    assert m.lookup("bottle").via == "mine.csv: Bottle"
    assert m.lookup("cushion").class_name == "sofa"  # a synonym row of names.csv
    assert m.lookup("chair").class_name == "chair"  # a class name keeps its class
    assert m.lookup("Chair").class_name == "table"


def test_mapping_folder_with_its_own_rules_and_manual_rows(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    for f in ("raw_names.csv", "synonyms.csv", "spelling.csv"):
        shutil.copy(mappings_dir() / f, folder / f)
    with open(folder / "synonyms.csv", "a", encoding="utf-8") as f:
        f.write("garbage_bin,box,bins are boxes here\n")
    (folder / "manual.csv").write_text("raw_name,class,note\nlight,lamp,ceiling lights are lamps\n",
                                       encoding="utf-8")
    with pytest.raises(ValueError, match="no names.csv"):
        NameMapper.load(folder)
    runner = CliRunner()
    r = runner.invoke(mapping, ["build", "--tables", str(folder)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(mapping, ["build", "--tables", str(folder), "--check"]).exit_code == 0
    m = NameMapper.load(folder)
    assert (m.lookup("garbage bin").class_name, m.lookup("garbage_bin").rule) == ("box", "synonym")
    assert (m.lookup("light").class_name, m.lookup("light").rule) == ("lamp", "manual")
    assert m.lookup("Light 2").class_name == "lamp"  # normalised against the manual row
    assert m.lookup("lights").class_name == "other"  # its own names.csv row wins
    assert m.files["synonyms.csv"] != NameMapper.load().files["synonyms.csv"]
    # an edited rule table makes the committed names.csv stale, and --check says so
    with open(folder / "synonyms.csv", "a", encoding="utf-8") as f:
        f.write("bottle,box,\n")
    r = runner.invoke(mapping, ["build", "--tables", str(folder), "--check"])
    assert r.exit_code == 1 and "out of date" in r.output


def test_bad_rule_tables_are_rejected(tmp_path):
    from sunrgbd_tools.labels.rules import RuleTables

    names = tuple(c.name for c in ClassTable.load().classes if c.id)
    (tmp_path / "synonyms.csv").write_text("name,class\nsofa_bed,bedd\n", encoding="utf-8")
    with pytest.raises(ValueError, match="synonyms.csv line 2: unknown class 'bedd'"):
        RuleTables.load(tmp_path, names)
    (tmp_path / "synonyms.csv").write_text("name,class\ncouch,sofa\ncouches,chair\n", encoding="utf-8")
    with pytest.raises(ValueError, match="already maps to 'sofa'"):
        RuleTables.load(tmp_path, names)
    (tmp_path / "synonyms.csv").unlink()
    (tmp_path / "spelling.csv").write_text("wrong,right\nChair,chairs\n", encoding="utf-8")
    with pytest.raises(ValueError, match="same after normalising"):
        RuleTables.load(tmp_path, names)


def test_attached_preposition_is_a_phrases_csv_role(tmp_path):
    """A part before an `attached` preposition takes the whole after it; which prepositions
    attach is the table's word (phrases.csv), not the code's."""
    from sunrgbd_tools.labels.rules import RuleTables

    names = tuple(c.name for c in ClassTable.load().classes if c.id)
    shipped = (mappings_dir() / "phrases.csv").read_text(encoding="utf-8")
    assert "\non,attached," in shipped
    phrases = tmp_path / "phrases.csv"
    for role, cls in (("attached", "desk"), ("preposition", None)):
        phrases.write_text(f"word,role\non,{role}\nwheel,partitive\n", encoding="utf-8")
        hit = RuleTables.load(tmp_path, names).resolve_key("locking_wheel_on_desk")
        assert (hit.class_name if hit else None) == cls, role
    # `under` made to attach: the leg under the table is the table's
    phrases.write_text("word,role\nunder,attached\nleg,partitive\n", encoding="utf-8")
    hit = RuleTables.load(tmp_path, names).resolve_key("chair_leg_under_table")
    assert hit is not None and (hit.class_name, hit.via) == ("table", "part of table")


# ---------------------------------------------------------------- CLI
def test_cli_lookup_json():
    r = CliRunner().invoke(mapping, ["lookup", "computor", "night stand", "bottle", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [(o["name"], o["class"], o["class_id"], o["rule"]) for o in out] == [
        ("computor", "computer", _MAPPER.table.id_of("computer"), "spelling"),
        ("night stand", "night_stand", _MAPPER.table.id_of("night_stand"), "normalised"),
        ("bottle", "other", _MAPPER.other_id, "default"),
    ]


def test_cli_json_keys_are_the_documented_ones():
    """docs/mapping.md lists the --json keys in order; scripts read them."""
    runner = CliRunner()
    out = json.loads(runner.invoke(mapping, ["lookup", "chair2", "--json"]).output)
    assert list(out[0]) == ["name", "class", "class_id", "rule", "via", "key"]
    out = json.loads(runner.invoke(mapping, ["show", "--json"]).output)
    assert list(out) == ["classes", "mapping_sha256", "mapping_files"]
    assert list(out["classes"][0]) == ["id", "train_id", "name", "color", "ignore_in_eval"]
    out = json.loads(runner.invoke(mapping, ["report", "--json"]).output)
    assert list(out) == ["seglistall"]
    assert list(out["seglistall"]) == ["names", "weight", "exact_baseline", "ours", "rules"]
    assert list(out["seglistall"]["ours"]) == ["names", "weight", "weight_per_class"]
    assert list(out["seglistall"]["ours"]["names"]) == list(report_groups(_MAPPER.table))


def test_cli_show_and_report():
    runner = CliRunner()
    r = runner.invoke(mapping, ["show"])
    assert r.exit_code == 0 and "shower_curtain" in r.output and "mapping sha256" in r.output
    r = runner.invoke(mapping, ["show", "--json"])
    shown = json.loads(r.output)["classes"]
    # the table as classes.csv holds it (read here with csv, not with the code under test)
    with open(mappings_dir() / "classes.csv", newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda row: int(row["id"]))
    assert [(c["id"], c["train_id"], c["name"], c["color"], c["ignore_in_eval"]) for c in shown] == [
        (int(row["id"]), int(row["train_id"]), row["name"], [int(row["color"][i:i + 2], 16) for i in (1, 3, 5)],
         row["ignore_in_eval"] == "1") for row in rows]
    assert next(c for c in shown if c["id"] == ClassTable.load().id_of("computer"))["name"] == "computer"
    r = runner.invoke(mapping, ["report", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["seglistall"]["names"] == 6585
    r = runner.invoke(mapping, ["lookup", "x", "--mapping", "/nonexistent/file.csv"])
    assert r.exit_code == 2


def test_cli_import_seglistall_csv_and_mat(tmp_path):
    runner = CliRunner()
    src = tmp_path / "seglistall.csv"
    src.write_text("\ufeffclean_label,original_labels,seglistall index,seg37list index,seg37list label,"
                   "images,number of images\r\nwall,wall,2,1,wall,[1 2],2\r\nbook,book,1,0,,[3],1\r\n"
                   "page,page,-1,-1,,,\r\npage,page,-1,-1,,,\r\n", encoding="utf-8")
    out = tmp_path / "raw.csv"
    r = runner.invoke(mapping, ["import-seglistall", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == "raw_name,seglistall_index,images\nbook,1,1\npage,,\nwall,2,2\n"
    cell = np.empty((1, 3), dtype=object)
    cell[0, :] = ["wall", "chair", "wall"]
    scipy.io.savemat(tmp_path / "seglistall.mat", {"seglistall": cell})
    r = runner.invoke(mapping, ["import-seglistall", str(tmp_path / "seglistall.mat"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == "raw_name,seglistall_index,images\nchair,2,\nwall,1,\n"
    (tmp_path / "bad.mat").write_bytes(b"not matlab")
    r = runner.invoke(mapping, ["import-seglistall", str(tmp_path / "bad.mat"), "--out", str(out)])
    assert r.exit_code == 2 and "bad.mat" in r.output


def test_synthetic_generator_names_are_covered(mapper):
    synthetic = pytest.importorskip("sunrgbd_tools.synthetic.vocab")
    names = getattr(synthetic, "OBJECT_NAMES", None)
    if names is None:
        pytest.skip("sunrgbd_tools.synthetic.vocab has no OBJECT_NAMES yet")
    missing = [n for n in names if n not in mapper.rows]
    assert not missing, f"synthetic names missing from names.csv: {missing}"
    # the names written only into its broken index.json files go through the normaliser
    if "wall\\" in getattr(synthetic, "QUIRK_NAMES", ()):
        assert mapper.lookup("wall\\").class_name == "wall"


# ---------------------------------------------------------------- report groups from the class table
class _TinyMapper:
    """A mapper over a small class table and a fixed name → class map (the report reads only
    `table` and `lookup`)."""

    OTHER = NameMapper.OTHER

    def __init__(self, table: ClassTable, names: dict[str, str]):
        self.table, self.names = table, names

    def lookup(self, name: str):
        from types import SimpleNamespace

        return SimpleNamespace(class_name=self.names.get(name, self.OTHER), rule="test")


def _tiny_table(extra: str | None) -> ClassTable:
    rows = ["id,train_id,name,color,ignore_in_eval,group", "0,255,unlabeled,#000000,1,void",
            "1,0,wall,#800000,0,seg37", "38,1,other,#0080c0,0,other"]
    if extra:
        rows.append(f"39,2,{extra},#8080c0,0,computer")
    return ClassTable.from_csv_text("\n".join(rows) + "\n", "tiny.csv")


def test_report_groups_and_extra_class_come_from_the_class_table(tmp_path):
    """The report's groups (its columns, in order) and the ScanNet "extra class" outcome come
    from classes.csv's `group` column, not from a class name written in the code: the computer
    class renamed `pc` is still our extra class."""
    from sunrgbd_tools.labels.report import (
        WeightedName,
        coverage,
        coverage_markdown,
        crosscheck,
        read_scannet,
        report_groups,
    )

    tsv = tmp_path / "scannet.tsv"
    tsv.write_text("raw_category\tcount\tnyu40id\tnyu40class\nwall\t5\t1\twall\nmonitor\t3\t40\totherprop\n"
                   "lamp\t2\t40\totherprop\n", encoding="utf-8")
    names = [WeightedName("wall", 4), WeightedName("monitor", 2), WeightedName("lamp", 1)]
    m = _TinyMapper(_tiny_table("pc"), {"wall": "wall", "monitor": "pc"})
    assert report_groups(m.table) == report_groups(NameMapper.load().table) == ("seg37", "computer", "other")
    assert crosscheck(read_scannet(tsv, m))["kinds"] == {
        "agree": {"names": 2, "instances": 7}, "computer": {"names": 1, "instances": 3}}
    rep = coverage(m, names)
    assert rep["ours"]["weight"] == {"seg37": 4, "computer": 2, "other": 1}
    m = _TinyMapper(_tiny_table(None), {"wall": "wall"})  # a table without an extra class
    assert report_groups(m.table) == ("seg37", "other")
    assert crosscheck(read_scannet(tsv, m))["kinds"] == {"agree": {"names": 3, "instances": 10}}
    lines = coverage_markdown(coverage(m, names), ["wall", "other"], "tiny", "images")
    assert lines[2] == "| mapping | names → seg37 | names → other | images → seg37 | images → other |"
    assert lines[3] == "|---|---|---|---|---|"
    assert lines[5] == "| ours | 1 (33.3%) | 2 (66.7%) | 4 (57.1%) | 3 (42.9%) |"
