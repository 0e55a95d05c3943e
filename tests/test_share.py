"""pack → fetch: deterministic archives, SHA256SUMS + DATASHEET.md, checksum checks, safe
extraction, verification; the round trip reproduces the clean tree exactly."""

from __future__ import annotations

import csv
import json
import random
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from httpfixtures import Entry, FaultServer, Nginx, nginx_binary, tree_bytes, write_zip64
from treebuilder import write_clean_tree

from cleantree.manifest import manifest_text, read_manifest
from cleantree.paths import FILE_KEYS
from sunrgbd_tools.acquire.share import (
    FetchConfig,
    PackConfig,
    ShareError,
    check_records,
    datasheet,
    fetch,
    pack_tree,
)
from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.verify import verify_tree
from sunrgbd_tools.remote.http import HttpConfig
from sunrgbd_tools.remote.rangezip import ZipFormatError

FAST = HttpConfig(timeout=2.0, retries=3, backoff=0.001, backoff_max=0.01)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    d = tmp_path_factory.mktemp("pack")
    tree = write_clean_tree(d / "clean", counts={"train": 3, "val": 1, "test": 2}).root
    meta = json.loads((tree / "dataset.json").read_text())
    meta.setdefault("created_with", {})["command"] = "sunrgbd convert --src raw --out clean --subset kv2"
    meta.update(mean=[0.4, 0.41, 0.42], std=[0.2, 0.21, 0.22], class_weights=[1.0] * 39)
    (tree / "dataset.json").write_text(json.dumps(meta))
    (tree / ".sunrgbd").mkdir(exist_ok=True)
    (tree / ".sunrgbd" / "state.json").write_text("{}")  # converter resume state: not shared
    arc = d / "out" / "sunrgbd-kv2.zip"
    rep = pack_tree(PackConfig(src=str(tree), out=str(arc), command="sunrgbd pack clean --out x.zip",
                               progress=False))
    return tree, arc, rep


def test_pack_is_deterministic_and_complete(packed, tmp_path: Path):
    tree, arc, rep = packed
    again = pack_tree(PackConfig(src=str(tree), out=str(tmp_path / "again.zip"),
                                 command="sunrgbd pack clean --out x.zip", progress=False))
    assert again.archive.read_bytes() == arc.read_bytes() and again.sha256 == rep.sha256
    side = arc.with_name(arc.name + ".sha256").read_text()
    assert side == f"{rep.sha256}  {arc.name}\n"
    with zipfile.ZipFile(arc) as zf:
        names = zf.namelist()
        assert names[0] == "DATASHEET.md" and names[-1] == "SHA256SUMS"
        assert not any(n.startswith(".") or "/." in n for n in names)
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
        methods = {i.filename.rsplit(".", 1)[-1]: i.compress_type for i in zf.infolist()}
        assert methods["png"] == zipfile.ZIP_STORED and methods["json"] == zipfile.ZIP_DEFLATED
        sums = dict(reversed(line.split("  ", 1)) for line in zf.read("SHA256SUMS").decode().splitlines())
        assert set(sums) == set(names) - {"SHA256SUMS"}
        sheet = zf.read("DATASHEET.md").decode()
    assert set(tree_bytes(tree)) == set(names) - {"SHA256SUMS", "DATASHEET.md"}
    for needle in ("## Classes", "| 1 | 0 | wall |", "Mapping checksum", "| train | 3 |",
                   "sunrgbd convert --src raw --out clean --subset kv2", "sunrgbd pack clean",
                   "mean: 0.4, 0.41, 0.42"):
        assert needle in sheet, needle
    assert not (tree / "DATASHEET.md").exists() and not (tree / "SHA256SUMS").exists()


def test_datasheet_degrades_for_old_trees():
    text = datasheet({"name": "old"}, 3, 100)
    assert "# old" in text and "_not recorded_" in text and "not computed" in text


def test_pack_out_inside_tree_and_bad_input(packed, tmp_path: Path):
    tree, _arc, _rep = packed
    t2 = tmp_path / "t2"
    shutil.copytree(tree, t2)
    before = set(tree_bytes(t2))
    r = pack_tree(PackConfig(src=str(t2), out=str(t2 / "self.zip"), progress=False))
    with zipfile.ZipFile(r.archive) as zf:
        assert "self.zip" not in zf.namelist() and "self.zip.sha256" not in zf.namelist()
    assert set(tree_bytes(t2)) == before | {"self.zip", "self.zip.sha256"}
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["pack", str(tmp_path / "empty"), "--out", str(tmp_path / "e.zip")])
    assert res.exit_code == 2 and "no dataset.json" in res.output
    assert not (tmp_path / "e.zip").exists()


def test_pack_replaces_only_its_own_archive(packed, tmp_path: Path):
    """`--out` naming a file the user has (the tree's own dataset.json, any other file) is refused
    with nothing changed; an earlier archive of pack's own (and its .sha256) is replaced."""
    tree, arc, rep = packed
    t2 = tmp_path / "t2"
    shutil.copytree(tree, t2)
    before = tree_bytes(t2)
    mine = tmp_path / "notes.zip"
    mine.write_bytes(b"my own file")
    for out in (t2 / "dataset.json", t2 / "manifest.csv", mine):
        res = CliRunner().invoke(main, ["pack", str(t2), "--out", str(out), "--no-progress"])
        assert res.exit_code == 2, res.output
        assert "exists and is not an archive `sunrgbd pack` wrote" in res.output
        assert not out.with_name(out.name + ".sha256").exists()
    assert tree_bytes(t2) == before and mine.read_bytes() == b"my own file"
    (tmp_path / "n.zip.sha256").write_text("my notes\n")
    res = CliRunner().invoke(main, ["pack", str(t2), "--out", str(tmp_path / "n.zip"), "--no-progress"])
    assert res.exit_code == 2 and "n.zip.sha256: exists and is not a checksum" in res.output
    assert not (tmp_path / "n.zip").exists() and (tmp_path / "n.zip.sha256").read_text() == "my notes\n"
    again = tmp_path / "again.zip"
    shutil.copy(arc, again)
    shutil.copy(arc.with_name(arc.name + ".sha256"), tmp_path / "again.zip.sha256")
    r = pack_tree(PackConfig(src=str(tree), out=str(again), command="sunrgbd pack clean --out x.zip",
                             progress=False))
    assert r.sha256 == rep.sha256 and again.read_bytes() == arc.read_bytes()


def test_fetch_bad_source_leaves_no_dest(tmp_path: Path):
    """An ftp:// URL was read as a local path ("ftp:/x/a.zip: no such archive", exit 1), and a
    missing archive left an empty --dest with .sunrgbd-fetch/ behind."""
    dest = tmp_path / "d"
    res = CliRunner().invoke(main, ["fetch", "ftp://host/a.zip", "--dest", str(dest)])
    assert res.exit_code == 2 and "'ftp://host/a.zip': only http:// and https:// URLs" in res.output
    with pytest.raises(ShareError, match="only http:// and https://"):  # the library says it too
        fetch(FetchConfig(source="ftp://host/a.zip", dest=str(dest), progress=False))
    assert not dest.exists()
    res = CliRunner().invoke(main, ["fetch", str(tmp_path / "none.zip"), "--dest", str(dest)])
    assert res.exit_code == 1 and res.output.strip() == f"Error: {tmp_path / 'none.zip'}: no such archive"
    assert not dest.exists()


def test_fetch_killed_in_verify_resumes(packed, tmp_path: Path, monkeypatch):
    """A kill during the final verify left the whole tree in --dest, and the re-run refused it
    as "not empty". It now verifies again; a finished fetch is still not redone (exit 2)."""
    import sunrgbd_tools.convert.verify as verify_mod

    tree, arc, rep = packed
    dest = tmp_path / "data"
    real = verify_mod.verify_tree

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_mod, "verify_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    monkeypatch.setattr(verify_mod, "verify_tree", real)
    before = tree_bytes(dest)
    shutil.copy(arc, tmp_path / "other.zip")
    res = CliRunner().invoke(main, ["fetch", str(tmp_path / "other.zip"), "--dest", str(dest)])
    assert res.exit_code == 2 and "not empty" in res.output  # another source: not resumed here
    res = CliRunner().invoke(main, ["fetch", str(arc), "--dest", str(dest), "--sha256", "0" * 64])
    assert res.exit_code == 2 and "not empty" in res.output  # another archive expected: not resumed
    assert tree_bytes(dest) == before
    monkeypatch.chdir(arc.parent)  # the same archive named relative to here
    res = CliRunner().invoke(main, ["fetch", arc.name, "--dest", str(dest), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert res.stdout == (f"{dest}: {rep.files} files, 6 samples OK (sha256 {rep.sha256}, "
                          f"checked against {arc}.sha256)\n")
    assert tree_bytes(dest) == before
    res = CliRunner().invoke(main, ["fetch", str(arc), "--dest", str(dest), "--no-progress"])
    assert res.exit_code == 2 and "not empty" in res.output


def test_pack_refuses_names_the_archive_cannot_carry(packed, tmp_path: Path):
    """A file whose name is not UTF-8 crashed pack with a traceback; a line break would break
    SHA256SUMS and a backslash is a folder separator on extraction. One line, exit 2, nothing written."""
    import os

    tree, _arc, _rep = packed
    folder = next((tree / "leftImg8bit" / "train").iterdir()).relative_to(tree).as_posix()
    first = next(r["image"] for r in csv.DictReader(open(tree / "manifest.csv", encoding="utf-8")))
    for raw, shown, why in ((b"notes-\xe9t\xe9", "notes-\\xe9t\\xe9", "is not UTF-8"),
                            (b"a\nb", "a\\nb", "holds a line break"),
                            (b"a\\b", "a\\b", "holds a backslash")):
        t2 = tmp_path / "t2"
        shutil.rmtree(t2, ignore_errors=True)
        shutil.copytree(tree, t2)
        name = os.path.join(os.fsencode(t2 / folder), raw + b"_leftImg8bit.png")
        with open(name, "wb") as f:
            f.write(b"x")
        out = tmp_path / "x.zip"
        if why == "is not UTF-8":  # no UTF-8 manifest can list it: outside the contract, left out
            res = CliRunner().invoke(main, ["pack", str(t2), "--out", str(tmp_path / "u.zip"), "--no-progress"])
            assert res.exit_code == 0 and (f"contract left out of the archive: {folder}/{shown}_leftImg8bit.png\n"
                                           in res.output), res.output
            continue
        # a sample file the manifest lists (a file no row lists is left out, name and all)
        rel = f"{folder}/{raw.decode()}_leftImg8bit.png"
        man = t2 / "manifest.csv"
        man.write_text(man.read_text(encoding="utf-8").replace(first, '"' + rel + '"', 1), encoding="utf-8")
        res = CliRunner().invoke(main, ["pack", str(t2), "--out", str(out), "--no-progress"])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.strip().splitlines()[-1] == (
            f"Error: {t2}/{folder}/{shown}_leftImg8bit.png: file name {why}; "
            "rename or remove it (nothing was written)")
        assert not out.exists() and not (tmp_path / "x.zip.sha256").exists()


def test_a_line_break_name_is_one_problem_line(packed, tmp_path: Path):
    """The pack-only name check once sat in the shared lister, so fetch's verify stopped with
    "rename or remove it (nothing was written)" after extracting; it is a problem, and verify
    prints it on one line (its records lines were printed raw: two lines)."""
    tree, _arc, _rep = packed
    dest = tmp_path / "got"
    fetch(FetchConfig(source=str(_arc), dest=str(dest), progress=False, workers=1))
    (dest / "a\nb.txt").write_bytes(b"x")
    assert check_records(dest, 1) == [(dest / "a\nb.txt", "not listed in SHA256SUMS")]
    assert verify_tree(dest, workers=1).problems == [f"{dest}/a\\nb.txt: not listed in SHA256SUMS"]


def test_a_row_problem_does_not_hide_that_the_manifest_changed(packed, tmp_path: Path):
    """A row problem is filed under manifest.csv; it used to hide the records' line saying
    manifest.csv itself differs from SHA256SUMS, the evidence that the tree was edited."""
    _tree, arc, _rep = packed
    dest = tmp_path / "got"
    fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    rows = read_manifest(dest)
    rows[0]["height"] = "tall"
    (dest / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    problems = verify_tree(dest, workers=1).problems
    assert f"{dest / 'manifest.csv'}: sample {rows[0]['id']}: bad height/width" in problems
    assert any(p.startswith(f"{dest / 'manifest.csv'}: sha256 ") and "in SHA256SUMS (changed since the fetch)" in p
               for p in problems), problems


def test_round_trip_local_and_cli(packed, tmp_path: Path):
    tree, arc, rep = packed
    dest = tmp_path / "data"
    fr = fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    assert fr.problems == [] and fr.samples == 6 and fr.checked.endswith(".sha256")
    got = tree_bytes(dest)
    assert {k: v for k, v in got.items() if k not in ("SHA256SUMS", "DATASHEET.md")} == tree_bytes(tree)
    assert check_records(dest, 1) == []
    assert not (dest / ".sunrgbd-fetch" / "tree").exists()
    # CLI, with an explicit --sha256
    res = CliRunner().invoke(main, ["fetch", str(arc), "--dest", str(tmp_path / "d2"),
                                    "--sha256", rep.sha256, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "6 samples OK" in res.output
    before = tree_bytes(tmp_path / "d2")
    res = CliRunner().invoke(main, ["fetch", str(arc), "--dest", str(tmp_path / "d2")])
    assert res.exit_code == 2 and "not empty" in res.output  # a usage error (issue 15)
    assert tree_bytes(tmp_path / "d2") == before


def test_round_trip_over_http_nginx(packed, tmp_path: Path):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (make system-deps installs it)")
    tree, arc, _rep = packed
    srv = Nginx(arc.parent)
    try:
        dest = tmp_path / "data"
        fr = fetch(FetchConfig(source=srv.url + arc.name, dest=str(dest), progress=False,
                               http=FAST, workers=1))
        assert fr.problems == [] and fr.checked == srv.url + arc.name + ".sha256"
        got = tree_bytes(dest)
        assert {k: v for k, v in got.items() if k not in ("SHA256SUMS", "DATASHEET.md")} == tree_bytes(tree)
        assert not (dest / ".sunrgbd-fetch" / arc.name).exists()  # downloaded copy removed
    finally:
        srv.close()


def test_http_fetch_resumes_after_drop(packed, tmp_path: Path):
    tree, arc, rep = packed
    srv = FaultServer({arc.name: arc.read_bytes()})  # no .sha256 served: --sha256 given
    srv.faults.drop, srv.faults.drop_after = 2, 20_000
    try:
        fr = fetch(FetchConfig(source=srv.url + arc.name, dest=str(tmp_path / "d"), sha256=rep.sha256,
                               progress=False, http=FAST, workers=1))
        assert fr.problems == [] and fr.checked == "--sha256"
        assert sum(x[3] for x in srv.log if x[0] == arc.name) < 1.2 * arc.stat().st_size
    finally:
        srv.close()


def test_any_corrupted_byte_is_caught(packed, tmp_path: Path):
    """With the .sha256 beside it, a flipped byte anywhere fails the archive checksum;
    without it, a flipped byte in any member's data fails CRC-32 or SHA256SUMS. A checksum
    that fails before extraction leaves no --dest at all (it left an empty .sunrgbd-fetch/);
    after it, nothing but fetch's own dot-folder is left in --dest."""
    _tree, arc, _rep = packed
    data = arc.read_bytes()
    rng = random.Random(0)
    positions = sorted({0, len(data) - 1, len(data) // 2} | {rng.randrange(len(data)) for _ in range(12)})
    for i, pos in enumerate(positions):
        bad = tmp_path / f"b{i}" / arc.name
        bad.parent.mkdir()
        b = bytearray(data)
        b[pos] ^= 0x01
        bad.write_bytes(bytes(b))
        shutil.copy(arc.with_name(arc.name + ".sha256"), bad.with_name(arc.name + ".sha256"))
        dest = tmp_path / f"d{i}"
        with pytest.raises(ShareError, match="does not match"):
            fetch(FetchConfig(source=str(bad), dest=str(dest), progress=False, workers=1))
        assert not dest.exists()
    # no sidecar: flip bytes inside member data (stored PNGs and deflated text)
    with zipfile.ZipFile(arc) as zf:
        infos = [i for i in zf.infolist() if i.compress_size > 50]
    for i, info in enumerate(rng.sample(infos, 8)):
        off = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        b = bytearray(data)
        b[off + rng.randrange(info.compress_size)] ^= 0x80
        bad = tmp_path / f"n{i}.zip"
        bad.write_bytes(bytes(b))
        dest = tmp_path / f"nd{i}"
        with pytest.raises((ShareError, ZipFormatError)):
            fetch(FetchConfig(source=str(bad), dest=str(dest), progress=False, workers=1))
        assert [p.name for p in dest.iterdir()] == [".sunrgbd-fetch"]


def test_fetch_refuses_hostile_archive(tmp_path: Path):
    arc = write_zip64(tmp_path / "evil.zip", [Entry("dataset.json", b"{}"),
                                              Entry("../../escaped.txt", b"pwned")])
    outer = tmp_path / "outer"
    dest = outer / "data"
    res = CliRunner().invoke(main, ["fetch", str(arc), "--dest", str(dest), "--no-progress"])
    assert res.exit_code == 1 and "'..'" in res.output
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in dest.iterdir()] == [".sunrgbd-fetch"]


def test_fetch_catches_tampered_sums(packed, tmp_path: Path):
    """A file changed and re-zipped (valid CRC) is still caught by SHA256SUMS."""
    _tree, arc, _rep = packed
    src = tmp_path / "x"
    with zipfile.ZipFile(arc) as zf:
        zf.extractall(src)
    (src / "manifest.csv").write_text((src / "manifest.csv").read_text() + "\n")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    with pytest.raises(ShareError, match="manifest.csv: sha256"):
        fetch(FetchConfig(source=str(bad), dest=str(tmp_path / "d"), progress=False, workers=1))


def _resum(root: Path, name: str) -> None:
    """Rewrite SHA256SUMS's line for `name` to the file's current sha256 (a tamperer's fix)."""
    import hashlib

    lines = (root / "SHA256SUMS").read_text().splitlines()
    new = hashlib.sha256((root / name).read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text("".join(
        (f"{new}  {name}" if ln.endswith(f"  {name}") else ln) + "\n" for ln in lines))


def test_fetch_catches_dataset_json_changed_with_its_sums_line(packed, tmp_path: Path):
    """SHA256SUMS edited to match a changed dataset.json: DATASHEET.md's Checksums section
    (root files' sha256) still names it, when no .sha256 vouches for the archive as a whole."""
    from sunrgbd_tools.acquire.share import datasheet_sums

    _tree, arc, _rep = packed
    src = tmp_path / "x"
    with zipfile.ZipFile(arc) as zf:
        zf.extractall(src)
        names = zf.namelist()
    assert datasheet_sums((src / "DATASHEET.md").read_text()).keys() == {"dataset.json", "manifest.csv"}
    (src / "dataset.json").write_text((src / "dataset.json").read_text().replace('"kv2"', '"kv9"'))
    _resum(src, "dataset.json")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n in names:
            zf.write(src / n, n)
    res = CliRunner().invoke(main, ["fetch", str(bad), "--dest", str(tmp_path / "d"), "--no-progress"])
    assert res.exit_code == 1
    assert f"{tmp_path / 'd' / 'dataset.json'}: sha256 " in res.output and "in DATASHEET.md" in res.output
    assert "1 file fails DATASHEET.md" in res.output


def test_verify_checks_a_fetched_tree_against_its_records(packed, tmp_path: Path):
    """`sunrgbd verify` on a fetched tree: besides manifest.csv, every file against SHA256SUMS
    (nothing added, renamed or removed; dataset.json unchanged) and the root files against
    DATASHEET.md. It used to pass a tree with a file added, a renamed copy or an edited
    dataset.json. One line per file, exit 1."""
    _tree, arc, _rep = packed
    fetched = tmp_path / "f"
    fetch(FetchConfig(source=str(arc), dest=str(fetched), progress=False, workers=1))
    rows = list(csv.DictReader((fetched / "manifest.csv").open()))
    img = rows[0]["image"]

    def verify(edit) -> tuple[int, list[str]]:
        t = tmp_path / "t"
        shutil.rmtree(t, ignore_errors=True)
        shutil.copytree(fetched, t)
        edit(t)
        res = CliRunner().invoke(main, ["verify", str(t), "--no-progress", "--workers", "1"])
        return res.exit_code, [ln.replace(str(t), "T") for ln in res.output.splitlines()]

    assert verify(lambda t: None) == (0, ["T: 6 samples OK"])
    code, out = verify(lambda t: (t / "notes.txt").write_text("mine"))
    assert code == 1 and out[0] == "T/notes.txt: not listed in SHA256SUMS"
    code, out = verify(lambda t: shutil.copy(t / img, t / img.replace(".png", "_copy.png")))
    assert code == 1 and out[0] == f"T/{img.replace('.png', '_copy.png')}: not listed in SHA256SUMS"
    code, out = verify(lambda t: (t / img).rename(t / img.replace(".png", "_x.png")))
    assert code == 1 and out[:2] == [f"T/{img}: missing", f"T/{img.replace('.png', '_x.png')}: not listed in SHA256SUMS"]

    def edit_ds(t: Path, resum: bool) -> None:
        (t / "dataset.json").write_text((t / "dataset.json").read_text().replace('"kv2"', '"kv9"'))
        if resum:
            _resum(t, "dataset.json")

    code, out = verify(lambda t: edit_ds(t, False))
    stats_hint = " (changed since the fetch, e.g. by `sunrgbd stats`)"
    assert code == 1 and out[0].startswith("T/dataset.json: sha256 ") and out[0].endswith(" in SHA256SUMS" + stats_hint)
    assert len(out) == 2  # and the summary: one line per file
    code, out = verify(lambda t: edit_ds(t, True))
    assert code == 1 and out[0].startswith("T/dataset.json: sha256 ") and out[0].endswith(" in DATASHEET.md" + stats_hint)
    # a changed sample file is named once (by the manifest check), not again for SHA256SUMS
    code, out = verify(lambda t: (t / img).write_bytes((t / img).read_bytes() + b"x"))
    assert code == 1 and out[0] == f"T/{img}: sha256 differs from manifest.csv" and len(out) == 2
    # --no-checksums skips every checksum, the records' too
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "t"), "--no-progress", "--no-checksums"])
    assert res.exit_code == 0


def _verify_cli(t: Path) -> tuple[int, list[str], BaseException | None]:
    res = CliRunner().invoke(main, ["verify", str(t), "--no-progress", "--workers", "1"])
    crash = res.exception if not isinstance(res.exception, SystemExit) else None
    return res.exit_code, [ln.replace(str(t), "T") for ln in res.output.splitlines()], crash


def test_an_unsafe_sha256sums_line_is_one_line(packed, tmp_path: Path):
    """A SHA256SUMS line naming `../../etc/hostname` ended `verify` (and `pack` of the tree) in an
    UnsafeArchive traceback: check_records caught ShareError only. Now one line naming the file
    and line, exit 1; pack writes a new datasheet as for any fetched tree that changed."""
    _tree, arc, _rep = packed
    t = tmp_path / "t"
    fetch(FetchConfig(source=str(arc), dest=str(t), progress=False, workers=1))
    n = len((t / "SHA256SUMS").read_text().splitlines())
    with (t / "SHA256SUMS").open("a") as f:
        f.write("0" * 64 + "  ../../etc/hostname\n")
    code, out, crash = _verify_cli(t)
    assert crash is None and code == 1
    assert out == [f"T/SHA256SUMS:{n + 1}: member path with '..' refused: '../../etc/hostname'",
                   "T: 6 samples, 1 problem(s)"]
    res = _pack_cli(t, tmp_path / "again.zip")
    assert res.exception is None and res.exit_code == 0, res.output
    assert "DATASHEET.md is written anew" in res.output


def _edit_datasheet(t: Path, *entries: str) -> None:
    """Add `- `name`: sha256` lines to DATASHEET.md's Checksums section and fix SHA256SUMS's
    line for it (what a crafted archive holds)."""
    text = (t / "DATASHEET.md").read_text()
    head, sep, tail = text.partition("## Checksums\n")
    lines = tail.split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("- `"))
    lines[at:at] = [f"- `{e}`: {'0' * 64}" for e in entries]
    (t / "DATASHEET.md").write_text(head + sep + "\n".join(lines))
    _resum(t, "DATASHEET.md")


def test_datasheet_names_outside_the_root_are_not_read(packed, tmp_path: Path):
    """DATASHEET.md's Checksums section named files by any path: `fe/../../secret.txt` made
    verify and fetch hash that file, wherever on the machine, and print its sha256. Only a file at
    the tree's root that SHA256SUMS lists is read; any other name is one line about the datasheet."""
    import hashlib

    _tree, arc, _rep = packed
    secret = tmp_path / "secret.txt"
    secret.write_text("not the archive's business")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    t = tmp_path / "t"
    fetch(FetchConfig(source=str(arc), dest=str(t), progress=False, workers=1))
    (t / "notes.txt").write_text("mine")
    _edit_datasheet(t, "fe/../../secret.txt", "/etc/hostname", "notes.txt")
    code, out, crash = _verify_cli(t)
    assert crash is None and code == 1 and digest not in "\n".join(out)
    assert out[:4] == ["T/notes.txt: not listed in SHA256SUMS",
                       "T/DATASHEET.md: its Checksums section lists '/etc/hostname', not a file at the tree's root; not read",
                       "T/DATASHEET.md: its Checksums section lists 'fe/../../secret.txt', not a file at the tree's root; not read",
                       "T/DATASHEET.md: its Checksums section lists 'notes.txt', which SHA256SUMS does not; not read"]
    # the same records in an archive: fetch refuses it, and shows no sha256 of the file either
    (t / "notes.txt").unlink()
    bad = tmp_path / "crafted.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for p in sorted(t.rglob("*")):
            if p.is_file() and ".sunrgbd-fetch" not in p.parts:
                zf.write(p, p.relative_to(t).as_posix())
    res = CliRunner().invoke(main, ["fetch", str(bad), "--dest", str(tmp_path / "d"), "--no-progress"])
    assert res.exit_code == 1 and digest not in res.output
    assert "fail DATASHEET.md: " in res.output and "'/etc/hostname', not a file at the tree's root" in res.output


def test_verify_checks_the_datasheet_when_sha256sums_is_gone(packed, tmp_path: Path):
    """The records check ran only when SHA256SUMS existed: after `rm SHA256SUMS`, a dataset.json
    that DATASHEET.md's Checksums no longer vouches for passed. Now SHA256SUMS is reported
    missing and the datasheet still checked; a tree without either record is not checked."""
    _tree, arc, _rep = packed
    t = tmp_path / "t"
    fetch(FetchConfig(source=str(arc), dest=str(t), progress=False, workers=1))
    (t / "SHA256SUMS").unlink()
    (t / "dataset.json").write_text((t / "dataset.json").read_text().replace('"kv2"', '"kv9"'))
    code, out, crash = _verify_cli(t)
    assert crash is None and code == 1
    assert out[0] == "T/SHA256SUMS: missing"
    assert out[1].startswith("T/dataset.json: sha256 ") and out[1].endswith(
        " in DATASHEET.md (changed since the fetch, e.g. by `sunrgbd stats`)") and len(out) == 3
    (t / "DATASHEET.md").unlink()
    assert _verify_cli(t)[:2] == (0, ["T: 6 samples OK"])


def test_a_path_holding_colon_space_does_not_hide_another_file(packed, tmp_path: Path):
    """verify told "already named" files apart by parsing `path: message` back out of each line
    at its first ": ", so a problem for `…/a: b_leftImg8bit.png` hid every records problem of a
    file `…/a` (here a stray file SHA256SUMS does not list). Problems now stay (path, message)
    pairs until printed, and paths are compared."""
    _tree, arc, _rep = packed
    t = tmp_path / "t"
    fetch(FetchConfig(source=str(arc), dest=str(t), progress=False, workers=1))
    with (t / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        cols, rows = reader.fieldnames, list(reader)
    old = rows[0]["image"]
    stem = old.rsplit("_leftImg8bit", 1)[0]
    new = f"{stem}: x_leftImg8bit.png"
    (t / old).rename(t / new)
    rows[0].update(image=new, image_sha256="0" * 64)  # one manifest problem for that file
    with (t / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    (t / "SHA256SUMS").write_text((t / "SHA256SUMS").read_text().replace(f"  {old}\n", f"  {new}\n"))
    _resum(t, "manifest.csv")
    (t / stem).write_text("a stray file")  # `T/<stem>`: what the old parse took `T/<stem>: x…` for
    code, out, crash = _verify_cli(t)
    assert crash is None and code == 1
    assert f"T/{new}: sha256 differs from manifest.csv" in out
    assert f"T/{stem}: not listed in SHA256SUMS" in out


def test_fetch_hashes_each_root_file_once(packed, tmp_path: Path, monkeypatch):
    """fetch hashed dataset.json and manifest.csv four times: against SHA256SUMS and DATASHEET.md
    in the staging folder, then both again in its final verify. Now once: the datasheet is
    compared with what was just hashed, and the final verify leaves the records out."""
    from sunrgbd_tools.acquire import share

    _tree, arc, _rep = packed
    seen: list[str] = []
    real = share.sha256_file

    def counting(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(share, "sha256_file", counting)
    rep = fetch(FetchConfig(source=str(arc), dest=str(tmp_path / "d"), progress=False, workers=1))
    assert rep.problems == []
    assert seen.count("dataset.json") == 1 and seen.count("manifest.csv") == 1


def test_fetch_hashes_each_sample_file_once(packed, tmp_path: Path, monkeypatch):
    """fetch hashed every sample file twice: against SHA256SUMS in the staging folder, then
    against manifest.csv in its final verify. The verify is now given the sha256s SHA256SUMS
    proved, compares the manifest's with them and reads a file again only when the two differ;
    a resumed verify (the tree has lain on disk since) is given none and hashes them all."""
    from sunrgbd_tools.convert import verify

    _tree, arc, _rep = packed
    given: list = []
    real = verify.verify_tree

    def spy(root, **kw):
        given.append(kw.get("known"))
        return real(root, **kw)

    monkeypatch.setattr(verify, "verify_tree", spy)
    dest = tmp_path / "d"
    rep = fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    assert rep.problems == [] and rep.samples == 6
    listed = {r[k]: r[f"{k}_sha256"] for r in read_manifest(dest) for k in FILE_KEYS if r.get(k)}
    assert len(listed) == 6 * len(FILE_KEYS) and listed.items() <= given[0].items()  # every sample file
    # the verify trusts a given sha256 only when it is the manifest's: then the file is not read
    victim = dest / next(iter(listed))
    victim.write_bytes(victim.read_bytes() + b"x")
    assert real(dest, workers=1, records=False, known=given[0]).problems == []
    assert real(dest, workers=1, records=False, known={**given[0], victim.relative_to(dest).as_posix(): "0" * 64}
                ).problems == [f"{victim}: sha256 differs from manifest.csv"]
    fetched = dest / ".sunrgbd-fetch" / "fetched.json"  # interrupted in its verify: verified again
    fetched.write_text(fetched.read_text(encoding="utf-8").replace('"verified": true', '"verified": false'),
                       encoding="utf-8")
    again = fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    assert given[1] is None and again.problems == [f"{victim}: sha256 differs from manifest.csv"]


def _pack_cli(tree: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["pack", str(tree), "--out", str(out), "--no-progress", *extra])


def test_a_fetched_tree_packs_again_to_the_archive_it_came_from(packed, tmp_path: Path):
    """`fetch` then `pack` of that tree (to re-share a verified copy) was refused: "already holds
    DATASHEET.md, SHA256SUMS (a fetched archive?); remove them". A fetched tree is a clean tree plus
    the archive's own records: unchanged, it packs to the very archive it came from (same sha256,
    so a mirror serves what was published); changed, its datasheet is written anew."""
    _tree, arc, rep = packed
    dest = tmp_path / "got"
    assert fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1)).problems == []
    (dest / "notes.txt").write_text("mine")  # a user's file: left out as in any tree
    res = _pack_cli(dest, tmp_path / "mirror" / "sunrgbd-kv2.zip")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mirror" / "sunrgbd-kv2.zip").read_bytes() == arc.read_bytes()
    assert f"sha256 {rep.sha256}" in res.output
    assert f"note: {dest}: a fetched tree as its SHA256SUMS lists it: its DATASHEET.md is kept" in res.output
    assert "problem: " in res.output and "notes.txt" in res.output
    assert (dest / "DATASHEET.md").is_file() and (dest / "SHA256SUMS").is_file()  # nothing touched

    # changed since it was fetched (a file of the tree): packed with a datasheet of its own
    meta = json.loads((dest / "dataset.json").read_text())
    meta["description"] = "re-shared after a check"
    (dest / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "changed.zip"
    res = _pack_cli(dest, out)
    assert res.exit_code == 0, res.output
    assert ("a fetched tree changed since (1 file no longer as its SHA256SUMS lists: dataset.json); "
            "DATASHEET.md is written anew") in res.output
    with zipfile.ZipFile(out) as zf:
        sheet = zf.read("DATASHEET.md").decode()
        assert "re-shared after a check" in sheet and f"sunrgbd pack {dest.name} --out {out.name}" in sheet
        assert zf.namelist().count("DATASHEET.md") == 1 and zf.namelist()[-1] == "SHA256SUMS"
    back = fetch(FetchConfig(source=str(out), dest=str(tmp_path / "back"), progress=False, workers=1))
    assert back.problems == [] and back.samples == 6 and back.files == rep.files

    # an edited datasheet is not the one SHA256SUMS vouches for: written anew, the file kept
    (dest / "DATASHEET.md").write_text("# my notes\n")
    res = _pack_cli(dest, tmp_path / "edited.zip")
    assert res.exit_code == 0 and "its DATASHEET.md and SHA256SUMS do not list the tree as it is" in res.output
    assert (dest / "DATASHEET.md").read_text() == "# my notes\n"


def test_a_changed_fetched_tree_is_compressed_once(packed, tmp_path: Path, monkeypatch):
    """Whether a fetched tree changed since is decided by hashing its files against its
    SHA256SUMS before anything is written: the archive was written with the old datasheet,
    thrown away and written again (a changed tree compressed twice)."""
    from sunrgbd_tools.acquire import share

    _tree, arc, _rep = packed
    dest = tmp_path / "got"
    fetch(FetchConfig(source=str(arc), dest=str(dest), progress=False, workers=1))
    first = sorted(p for p in dest.rglob("*.png"))[0]
    first.write_bytes(first.read_bytes() + b"\0")  # a sample file edited after the fetch
    written = []
    real = share._write_archive
    monkeypatch.setattr(share, "_write_archive", lambda *a: written.append(a[4]) or real(*a))
    rep = pack_tree(PackConfig(src=str(dest), out=str(tmp_path / "c.zip"), progress=False))
    assert len(written) == 1 and written[0] != (dest / "DATASHEET.md").read_bytes()
    assert rep.repacked.startswith(f"{dest}: a fetched tree changed since (1 file no longer as its "
                                   f"SHA256SUMS lists: {first.relative_to(dest).as_posix()})")
    first.write_bytes(first.read_bytes()[:-1])  # as fetched again: the archive it came from
    written.clear()
    rep = pack_tree(PackConfig(src=str(dest), out=str(tmp_path / "u.zip"), progress=False))
    assert written == [(dest / "DATASHEET.md").read_bytes()]
    assert (tmp_path / "u.zip").read_bytes() == arc.read_bytes()


def test_a_converted_tree_with_a_datasheet_of_its_own_says_it_is_replaced(tmp_path: Path):
    """A tree `convert` wrote, holding the user's own DATASHEET.md (no SHA256SUMS): the archive
    gets a new datasheet in its place, which the note used to call "a fetched tree changed since"."""
    tree = write_clean_tree(tmp_path / "clean", counts={"train": 1, "val": 1}).root
    (tree / "DATASHEET.md").write_text("# my own notes\n")
    out = tmp_path / "a.zip"
    res = _pack_cli(tree, out)
    assert res.exit_code == 0, res.output
    assert (f"note: {tree}: its DATASHEET.md is not packed (no SHA256SUMS vouches for it, so it is not "
            "a fetched tree's): the archive holds a new DATASHEET.md written from dataset.json in its "
            "place; the tree's file is left as it is") in res.output
    assert "fetched tree changed" not in res.output
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist().count("DATASHEET.md") == 1 and "my own notes" not in zf.read("DATASHEET.md").decode()
    assert (tree / "DATASHEET.md").read_text() == "# my own notes\n"
