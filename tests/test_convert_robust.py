"""Bad input to `sunrgbd convert` and `verify` (issue 15): unreadable folders and scenes the
split lists but the tree lacks are reported and counted, samples without a labelled pixel
are skipped unless asked for, and usage errors exit 2."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from sunrgbd_tools.cli.main import main
from sunrgbd_tools.convert.pipeline import ConvertConfig, convert
from sunrgbd_tools.synthetic.generator import make_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    make_sample(root, scenes=10, seed=0, quirks=False, size=(53, 73))
    return root


def _copy(sample: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    return raw


def _manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _unprivileged(args: list[str]) -> subprocess.CompletedProcess:
    """Run `sunrgbd ARGS` as a user whom permissions stop: as root, without the
    capabilities that let root read anything (setpriv), else as we are."""
    cmd = [sys.executable, "-c", "import sys; from sunrgbd_tools.cli.main import main; sys.exit(main())", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be made to bite")
        caps = "-dac_override,-dac_read_search"
        cmd = [setpriv, "--bounding-set", caps, "--inh-caps", caps, *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if "setpriv" in res.stderr and res.returncode != 0 and "Traceback" not in res.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {res.stderr.strip()}")
    return res


def test_unreadable_scene_and_subset_folders_are_reported_and_counted(sample, tmp_path):
    raw = _copy(sample, tmp_path)
    base = convert(ConvertConfig(src=str(raw), out=str(tmp_path / "all")), workers=1)
    assert base.skipped == 0 and base.samples > 4
    kinect = sorted((raw / "SUNRGBD/kv2/kinect2data").iterdir())
    scene = kinect[0]
    align = raw / "SUNRGBD/kv2/align_kv2"
    n_align = len(list(align.iterdir()))
    assert n_align >= 1
    scene.chmod(0)
    align.chmod(0)
    try:
        res = _unprivileged(["convert", "--src", str(raw), "--out", str(tmp_path / "some"), "--workers", "1",
                             "--strict"])
    finally:
        scene.chmod(stat.S_IRWXU)
        align.chmod(stat.S_IRWXU)
    assert res.returncode == 1, res.stderr
    err = res.stderr
    assert "Traceback" not in err
    assert f"problem: {scene}: cannot read folder (Permission denied); 1 scene(s)" in err
    assert f"problem: {align}: cannot read folder (Permission denied); {n_align} scene(s)" in err
    assert f"wrote {base.samples - 1 - n_align} samples" in res.stdout
    assert f"skipped {1 + n_align}," in res.stdout
    doc = json.loads((tmp_path / "some" / "dataset.json").read_text())
    assert doc["problems"]["skipped_samples"] == 1 + n_align


def test_scenes_listed_in_the_split_but_absent_are_counted(sample, tmp_path):
    raw = _copy(sample, tmp_path)
    kinect = sorted((raw / "SUNRGBD/kv2/kinect2data").iterdir())
    shutil.rmtree(kinect[0])
    shutil.rmtree(raw / "SUNRGBD/kv2/align_kv2")
    n_align = len(list((sample / "SUNRGBD/kv2/align_kv2").iterdir()))
    s = convert(ConvertConfig(src=str(raw), out=str(tmp_path / "out")), workers=1)
    assert s.skipped == 1 + n_align
    assert f"{kinect[0]}: scene listed in SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat not found (scene skipped)" \
        in s.problems
    assert any(p.startswith(f"{raw / 'SUNRGBD/kv2/align_kv2'}: not found; {n_align} scene(s)") for p in s.problems)
    res = CliRunner().invoke(main, ["convert", "--src", str(raw), "--out", str(tmp_path / "out"), "--strict"])
    assert res.exit_code == 1  # a re-run (resumed) reports the same and exits 1 under --strict


def test_frames_null_without_seg_mat_is_skipped_unless_kept(sample, tmp_path):
    raw = _copy(sample, tmp_path)
    scene = sorted((raw / "SUNRGBD/kv2/kinect2data").iterdir())[1]
    (scene / "seg.mat").unlink(missing_ok=True)
    index = scene / "annotation2Dfinal" / "index.json"
    index.parent.mkdir(exist_ok=True)
    index.write_text('{"name":"x","frames":null,"objects":[{"name":"wall"}]}')
    res = CliRunner().invoke(main, ["convert", "--src", str(raw), "--out", str(tmp_path / "a"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert f"{index}: no polygons (frames is null)" in res.output
    assert f"{scene}: no labelled pixel in its polygons labels" in res.output and "(scene skipped)" in res.output
    assert "skipped 1," in res.output
    assert scene.name not in {r["scene"].rsplit("/", 1)[1] for r in _manifest(tmp_path / "a")}
    res = CliRunner().invoke(main, ["convert", "--src", str(raw), "--out", str(tmp_path / "b"), "--workers", "1",
                                    "--keep-unlabelled", "--strict"])
    assert res.exit_code == 1 and "skipped 0," in res.output and "written all unlabelled" in res.output
    (row,) = [r for r in _manifest(tmp_path / "b") if r["scene"].endswith(scene.name)]
    label = cv2.imread(str(tmp_path / "b" / row["label_ids"]), cv2.IMREAD_UNCHANGED)
    assert label.max() == 0 and "no labelled pixel" in row["problems"]
    doc = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert doc["created_with"]["command"].endswith("--keep-unlabelled")


def test_verify_of_a_folder_that_is_not_a_tree_is_a_usage_error(tmp_path):
    (tmp_path / "notatree").mkdir()
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "notatree")])
    assert res.exit_code == 2 and "not a clean tree (no dataset.json)" in res.output


def test_unreadable_jpeg_and_depth_skip_their_scene_with_the_plain_cause(sample, tmp_path):
    raw = _copy(sample, tmp_path)
    a, b, c = sorted((raw / "SUNRGBD/kv2/kinect2data").iterdir())[:3]
    jpg = sorted((a / "image").glob("*.jpg"))[0]
    png = sorted((b / "depth").glob("*.png"))[0]
    txt = c / "scene.txt"
    for p in (jpg, png, txt):
        p.chmod(0)
    res = _unprivileged(["convert", "--src", str(raw), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert res.returncode == 0, res.stderr
    assert "unexpected" not in res.stderr and "Traceback" not in res.stderr
    assert f"problem: {jpg}: cannot read (Permission denied) (scene skipped)" in res.stderr
    assert f"problem: {png}: cannot read (Permission denied) (scene skipped)" in res.stderr
    assert f"problem: {txt}: cannot read (Permission denied)" in res.stderr
    assert "skipped 2," in res.stdout
    rows = {r["scene"] for r in _manifest(tmp_path / "out")}
    assert not any(r.endswith((a.name, b.name)) for r in rows) and any(r.endswith(c.name) for r in rows)


def test_folder_name_that_is_not_utf8_is_reported_not_fatal(sample, tmp_path):
    """A stray Latin-1 folder (`café` copied from elsewhere) in the raw tree crashed convert with a
    traceback at the very end (writing problems.txt) and the audit with a bare codec error. No
    SUN RGB-D name is outside ASCII: the folder is reported under an escaped name and skipped."""
    raw = _copy(sample, tmp_path)
    kinect = raw / "SUNRGBD/kv2/kinect2data"
    stray = os.path.join(os.fsencode(kinect), b"caf\xe9")
    shutil.copytree(sorted(kinect.iterdir())[0], os.fsdecode(stray))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["convert", "--src", str(raw), "--out", str(out), "--workers", "1",
                                    "--no-progress", "--strict"])
    line = f"{kinect}/caf\\xe9: folder name is not UTF-8 (not walked); 0 scene(s) of " \
           "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat inside it, and any others, skipped"
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert f"problem: {line}" in res.stderr.splitlines()
    assert line in (out / "problems.txt").read_text(encoding="utf-8").splitlines()
    res = CliRunner().invoke(main, ["mapping", "check", str(raw)])
    assert res.exit_code == 0 and f"problem: {kinect}/caf\\xe9: folder name is not UTF-8" in res.stderr
    res = CliRunner().invoke(main, ["mapping", "audit", "--src", str(raw), "--out", str(tmp_path / "audit"),
                                    "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
