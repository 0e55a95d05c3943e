"""Fuzz suite for segtrain's readers (issue 15): dataset.json, config YAML and checkpoints.

Each reader gets >= 1,000 generated hostile inputs (mutations of a valid file, random values
of every JSON/YAML type, random and corrupted bytes) and must either accept the input or
raise SegtrainError with one line that names the file; never another exception, and the
input file is never changed. Hypothesis runs derandomized (the same inputs on every run) and
without its example database, so the suite writes nothing outside pytest's tmp folders.
"""

from __future__ import annotations

import collections
import copy
import io
import json
import math
import os
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from treebuilder import write_clean_tree

from segtrain.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from segtrain.config import TrainConfig, build_config, load_config_file
from segtrain.data import load_dataset_info
from segtrain.utils import SegtrainError

pytestmark = pytest.mark.slow

N = 1000
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**20, max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["1e-4", "nan", "-1", "0", "255", "256", "480x640", "x", "", "true"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@contextmanager
def no_warnings():
    """No library warning reaches the console (PyTorch's pickle-protocol warnings, ...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not caught, [str(w.message) for w in caught]


def check_one_line(err: SegtrainError, path: Path, kind: str) -> None:
    msg = str(err)
    assert "\n" not in msg and str(path) in msg and len(msg) < 1000, msg
    assert "Traceback" not in msg and "weights_only" not in msg
    COUNTS[kind]["rejected"] += 1


# ---------------------------------------------------------------------------- dataset.json


@pytest.fixture(scope="module")
def valid_meta(tmp_path_factory):
    tree = write_clean_tree(tmp_path_factory.mktemp("fuzz-tree") / "data", counts={"train": 1}, size=(8, 8))
    meta = json.loads((tree.root / "dataset.json").read_text())
    meta["mean"], meta["std"] = [0.5, 0.5, 0.5], [0.2, 0.2, 0.2]
    meta["class_weights"] = {"median-freq": [1.0] * meta["num_classes"]}
    return meta


def _paths(meta):
    """Every place in the document a mutation may hit (top-level keys and class fields)."""
    out = [(k,) for k in meta]
    for i in range(min(3, len(meta["classes"]))):
        out += [("classes", i, f) for f in meta["classes"][i]]
    return out + [("classes", 0), ("mean", 1), ("std", 0), ("image_size", 0)]


def _set(doc, path, value):
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value


@st.composite
def dataset_docs(draw, meta):
    """A valid dataset.json with 1-3 values replaced or removed, or bytes that are not one."""
    mode = draw(st.sampled_from(["mutate", "mutate", "mutate", "bytes", "truncate"]))
    text = json.dumps(meta)
    if mode == "bytes":
        return draw(st.binary(max_size=200))
    if mode == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))].encode()
    doc = copy.deepcopy(meta)
    for path in draw(st.lists(st.sampled_from(_paths(meta)), min_size=1, max_size=3)):
        try:
            if draw(st.booleans()) and len(path) == 1:
                doc.pop(path[0], None)
            else:
                _set(doc, path, draw(values))
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the parent
            pass
    return json.dumps(doc, allow_nan=True).encode()


def test_fuzz_dataset_json(valid_meta, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-dj")
    path = root / "dataset.json"

    @FUZZ
    @given(data=dataset_docs(valid_meta))
    @example(data=b"[" * 100_000)  # nested too deeply for the JSON parser
    @example(data=b'{"classes": [], "ignore_index": 1' + b"1" * 5000 + b"}")  # a 5,000-digit int
    @example(data=b"\xff\xfe not utf-8")
    def run(data):
        path.write_bytes(data)
        with no_warnings():
            try:
                info = load_dataset_info(root)
            except SegtrainError as e:
                check_one_line(e, path, "dataset.json")
            else:
                assert info.num_classes == len(info.classes) and all(math.isfinite(v) for v in info.std)
                COUNTS["dataset.json"]["accepted"] += 1
        assert path.read_bytes() == data  # the reader never changes its input
        assert os.listdir(root) == ["dataset.json"]  # nor writes anything

    run()
    assert sum(COUNTS["dataset.json"].values()) >= N


# ---------------------------------------------------------------------------- config YAML

FIELDS = [f for f in TrainConfig.__dataclass_fields__]


@st.composite
def config_texts(draw):
    mode = draw(st.sampled_from(["mapping", "mapping", "mapping", "text", "tags"]))
    if mode == "text":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if mode == "tags":
        tag = draw(st.sampled_from(["!!python/object:os.system", "!!binary", "!!set", "!!timestamp",
                                    "!!float", "!!int", "&a [*a]", "!!python/name:os.system"]))
        return f"{draw(st.sampled_from(FIELDS))}: {tag} {draw(st.text(max_size=10))}\n".encode(
            "utf-8", "surrogatepass")
    keys = st.sampled_from(FIELDS) | st.text(max_size=6)
    plausible = (st.integers(-3, 300) | st.floats(-1, 1e3) | st.booleans()
                 | st.sampled_from(["adam", "sgd", "none", "basic", "cpu", "head", "32x48", "1e-3", "ce"]))
    doc = draw(st.dictionaries(keys, plausible | values, max_size=4))
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def test_fuzz_config_yaml(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-yaml")
    path = root / "run.yaml"

    @FUZZ
    @given(data=config_texts())
    @example(data=b"epochs: banana\n")
    @example(data=b"lr: 1e-4\n")
    @example(data=b"[" * 50_000)
    @example(data=b"seed: " + b"9" * 5000 + b"\n")
    def run(data):
        path.write_bytes(data)
        try:
            with no_warnings():
                layer = load_config_file(path)
        except SegtrainError as e:
            check_one_line(e, path, "config")
        else:
            # what `segtrain run --config` does next: flags over the file, then validate
            try:
                cfg = build_config(TrainConfig, layer, {"data": "d", "out": str(root / "o")})
                cfg.validate()
            except SegtrainError as e:
                assert "\n" not in str(e)
                COUNTS["config"]["rejected after merge"] += 1
            else:
                assert math.isfinite(cfg.lr) and cfg.lr > 0 and cfg.epochs >= 1
                COUNTS["config"]["accepted"] += 1
        assert path.read_bytes() == data and os.listdir(root) == ["run.yaml"]

    run()
    assert sum(COUNTS["config"].values()) >= N


# ---------------------------------------------------------------------------- checkpoints


class Foreign:  # an object weights_only refuses to unpickle
    def __init__(self, v=0):
        self.v = v


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def valid_ckpt() -> bytes:
    return _saved({"format": CHECKPOINT_FORMAT, "model_name": "unet_small", "model": {"w": torch.zeros(4)},
                   "classes": [], "epoch": 1})


tensors = st.builds(lambda n: torch.arange(n, dtype=torch.float32), st.integers(0, 8))
pickled = st.recursive(scalars.filter(lambda v: not isinstance(v, int) or abs(v) < 2**63) | tensors
                       | st.builds(Foreign) | st.builds(collections.Counter, st.text(max_size=3)),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=3),
                       max_leaves=8)


@st.composite
def checkpoint_bytes(draw, valid):
    mode = draw(st.sampled_from(["saved", "saved", "flip", "truncate", "bytes", "zip"]))
    if mode == "saved":  # torch.save of anything: containers, tensors, foreign objects
        obj = draw(pickled)
        if draw(st.booleans()):
            obj = {"format": CHECKPOINT_FORMAT, "model": obj}
        return _saved(obj)
    if mode == "flip":  # a few corrupted bytes anywhere in a valid checkpoint
        data = bytearray(valid)
        for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4)):
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if mode == "truncate":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if mode == "zip":  # a zip archive that is not torch's layout
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name in draw(st.lists(st.sampled_from(["archive/data.pkl", "data.pkl", "archive/version",
                                                       "x/data/0", "a"]), max_size=3, unique=True)):
                z.writestr(name, draw(st.binary(max_size=40)))
        return buf.getvalue()
    return draw(st.sampled_from([b"", b"PK", b"\x80", b"\x80\x02"])) + draw(st.binary(max_size=100))


def test_fuzz_checkpoints(valid_ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-ckpt")
    path = root / "last.pt"

    @FUZZ
    @given(data=checkpoint_bytes(valid_ckpt))
    @example(data=b"hello world\n")
    @example(data=_saved({"format": CHECKPOINT_FORMAT, "f": Foreign()}))
    def run(data):
        path.write_bytes(data)
        with no_warnings():
            try:
                ckpt = load_checkpoint(path)
            except SegtrainError as e:
                check_one_line(e, path, "checkpoint")
            else:
                assert ckpt["format"] == CHECKPOINT_FORMAT
                COUNTS["checkpoint"]["accepted"] += 1
        assert path.read_bytes() == data and os.listdir(root) == ["last.pt"]

    run()
    assert sum(COUNTS["checkpoint"].values()) >= N


def test_zz_fuzz_counts(capsys):
    """Print the counts (docs/training.md reports them)."""
    with capsys.disabled():
        for kind, c in sorted(COUNTS.items()):
            print(f"\nfuzz {kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
