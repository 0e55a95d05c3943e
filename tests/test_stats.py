"""`sunrgbd stats`: exact counts and mean/std against plain numpy, the weighting formulas
against hand-computed values, worker-count invariance, the train-only rule, bad input,
re-run / change detection, and the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from treebuilder import write_clean_tree  # noqa: E402

from cleantree.dataset import STATS_KEYS  # noqa: E402
from sunrgbd_tools.cli.main import main  # noqa: E402
from sunrgbd_tools.labels.table import ClassTable  # noqa: E402
from sunrgbd_tools.stats import (  # noqa: E402
    WEIGHTING,
    AbsentClassWarning,
    LabelValueError,
    StatsConfig,
    StatsInputError,
    class_weights,
    run_stats,
)

TABLE = ClassTable.load()  # the table the converter (and treebuilder) writes
ALL_PRESENT = [0, 0, 0, 0, *(c.id for c in TABLE.classes)]  # every class id may be drawn; unlabelled more often
NUM = TABLE.lookup.num_classes
# a handful of small images never holds all the classes; the warning has its own test
pytestmark = pytest.mark.filterwarnings("ignore::sunrgbd_tools.stats.AbsentClassWarning")


def _tree(root: Path, **kw) -> Path:
    kw.setdefault("class_ids", ALL_PRESENT)
    kw.setdefault("counts", {"train": 5, "val": 2, "test": 2})
    write_clean_tree(root, **kw)
    return root


def _rows(root: Path, split: str = "train") -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split]


def _run(root: Path, **kw):
    kw.setdefault("workers", 1)
    return run_stats(root, StatsConfig(**kw))


def _numpy_reference(root: Path, split: str = "train") -> dict:
    """Plain numpy over the decoded files: float64 means of all pixels at once."""
    ds = json.loads((root / "dataset.json").read_text())
    k = ds["num_classes"]
    to_train = {c["id"]: c["train_id"] for c in ds["classes"]}
    labs, imgs, deps = [], [], []
    images = np.zeros(k, dtype=np.int64)
    for r in _rows(root, split):
        lab = cv2.imread(str(root / r["label_ids"]), cv2.IMREAD_UNCHANGED)
        train = np.vectorize(to_train.get)(lab)
        images += np.isin(np.arange(k), train)
        labs.append(train.ravel())
        imgs.append(cv2.cvtColor(cv2.imread(str(root / r["image"])), cv2.COLOR_BGR2RGB).reshape(-1, 3))
        if r["depth"]:
            deps.append(cv2.imread(str(root / r["depth"]), cv2.IMREAD_UNCHANGED).ravel())
    lab = np.concatenate(labs)
    rgb = np.concatenate(imgs).astype(np.float64) / 255.0
    out = {
        "counts": [int((lab == t).sum()) for t in range(k)],
        "images": images.tolist(),
        "ignore": int((lab == 255).sum()),
        "mean": rgb.mean(axis=0),
        "std": rgb.std(axis=0),
    }
    if deps:
        d = np.concatenate(deps)
        d = d[d > 0].astype(np.float64) / 1000.0
        out["depth_mean"], out["depth_std"] = d.mean(), d.std()
    return out


# ---- exactness --------------------------------------------------------------------------


def test_counts_and_mean_std_match_numpy(tmp_path):
    root = _tree(tmp_path / "clean", seed=5)
    st = _run(root).stats
    ref = _numpy_reference(root)
    assert ref["ignore"] > 0 and sum(1 for n in ref["counts"] if n) > 10  # a non-trivial tree
    assert st["class_pixel_counts"] == ref["counts"]
    assert st["class_image_counts"] == ref["images"]
    assert st["pixels"]["ignore"] == ref["ignore"]
    assert st["pixels"]["total"] == 5 * 48 * 64
    assert st["pixels"]["labelled"] + st["pixels"]["ignore"] == st["pixels"]["total"]
    np.testing.assert_allclose(st["mean"], ref["mean"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(st["std"], ref["std"], rtol=0, atol=1e-9)
    assert st["depth_mean"] == pytest.approx(ref["depth_mean"], abs=1e-9)
    assert st["depth_std"] == pytest.approx(ref["depth_std"], abs=1e-9)
    freq = np.asarray(ref["counts"]) / st["pixels"]["labelled"]
    np.testing.assert_allclose([c["frequency"] for c in st["classes"]], freq, rtol=1e-12)
    assert sum(st["class_pixel_counts"]) == st["pixels"]["labelled"]
    assert st["samples"] == {"split": 5, "used": 5, "skipped": 0}


def test_median_freq_uses_pixels_of_images_containing_the_class(tmp_path):
    """Eigen & Fergus: freq(c) = pixels of c / "total number of pixels in images where c is
    present", as the reference code computes it (ESANet's compute_class_weights for SUN RGB-D,
    PyTorch-ENet's median_freq_balancing): every pixel of those images, unlabelled ones too.
    It used to count only their labelled pixels, which moves the weights of classes that occur
    in sparsely labelled images (0.85-1.32x on README's sample tree with official labels:
    docs/stats.md names the commands)."""
    root = _tree(tmp_path / "clean", seed=5)
    st = _run(root).stats
    ds = json.loads((root / "dataset.json").read_text())
    to_train = np.full(256, 255)
    for c in ds["classes"]:
        to_train[c["id"]] = c["train_id"]
    k = ds["num_classes"]
    present_px = np.zeros(k)
    unlabelled_share = []
    for r in _rows(root):
        t = to_train[cv2.imread(str(root / r["label_ids"]), cv2.IMREAD_UNCHANGED)]
        for c in np.unique(t[t != 255]):
            present_px[c] += t.size  # h * w
        unlabelled_share.append((t == 255).mean())
    n = np.asarray(st["class_pixel_counts"], dtype=float)
    # unlabelled shares that differ between images, else "labelled pixels" and "all pixels" agree
    assert st["pixels"]["ignore"] > 0 and len(set(unlabelled_share)) > 1
    ok = n > 0
    freq = n[ok] / present_px[ok]
    expect = np.median(freq) / freq
    expect *= len(expect) / expect.sum()
    np.testing.assert_allclose(np.asarray(st["class_weights"]["median-freq"])[ok], expect, rtol=1e-12)


# ---- weighting formulas -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # p = (0.75, 0.25): 1/p = (4/3, 4), scaled to mean 1
        ("inverse", [0.5, 1.5]),
        # 1/sqrt(p) = (2/sqrt3, 2), scaled to mean 1: (sqrt3 - 1, 3 - sqrt3)
        ("inverse-sqrt", [0.7320508075688772, 1.2679491924311228]),
        # freq = (300/400, 100/200) = (0.75, 0.5), median 0.625: (5/6, 5/4) scaled
        ("median-freq", [0.8, 1.2]),
        # 1/ln(1.77) = 1.75137622, 1/ln(1.27) = 4.18380457, scaled to mean 1
        ("enet", [0.5901677750295244, 1.4098322249704753]),
        ("none", [1.0, 1.0]),
    ],
)
def test_weight_formulas_by_hand(method, expected):
    w, absent = class_weights(method, [300, 100, 0, 50], [400, 200, 0, 80], [False, False, False, True])
    assert w[:2] == pytest.approx(expected, rel=1e-12)
    assert w[2] == pytest.approx(max(expected), rel=1e-12)  # absent: largest present weight
    assert w[3] == 0.0  # ignored class
    assert absent == [2]
    assert np.mean(w[:2]) == pytest.approx(1.0, rel=1e-12)


def test_median_freq_odd_count_by_hand():
    # freq = (0.6, 0.3, 0.2), median 0.3 -> (0.5, 1, 1.5), already mean 1
    w, absent = class_weights("median-freq", [60, 30, 10], [100, 100, 50], [False] * 3)
    assert w == pytest.approx([0.5, 1.0, 1.5], rel=1e-12)
    assert absent == []


def test_unknown_method_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="valid: median-freq, inverse, inverse-sqrt, enet, none"):
        class_weights("focal", [1], [1], [False])
    root = _tree(tmp_path / "clean")
    with pytest.raises(ValueError, match="unknown weighting method 'focal'"):
        _run(root, method="focal")
    assert not (root / "stats.json").exists()


def test_all_methods_stored_and_default_marked(tmp_path):
    root = _tree(tmp_path / "clean")
    st = _run(root, method="enet").stats
    assert list(st["class_weights"]) == list(WEIGHTING)
    assert st["class_weights_default"] == "enet"
    ds = json.loads((root / "dataset.json").read_text())
    assert ds["class_weights"] == st["class_weights"] and ds["class_weights_default"] == "enet"
    for w in st["class_weights"].values():
        assert len(w) == ds["num_classes"]
        assert np.mean([x for x, n in zip(w, st["class_pixel_counts"], strict=True) if n]) == pytest.approx(1.0)


def test_absent_class_warns_and_gets_finite_weight(tmp_path):
    root = _tree(tmp_path / "clean", class_ids=[0, 1, 2, 5])  # train ids 0, 1, 4 only
    with pytest.warns(AbsentClassWarning, match=rf"{NUM - 3} class\(es\) have no pixels in split 'train'"):
        st = _run(root).stats
    assert st["absent_train_ids"] == [t for t in range(NUM) if t not in (0, 1, 4)]
    for w in st["class_weights"].values():
        assert all(math.isfinite(x) for x in w)
        present = [w[0], w[1], w[4]]
        assert np.mean(present) == pytest.approx(1.0)
        assert w[2] == max(present)


# ---- invariance and the train-only rule -------------------------------------------------


def test_worker_count_does_not_change_a_byte(tmp_path):
    counts = {"train": 20, "test": 2}  # 20 samples: three chunks for the pool
    a = _tree(tmp_path / "a", counts=counts, seed=7)
    b = _tree(tmp_path / "b", counts=counts, seed=7)
    _run(a, workers=1)
    _run(b, workers=2)
    assert (a / "stats.json").read_bytes() == (b / "stats.json").read_bytes()
    assert (a / "dataset.json").read_bytes() == (b / "dataset.json").read_bytes()


def test_other_splits_do_not_move_the_numbers(tmp_path):
    # same seed, train written first: identical train samples; the test split is all the last class
    probs = [0.0] * (len(ALL_PRESENT) - 1) + [1.0]  # the last id (computer)
    a = _tree(tmp_path / "a", counts={"train": 4, "test": 6}, class_probs={"test": probs}, seed=11)
    b = _tree(tmp_path / "b", counts={"train": 4}, seed=11)
    sa, sb = _run(a).stats, _run(b).stats
    assert (a / "stats.json").read_bytes() == (b / "stats.json").read_bytes()
    test_stats = _run(a, split="test").stats
    last = TABLE.by_id[ALL_PRESENT[-1]].train_id
    assert test_stats["class_pixel_counts"][last] == test_stats["pixels"]["labelled"] > 0
    assert test_stats["class_pixel_counts"] != sa["class_pixel_counts"] == sb["class_pixel_counts"]


# ---- bad input ---------------------------------------------------------------------------


def test_missing_and_corrupt_files_are_reported_and_skipped(tmp_path):
    root = _tree(tmp_path / "clean")
    rows = _rows(root)
    (root / rows[1]["image"]).unlink()
    (root / rows[3]["depth"]).write_bytes(b"not a png")
    st = _run(root).stats
    assert st["problems"] == sorted([
        {"file": rows[1]["image"], "problem": "missing"},
        {"file": rows[3]["depth"], "problem": "cannot be decoded"},
    ], key=lambda p: p["file"])
    assert st["samples"] == {"split": 5, "used": 3, "skipped": 2}
    assert st["pixels"]["total"] == 3 * 48 * 64  # skipped samples count nowhere
    # a skipped sample may be repaired without a manifest change: such results are never reused
    assert _run(root).reused == ""


def test_wrong_kind_of_label_file_is_reported(tmp_path):
    root = _tree(tmp_path / "clean")
    row = _rows(root)[0]
    ok, buf = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))
    (root / row["label_ids"]).write_bytes(buf.tobytes())
    st = _run(root).stats
    assert st["problems"] == [{"file": row["label_ids"],
                               "problem": "labelIds must be single-channel uint8, got 3 channel(s) of uint8"}]


def test_label_value_outside_class_table_is_an_error(tmp_path):
    root = _tree(tmp_path / "clean")
    row = _rows(root)[2]
    lab = cv2.imread(str(root / row["label_ids"]), cv2.IMREAD_UNCHANGED)
    lab[0, :3] = [200, 41, 200]
    cv2.imwrite(str(root / row["label_ids"]), lab)
    before = (root / "dataset.json").read_bytes()
    with pytest.raises(LabelValueError, match=rf"{row['label_ids']}: values 41, 200"):
        _run(root)
    assert not (root / "stats.json").exists()
    assert (root / "dataset.json").read_bytes() == before


def test_tree_errors(tmp_path):
    with pytest.raises(StatsInputError, match="dataset.json: not found"):
        _run(tmp_path)
    root = _tree(tmp_path / "clean")
    with pytest.raises(StatsInputError, match=r"no samples in split 'valid' \(splits: test, train, val\)"):
        _run(root, split="valid")
    text = (root / "manifest.csv").read_text()
    row = _rows(root)[0]
    (root / "manifest.csv").write_text(text.replace(row["image"], "../../etc/passwd"))
    with pytest.raises(StatsInputError, match="outside the tree"):
        _run(root)


def test_a_short_row_is_named_by_its_line_after_a_quoted_line_break(tmp_path):
    """A cell holding a line break (a scene name) makes the file longer than its row count: the
    short row's line is where it really is in manifest.csv, not its row index + 2."""
    root = _tree(tmp_path / "clean")
    lines = (root / "manifest.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    first = lines[1].rstrip("\n").split(",")
    first[header.index("scene")] = '"a\nb"'  # one row over two lines
    short = ",".join(lines[3].split(",")[:2]) + "\n"  # the third row, cut after its split
    text = lines[0] + ",".join(first) + "\n" + lines[2] + short + "".join(lines[4:])
    (root / "manifest.csv").write_text(text, encoding="utf-8")
    with pytest.raises(StatsInputError) as e:
        _run(root)
    assert str(e.value) == f"{root / 'manifest.csv'}: line 5 has fewer columns than the header (truncated?)"


def test_jpg_images_and_no_depth(tmp_path):
    root = _tree(tmp_path / "clean", depth=False)
    text = (root / "manifest.csv").read_text()
    for r in _rows(root):
        png = root / r["image"]
        jpg = png.with_suffix(".jpg")
        cv2.imwrite(str(jpg), cv2.imread(str(png)))
        png.unlink()
        text = text.replace(r["image"], r["image"][:-4] + ".jpg")
        text = text.replace(r["image_sha256"], hashlib.sha256(jpg.read_bytes()).hexdigest())
    (root / "manifest.csv").write_text(text)
    st = _run(root).stats
    ref = _numpy_reference(root)
    np.testing.assert_allclose(st["mean"], ref["mean"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(st["std"], ref["std"], rtol=0, atol=1e-9)
    assert st["depth_mean"] is None and st["depth_std"] is None and st["depth_valid_pixels"] == 0


# ---- outputs, re-runs, change detection --------------------------------------------------


def test_dataset_json_keeps_its_keys_and_order(tmp_path):
    root = _tree(tmp_path / "clean")
    before = json.loads((root / "dataset.json").read_text())
    st = _run(root).stats
    after = json.loads((root / "dataset.json").read_text())
    assert list(after) == list(before) + list(STATS_KEYS)
    assert all(after[k] == v for k, v in before.items())
    assert all(after[k] == st[k] for k in STATS_KEYS)
    assert after["stats_split"] == "train" and len(after["stats_sha256"]) == 64
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]


def test_rerun_is_a_noop_and_changes_are_detected(tmp_path):
    root = _tree(tmp_path / "clean")
    first = _run(root)
    assert first.reused == "" and first.written == [root / "stats.json", root / "dataset.json"]
    stats_bytes = (root / "stats.json").read_bytes()
    ds_bytes = (root / "dataset.json").read_bytes()
    again = _run(root, workers=2)
    assert again.reused == "stats" and again.written == []
    assert again.stats == first.stats
    assert (root / "stats.json").read_bytes() == stats_bytes
    assert (root / "dataset.json").read_bytes() == ds_bytes
    forced = _run(root, force=True)
    assert forced.reused == "" and forced.written == []
    assert (root / "stats.json").read_bytes() == stats_bytes

    # another method: weights re-derived from the stored sums, same bytes as a full pass
    quick = _run(root, method="inverse")
    assert quick.reused == "sums"
    quick_bytes = (root / "stats.json").read_bytes()
    _run(root, method="inverse", force=True)
    assert (root / "stats.json").read_bytes() == quick_bytes
    _run(root)
    assert (root / "stats.json").read_bytes() == stats_bytes

    # a changed sample (new file, new checksum in the manifest) is recomputed
    row = _rows(root)[0]
    lab_path = root / row["label_ids"]
    lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
    lab[:] = 1
    cv2.imwrite(str(lab_path), lab)
    text = (root / "manifest.csv").read_text()
    (root / "manifest.csv").write_text(
        text.replace(row["label_ids_sha256"], hashlib.sha256(lab_path.read_bytes()).hexdigest()))
    changed = _run(root)
    assert changed.reused == ""
    assert changed.stats["stats_sha256"] != first.stats["stats_sha256"]
    assert changed.stats["class_pixel_counts"] == _numpy_reference(root)["counts"]


# ---- CLI ---------------------------------------------------------------------------------


def _cli(*args):
    return CliRunner().invoke(main, ["stats", *map(str, args), "--no-progress"])


def test_cli_table_json_and_exit_codes(tmp_path):
    root = _tree(tmp_path / "clean")
    res = _cli(root, "--weights", "--workers", "1")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["train_id", "class", "pixels", "%", "images", "weight"]
    st = json.loads((root / "stats.json").read_text())
    wall = next(line for line in lines if line.split()[1:2] == ["wall"]).split()
    assert wall[2] == f"{st['class_pixel_counts'][0]:,}" and int(wall[4]) == st["class_image_counts"][0]
    assert float(wall[5]) == pytest.approx(st["class_weights"]["median-freq"][0], abs=1e-4)
    assert any(line.startswith("mean (RGB, 0-1):") for line in lines)
    assert any(line.startswith("depth (m,") for line in lines)
    assert "wrote" in res.stderr

    res = _cli(root, "--json", "--method", "enet")
    assert res.exit_code == 0, res.output
    assert res.stdout == (root / "stats.json").read_text()
    assert json.loads(res.stdout)["class_weights_default"] == "enet"

    res = _cli(root, "--json", "--method", "enet")
    assert "up to date" in res.stderr

    assert _cli(tmp_path / "nowhere").exit_code == 2
    assert _cli(root, "--method", "focal").exit_code == 2
    res = _cli(root, "--split", "valid")
    assert res.exit_code == 2 and "no samples in split 'valid'" in res.output
    # an evaluation split's statistics would become the training ones: said, not silent
    res = _cli(root, "--split", "val")
    assert res.exit_code == 0
    assert "warning: split 'val' is not 'train': its statistics replace the training ones" in res.stderr
    assert _cli(tmp_path).exit_code == 2  # no dataset.json
    assert _cli(root, "--workers", "0").exit_code == 2


def test_cli_problems_and_strict(tmp_path):
    root = _tree(tmp_path / "clean")
    row = _rows(root)[0]
    (root / row["depth"]).unlink()
    res = _cli(root)
    assert res.exit_code == 0
    assert f"problem: {root / row['depth']}: missing" in res.stderr
    assert "1 problem(s) reported, 1 sample(s) skipped" in res.stderr
    res = _cli(root, "--strict")
    assert res.exit_code == 1

    lab = cv2.imread(str(root / row["label_ids"]), cv2.IMREAD_UNCHANGED)
    lab[5, 5] = 99
    row2 = _rows(root)[1]
    cv2.imwrite(str(root / row2["label_ids"]), lab)
    res = _cli(root, "--force")
    assert res.exit_code == 1
    assert f"{root / row2['label_ids']}: values 99" in res.stderr


def test_real_kv2_frame(tmp_path):
    """A real kv2 photo and depth map (730x530) in a clean tree, through the CLI with a pool."""
    from conftest import realdata

    scene = realdata("GuardianWang-sunrgbd-toy", "images", "2014-12-18_11-31-54_260595134347")
    root = _tree(tmp_path / "clean", counts={"train": 9}, size=(530, 730), class_ids=[0, 1, 2, 5, 7, *ALL_PRESENT[-2:]])
    raw = cv2.imread(str(scene / "depth" / "0000144.png"), cv2.IMREAD_UNCHANGED)
    depth_mm = ((raw >> 3) | (raw << 13)).astype(np.uint16)  # SUN RGB-D: rotate right by 3 bits
    photo = cv2.imread(str(scene / "image" / "0000144.jpg"))
    text = (root / "manifest.csv").read_text()
    for r in _rows(root)[::2]:
        for key, arr in (("image", photo), ("depth", depth_mm)):
            cv2.imwrite(str(root / r[key]), arr)
            text = text.replace(r[f"{key}_sha256"], hashlib.sha256((root / r[key]).read_bytes()).hexdigest())
    (root / "manifest.csv").write_text(text)
    res = _cli(root, "--workers", "2", "--json")
    assert res.exit_code == 0, res.output
    st = json.loads(res.stdout)
    ref = _numpy_reference(root)
    assert st["class_pixel_counts"] == ref["counts"]
    np.testing.assert_allclose(st["mean"], ref["mean"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(st["std"], ref["std"], rtol=0, atol=1e-9)
    assert st["depth_mean"] == pytest.approx(ref["depth_mean"], abs=1e-9)
    assert st["depth_std"] == pytest.approx(ref["depth_std"], abs=1e-9)
    assert 0.5 < st["depth_mean"] < 8.0


def test_large_image_histogram_path_gives_the_same_bytes(tmp_path, monkeypatch):
    """Images past 2**24 pixels use numpy's bincount (cv2 counts in float32): same result."""
    import sunrgbd_tools.stats as stats_mod

    a = _tree(tmp_path / "a", seed=5)
    b = _tree(tmp_path / "b", seed=5)
    _run(a)
    monkeypatch.setattr(stats_mod, "_HIST_EXACT", 1)
    _run(b)
    assert (a / "stats.json").read_bytes() == (b / "stats.json").read_bytes()


def test_damaged_png_leaves_no_library_line_on_the_console(tmp_path, capfd):
    """libpng writes `libpng error: Read Error` / `IDAT: CRC error` straight to fd 2 for a
    truncated or damaged PNG, from the stats and verify workers; it used to reach the console
    between our `problem:` lines. The one line per file is ours (parallel._quietly: fd 2 on
    os.devnull in pool workers; tests/test_worker_stderr.py checks it in a fresh process)."""
    from sunrgbd_tools.convert.verify import verify_tree

    root = _tree(tmp_path / "clean")
    rows = _rows(root)
    lab = root / rows[0]["label_ids"]
    lab.write_bytes(lab.read_bytes()[: lab.stat().st_size // 2])  # truncated
    img = root / rows[1]["image"]
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit inside the compressed pixels
    img.write_bytes(bytes(data))
    capfd.readouterr()
    st = _run(root).stats
    assert st["samples"]["skipped"] == 2
    assert {p["file"] for p in st["problems"]} == {rows[0]["label_ids"], rows[1]["image"]}
    problems = verify_tree(root, workers=1).problems
    assert any(p.startswith(f"{lab}: ") for p in problems) and any(p.startswith(f"{img}: ") for p in problems)
    err = capfd.readouterr().err
    assert "libpng" not in err and err == ""
