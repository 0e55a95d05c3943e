"""`sunrgbd mapping audit` on `sunrgbd sample` output: the exact per-name official counts
the generator planted, determinism, the learned mapping through `convert --mapping`, and
bad input reported in one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.resize import resize_nearest
from sunrgbd_tools.labels.audit import OUTPUTS, AuditConfig, AuditError, run_audit
from sunrgbd_tools.labels.table import NameMapper
from sunrgbd_tools.synthetic.generator import make_sample
from sunrgbd_tools.synthetic.truth import official_name_pixels, scene_truth
from sunrgbd_tools.synthetic.vocab import OFFICIAL_BY_SCENE_TYPE, OFFICIAL_DIFFERENCES, SEG37

SIZE = (265, 365)  # half the kv2 size: the same scenes, a quarter of the pixels
MIN_PIXELS = 500


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit_sample") / "raw"
    # 40 scenes: enough that `shelf` occurs in scenes of both official classes
    info = make_sample(root, scenes=40, seed=0, quirks=True, size=SIZE, workers=2)
    return root, info


@pytest.fixture(scope="module")
def audited(sample, tmp_path_factory):
    root, _ = sample
    out = tmp_path_factory.mktemp("audit") / "audit"
    res = CliRunner().invoke(main, ["mapping", "audit", "--src", str(root), "--out", str(out),
                                    "--min-pixels", str(MIN_PIXELS), "--workers", "2"])
    assert res.exit_code == 0, res.output
    return out, res


def _csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _kv2_keys(info) -> list[str]:
    return [s.key for s in info.scenes if s.sensor == "kv2"]


def _dist(text: str) -> dict[int, int]:
    """names.csv's official_distribution ("sofa 123; unlabeled 4") → {official id: pixels}."""
    ids = {"unlabeled": 0} | {n: i + 1 for i, n in enumerate(SEG37)}
    out = {}
    for part in text.split("; "):
        name, px = part.rsplit(" ", 1)
        out[ids[name]] = int(px)
    return out


def test_per_name_counts_are_exactly_what_the_generator_planted(sample, audited):
    root, info = sample
    out, _ = audited
    truth = official_name_pixels(info, _kv2_keys(info))
    rows = {r["raw_name"]: r for r in _csv(out / "names.csv")}
    assert set(rows) == set(truth)
    mapper = NameMapper.load()
    for name, (images, by_id) in truth.items():
        r = rows[name]
        hit = mapper.lookup(name)
        expected = hit.class_id if hit.class_id <= 37 else 0  # other/computer ⇔ official void
        total = sum(by_id.values())
        assert (int(r["pixels"]), int(r["images"]), r["class"]) == (total, images, hit.class_name), name
        assert _dist(r["official_distribution"]) == by_id, name
        assert int(r["disagree_pixels"]) == total - by_id.get(expected, 0), name
        assert int(r["official_void_pixels"]) == by_id.get(0, 0), name
        top = max(by_id.values())
        assert float(r["majority_share"]) == pytest.approx(top / total, abs=5e-5), name
    # sorted by pixels in disagreement
    keys = [(-int(r["disagree_pixels"]), -int(r["pixels"]), r["raw_name"]) for r in rows.values()]
    assert [k[2] for k in sorted(keys)] == list(rows)

    # the planted differences are there to be found: a seg37 → other seg37 class, Other → a
    # seg37 class, a split name, official void for names the official mapping does not know
    shares = {n: max(d.values()) / sum(d.values()) for n, (_, d) in truth.items()}
    assert rows["cushion"]["official_majority"] == OFFICIAL_DIFFERENCES["cushion"] != rows["cushion"]["class"]
    assert rows["pillar"]["official_majority"] == OFFICIAL_DIFFERENCES["pillar"]
    assert "shelf" in OFFICIAL_BY_SCENE_TYPE and shares["shelf"] < 0.8
    assert rows["charir"]["official_majority"] == "unlabeled" and rows["charir"]["class"] == "chair"


def test_learned_mapping_follows_the_thresholds(sample, audited):
    root, info = sample
    out, _ = audited
    truth = official_name_pixels(info, _kv2_keys(info))
    learned = {r["raw_name"]: r for r in _csv(out / "learned_mapping.csv")}
    expected = {}
    for name, (_images, by_id) in truth.items():
        total = sum(by_id.values())
        top = min(by_id, key=lambda v: (-by_id[v], v))
        if top != 0 and total >= MIN_PIXELS and by_id[top] >= 0.8 * total:
            expected[name] = SEG37[top - 1]
    assert {n: r["class"] for n, r in learned.items()} == expected
    assert {r["rule"] for r in learned.values()} == {"official"}
    assert "cushion" in learned and "pillar" in learned and "shelf" not in learned and "charir" not in learned
    r = learned["cushion"]
    assert int(r["pixels"]) == sum(truth["cushion"][1].values()) and float(r["share"]) == 1.0


def test_confusion_matrix_and_per_class_agree_with_the_names(sample, audited):
    out, res = audited
    rows = _csv(out / "names.csv")
    conf = {r["ours \\ official"]: r for r in _csv(out / "confusion.csv")}
    mapper = NameMapper.load()
    assert list(conf) == [c.name for c in mapper.table.classes]
    # the raw-unlabelled row: the sample's official labels are void there too
    assert all(int(v) == 0 for k, v in conf["unlabeled"].items() if k not in ("ours \\ official", "unlabeled"))
    by_class: dict[str, dict[int, int]] = {}
    for r in rows:
        acc = by_class.setdefault(r["class"], {})
        for v, px in _dist(r["official_distribution"]).items():
            acc[v] = acc.get(v, 0) + px
    for cls, acc in by_class.items():
        got = [int(conf[cls][n]) for n in ["unlabeled", *SEG37]]
        assert got == [acc.get(v, 0) for v in range(38)], cls
    per = {r["class"]: r for r in _csv(out / "per_class.csv")}
    sofa = per["sofa"]
    both = int(conf["sofa"]["sofa"])
    assert int(sofa["both"]) == both and int(sofa["our_pixels"]) == sum(by_class["sofa"].values())
    assert int(sofa["official_pixels"]) == sum(int(conf[c]["sofa"]) for c in conf)
    assert per["other"]["official_pixels"] == ""  # the official seg37 has no Other
    png = cv2.imread(str(out / "confusion.png"), cv2.IMREAD_COLOR)
    assert png is not None and png.shape[0] > 40 * 16 and png.shape[1] > 38 * 16
    assert "pixel agreement with the official seg37" in res.output
    assert "cushion pillow->sofa" in res.output
    listed = [ln for ln in res.output.splitlines() if ln.split()[:1] and ln.split()[0].isdigit()]
    disagreeing = [r for r in rows if int(r["disagree_pixels"])]
    assert len(listed) == 10 < len(disagreeing)
    assert f"… {len(disagreeing) - 10} more names disagree" in res.output


def test_outputs_are_deterministic_for_any_worker_count(sample, audited, tmp_path):
    root, _ = sample
    out, _ = audited
    other = tmp_path / "w1"
    res = run_audit(AuditConfig(src=str(root), out=str(other), min_pixels=MIN_PIXELS), workers=1)
    assert sorted(p.name for p in res.written) == sorted(OUTPUTS)
    for name in OUTPUTS:
        a, b = (out / name).read_bytes(), (other / name).read_bytes()
        if name == "config.json":  # records --out, which differs here
            a, b = a.replace(str(out).encode(), b"OUT"), b.replace(str(other).encode(), b"OUT")
        assert a == b, name
    cfg = json.loads((other / "config.json").read_text())
    assert cfg["config"] == {"src": str(root), "out": str(other), "subset": "kv2", "mapping": None,
                             "min_share": 0.8, "min_pixels": MIN_PIXELS}
    before = {n: (other / n).read_bytes() for n in OUTPUTS}
    # an interrupted run (config.json claimed the folder, some outputs missing or half
    # written under a temporary name) is finished by running it again
    (other / "confusion.png").unlink()
    (other / ".names.csv.x1y2.tmp").write_bytes(b"half")
    run_audit(AuditConfig(src=str(root), out=str(other), min_pixels=MIN_PIXELS), workers=2)
    assert {n: (other / n).read_bytes() for n in OUTPUTS} == before
    assert sorted(p.name for p in other.iterdir()) == sorted(OUTPUTS)
    # the same folder with other options is refused, nothing changed
    with pytest.raises(AuditError, match="other options"):
        run_audit(AuditConfig(src=str(root), out=str(other), min_pixels=1), workers=1)
    assert {n: (other / n).read_bytes() for n in OUTPUTS} == before


def test_learned_csv_drives_convert(sample, audited, tmp_path):
    root, info = sample
    out, _ = audited
    learned = out / "learned_mapping.csv"
    mapper = NameMapper.load(learned)
    hit = mapper.lookup("cushion")
    assert (hit.class_name, hit.rule) == ("sofa", "official") and "SUNRGBD2Dseg" in hit.via
    clean = tmp_path / "clean"
    size = (66, 91)
    res = CliRunner().invoke(main, ["convert", "--src", str(root), "--out", str(clean), "--size",
                                    f"{size[0]}x{size[1]}", "--mapping", str(learned), "--workers", "1",
                                    "--no-depth"])
    assert res.exit_code == 0, res.output
    shipped = NameMapper.load()
    with open(clean / "manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    changed = 0
    for r in manifest:
        sc = info.scene(r["scene"])
        if "segmat_size_mismatch" in sc.quirks:
            continue
        seg, names = scene_truth(info, sc.key, image_grid=True)
        lut = np.array([0] + [mapper.lookup(n).class_id for n in names], np.uint8)
        lut0 = np.array([0] + [shipped.lookup(n).class_id for n in names], np.uint8)
        got = cv2.imread(str(clean / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, resize_nearest(lut[seg], size)), sc.key
        changed += int((resize_nearest(lut0[seg], size) != got).sum())
    assert changed > 0  # cushion → sofa and pillar → wall changed real pixels


# ------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit_small") / "raw"
    info = make_sample(root, scenes=12, seed=1, quirks=True, size=(60, 80))
    return root, info


def _run(*args):
    return CliRunner().invoke(main, ["mapping", "audit", *map(str, args)])


def _one_line_error(res, code: int, *needles: str) -> None:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert len([ln for ln in res.output.splitlines() if ln.startswith("Error")]) == 1
    for n in needles:
        assert n in res.output, res.output


def test_usage_errors_exit_2_in_one_line(small, tmp_path):
    root, _ = small
    res = _run("--src", tmp_path, "--out", tmp_path / "a")
    _one_line_error(res, 2, "SUNRGBD: not found")
    bare = tmp_path / "bare"
    shutil.copytree(root / "SUNRGBD", bare / "SUNRGBD")
    # the audit has no --labels option: the message said "needed for --labels official"
    _one_line_error(_run("--src", bare, "--out", tmp_path / "b"), 2,
                    "SUNRGBD2Dseg.mat: file not found (needed for the audit; "
                    "`sunrgbd download --with-official-labels` fetches it)")
    meta = bare / "SUNRGBDtoolbox" / "Metadata"
    meta.mkdir(parents=True)
    shutil.copy(root / "SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat", meta)
    (meta / "SUNRGBD2Dseg.mat").write_bytes(b"MATLAB 7.3 MAT-file, but then nothing")
    _one_line_error(_run("--src", bare, "--out", tmp_path / "c"), 2, "SUNRGBD2Dseg.mat: not a readable")
    _one_line_error(_run("--src", root, "--subset", "kv9", "--out", tmp_path / "d"), 2, "unknown subset")
    # official values are our class ids only when seg37list is the class table's order
    import scipy.io

    swapped = tmp_path / "swapped"
    shutil.copytree(root, swapped)
    names = list(SEG37)
    names[0], names[1] = names[1], names[0]
    cell = np.empty((1, 37), dtype=object)
    cell[0, :] = names
    scipy.io.savemat(swapped / "SUNRGBDtoolbox/Metadata/seg37list.mat", {"seg37list": cell})
    _one_line_error(_run("--src", swapped, "--out", tmp_path / "f"), 2, "seg37list(1) is 'floor'")
    _one_line_error(_run("--src", root, "--min-share", "1.5"), 2, "--min-share")
    # an --out that holds the user's files is never touched
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    _one_line_error(_run("--src", root, "--out", busy), 2, "use a new --out folder")
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c", "d", "f"))
    with pytest.raises(AuditError, match="min_share"):
        run_audit(AuditConfig(src=str(root), out=str(tmp_path / "e"), min_share=0), workers=1)


def test_bad_scenes_are_reported_and_skipped(small, tmp_path):
    root, info = small
    raw = tmp_path / "raw"
    shutil.copytree(root, raw)
    kv2 = [s for s in info.scenes if s.sensor == "kv2" and "seg" in s.labels and "polygons" in s.labels]
    broken_seg, stray = kv2[-1], kv2[-2]
    (raw / "SUNRGBD" / broken_seg.key / "seg.mat").write_bytes(b"not a mat file")
    # a scene folder the official labels do not know
    shutil.copytree(raw / "SUNRGBD" / stray.key, raw / "SUNRGBD" / (stray.key + "_copy"))
    # a linked folder is not walked: reported (as convert and `mapping check` report it), not ignored
    link = (raw / "SUNRGBD" / stray.key).parent / "linked"
    link.symlink_to(tmp_path)
    res = _run("--src", raw, "--out", tmp_path / "a", "--min-pixels", 0)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("problem: ")]
    assert any(f"{broken_seg.key}/seg.mat: not a readable MATLAB file" in ln and "falling back to polygons" in ln
               for ln in lines)
    assert any(f"no entry for scene {stray.key}_copy (scene skipped)" in ln for ln in lines)
    assert f"problem: {link}: symbolic link to {tmp_path} (not followed) (folder skipped)" in lines
    assert any("no labels (neither seg.mat nor annotation2Dfinal/index.json) (scene skipped)" in ln
               for ln in lines)
    problems = (tmp_path / "a" / "problems.txt").read_text().splitlines()
    assert sorted(ln.removeprefix("problem: ") for ln in lines) == problems
    # the broken seg.mat scene still counts, through its polygons
    truth = official_name_pixels(info, [s.key for s in info.scenes if s.sensor == "kv2"],
                                 from_polygons=[broken_seg.key])
    rows = {r["raw_name"]: int(r["pixels"]) for r in _csv(tmp_path / "a" / "names.csv")}
    assert rows == {n: sum(d.values()) for n, (_, d) in truth.items()}
    strict = _run("--src", raw, "--out", tmp_path / "b", "--strict")
    assert strict.exit_code == 1 and "Traceback" not in strict.output


def test_damaged_official_label_images_are_one_line_with_the_scenes_they_skipped(small, tmp_path):
    """SUNRGBD2Dseg.mat opens but every label image's compressed chunk is damaged: the audit
    printed the same line, naming the file, once per scene; it is one line saying how many
    scenes it skipped and which (the mechanism convert uses, text.shared_skips_once)."""
    from test_convert_sample import damage_label_chunks, damaged_official

    _root, info = small
    src = damaged_official(small, tmp_path, damage_label_chunks)
    res = _run("--src", src, "--out", tmp_path / "a", "--workers", 1, "--no-progress")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    kv2 = sorted(s.key for s in info.scenes if s.sensor == "kv2")
    lines = [ln for ln in res.output.splitlines() if ln.startswith("problem: ")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"problem: {src / 'SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat'}: not a readable "
                               "MATLAB v7.3 file (OSError: ")
    assert lines[0].endswith(f") ({len(kv2)} scenes skipped: {', '.join(kv2[:3])} and {len(kv2) - 3} more)")
    assert f"audited 0 of {len(kv2)} scenes of kv2 (label sources: none), skipped {len(kv2)};" in res.output
    assert (tmp_path / "a" / "problems.txt").read_text() == lines[0].removeprefix("problem: ") + "\n"
    assert _run("--src", src, "--out", tmp_path / "b", "--strict", "--no-progress").exit_code == 1


def test_an_unreadable_official_label_file_is_the_line_convert_gives(small, tmp_path):
    """The audit had its own copy of OfficialLabels.check, worded apart (`… file (Unable to …)`
    where convert says `… file (OSError: Unable to …)`); both run the one check now."""
    from test_convert_sample import damaged_official

    src = damaged_official(small, tmp_path, lambda data, f: data[:len(data) // 2])
    audit = _run("--src", src, "--out", tmp_path / "a", "--no-progress")
    conv = CliRunner().invoke(main, ["convert", "--src", str(src), "--out", str(tmp_path / "c"),
                                     "--labels", "official", "--no-progress"])
    _one_line_error(audit, 2, "SUNRGBD2Dseg.mat: not a readable MATLAB v7.3 file (OSError: ")
    _one_line_error(conv, 2)
    error = [ln for ln in audit.output.splitlines() if ln.startswith("Error")]
    assert error == [ln for ln in conv.output.splitlines() if ln.startswith("Error")]
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("top", [0, 5, 1723, 1724, 3000])  # 1724 · 38 > 65536: the bincount path
@pytest.mark.parametrize("column_major", [False, True])
def test_joint_histogram_matches_a_plain_count(top, column_major):
    from sunrgbd_tools.labels.audit import _joint_histogram

    rng = np.random.default_rng(top)
    idx = rng.integers(0, top + 1, (53, 73)).astype(np.int32)
    idx.flat[0] = top
    off = rng.integers(0, 38, (53, 73)).astype(np.int32)
    if column_major:  # as scipy and h5py hand MATLAB's arrays over
        idx, off = np.asfortranarray(idx), np.asfortranarray(off)
    expected = np.zeros((top + 1, 38), np.int64)
    np.add.at(expected, (idx.ravel(), off.ravel()), 1)
    assert np.array_equal(_joint_histogram(idx, off, top), expected)


# ------------------------------------------------------------------ real frames and JSON
def _write_official(root: Path, labels: dict[str, np.ndarray]) -> None:
    """SUNRGBDMeta.mat (v5) and a minimal v7.3-layout SUNRGBD2Dseg.mat (images transposed)."""
    import h5py
    import scipy.io

    md = root / "SUNRGBDtoolbox" / "Metadata"
    md.mkdir(parents=True, exist_ok=True)
    meta = np.zeros((1, len(labels)), dtype=[("sequenceName", object)])
    for i, key in enumerate(labels):
        meta[0, i]["sequenceName"] = f"/n/fs/sun3d/data/SUNRGBD/{key}/"
    scipy.io.savemat(md / "SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
    with h5py.File(md / "SUNRGBD2Dseg.mat", "w") as f:
        refs = f.create_group("#refs#")
        r = np.empty((len(labels), 1), dtype=h5py.ref_dtype)
        for i, lab in enumerate(labels.values()):
            r[i, 0] = refs.create_dataset(f"r{i}", data=np.ascontiguousarray(lab.T.astype(np.uint8))).ref
        f.create_group("SUNRGBD2Dseg").create_dataset("seglabel", data=r)


def test_real_frames_and_real_polygons(tmp_path):
    """The real kv2 frame with seg.mat files and the real img_0063 index.json (kv1), against
    official labels made here: every count is checked against a plain count of the arrays."""
    from test_convert import SEG_NAMES, build_raw

    from sunrgbd_tools.convert.rasterize import paint_polygons
    from sunrgbd_tools.raw.annotation import read_index_json

    root = tmp_path / "raw"
    truth = build_raw(root, n_kv2=3)  # key -> seglabel; names SEG_NAMES
    ids = {"unlabeled": 0} | {n: i + 1 for i, n in enumerate(SEG37)}
    official, expected = {}, {}

    def count(name_of_value, raw, off):
        for v in np.unique(raw):
            name = name_of_value(int(v))
            if not name:
                continue
            by_id = expected.setdefault(name, {})
            vals, n = np.unique(off[raw == v], return_counts=True)
            for c, k in zip(vals, n, strict=True):
                by_id[int(c)] = by_id.get(int(c), 0) + int(k)

    seg_official = {"wall": "wall", "floor": "floor", "chair2": "chair", "zorbulator": "table"}
    for key, seg in truth.items():
        lut = np.array([0] + [ids[seg_official[n]] for n in SEG_NAMES])
        off = lut[seg]
        off[:40] = 0  # the official annotators left the top rows void
        official[key] = off
        count(lambda v: SEG_NAMES[v - 1] if v else "", seg, off)
    key = "kv1/b3dodata/img_0063"
    ann = read_index_json(root / "SUNRGBD" / key / "annotation2Dfinal" / "index.json")
    poly = paint_polygons(ann, 427, 561)
    poly_official = {"shelf": "bookshelf", "wall": "wall", "floor": "floor", "chair": "chair",
                     "books": "books", "box": "unlabeled"}
    lut = np.array([0] + [ids[poly_official[n]] for n in ann.names])
    official[key] = lut[poly]
    count(lambda v: ann.names[v - 1] if v else "", poly, official[key])
    _write_official(root, official)

    out = tmp_path / "audit"
    res = _run("--src", root, "--subset", "all", "--out", out, "--min-pixels", 100, "--workers", 1)
    assert res.exit_code == 0, res.output
    assert "audited 4 of 4 scenes of all (label sources: polygons 1, seg 3)" in res.output
    rows = {r["raw_name"]: r for r in _csv(out / "names.csv")}
    assert {n: _dist(r["official_distribution"]) for n, r in rows.items()} == expected
    learned = {r["raw_name"]: r["class"] for r in _csv(out / "learned_mapping.csv")}
    assert learned["zorbulator"] == "table" and learned["shelf"] == "bookshelf"
    assert "box" not in learned  # an official void majority keeps our class
    assert rows["wall"]["images"] == "4" and float(rows["wall"]["majority_share"]) < 1
