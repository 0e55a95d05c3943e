"""The clean-tree contract as a Dataset: manifest and manifest-less (Cityscapes glob) trees."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch
from treebuilder import write_clean_tree

from segtrain.data import DataError, EpochSampler, SegDataset, list_samples, load_dataset_info


@pytest.fixture()
def tree(tmp_path):
    return write_clean_tree(tmp_path / "data", counts={"train": 3, "val": 2}, size=(32, 48),
                            sensors=("kv2", "kv1"))


def test_manifest_and_glob_give_the_same_samples(tree):
    info = load_dataset_info(tree.root)
    by_manifest = list_samples(info, "train")
    (tree.root / "manifest.csv").unlink()
    by_glob = list_samples(info, "train")
    key = lambda s: (s.id, s.sensor, s.image, s.label, s.depth)  # noqa: E731
    assert sorted(map(key, by_manifest)) == sorted(map(key, by_glob))
    assert {s.sensor for s in by_glob} == {"kv1", "kv2"}


def test_label_ids_are_mapped_through_the_class_table_without_train_id_files(tree):
    info = load_dataset_info(tree.root)
    with_train_ids = [SegDataset(info, list_samples(info, "val"))[i]["mask"] for i in range(2)]
    (tree.root / "manifest.csv").unlink()
    for p in (tree.root / "gtFine").rglob("*_labelTrainIds.png"):
        p.unlink()
    samples = list_samples(info, "val")
    assert {s.label_kind for s in samples} == {"ids"}
    ds = SegDataset(info, samples)
    order = {s.id: i for i, s in enumerate(samples)}
    for sid, expected in zip(tree.ids["val"], with_train_ids, strict=True):
        assert torch.equal(ds[order[sid]]["mask"], expected)


def test_items_are_uint8_and_normalisation_falls_back_to_imagenet_with_a_warning(tree, caplog):
    from types import SimpleNamespace

    from segtrain.runtime import runtime_for_dataset

    with caplog.at_level(logging.WARNING, logger="segtrain"):
        info = load_dataset_info(tree.root)
    # reading the tree is not normalising with it (eval/predict use the checkpoint's values)
    assert info.normalization_source == "imagenet" and "ImageNet" not in caplog.text
    run_cfg = SimpleNamespace(inputs="rgb", amp=False, channels_last=False, depth_encoding="metres")
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        runtime_for_dataset(run_cfg, info, torch.device("cpu"))
        runtime_for_dataset(run_cfg, info, torch.device("cpu"))  # `bench --model all`: once, not per model
    assert caplog.text.count("dataset.json has no mean/std (run `sunrgbd stats`); normalising with ImageNet") == 1
    item = SegDataset(info, list_samples(info, "train"), with_depth=True)[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 32, 48)
    assert item["mask"].dtype == torch.uint8 and item["mask"].shape == (32, 48)
    assert item["depth"].dtype == torch.float32 and 0 <= float(item["depth"].max()) <= 8.0
    meta = json.loads((tree.root / "dataset.json").read_text())
    meta.update(mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    (tree.root / "dataset.json").write_text(json.dumps(meta))
    info = load_dataset_info(tree.root)
    assert info.mean == (0.5, 0.4, 0.3) and info.normalization_source == "dataset.json"


def test_sampler_is_a_function_of_seed_and_epoch():
    a, b = EpochSampler(10, True, seed=3), EpochSampler(10, True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert sorted(i for i, _ in a) == list(range(10))


def test_bad_class_table_and_labels(tree):
    meta = json.loads((tree.root / "dataset.json").read_text())
    broken = dict(meta, num_classes=12)
    (tree.root / "dataset.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=f"num_classes is 12 but the class table has {meta['num_classes']}"):
        load_dataset_info(tree.root)
    (tree.root / "dataset.json").write_text(json.dumps(meta))
    info = load_dataset_info(tree.root)
    (tree.root / "manifest.csv").unlink()
    for p in (tree.root / "gtFine").rglob("*_labelTrainIds.png"):
        p.unlink()
    lab = next((tree.root / "gtFine" / "train").rglob("*_labelIds.png"))
    m = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
    m[0, 0] = 200  # no class has id 200
    cv2.imwrite(str(lab), m)
    samples = list_samples(info, "train")
    ds = SegDataset(info, samples)
    idx = next(i for i, s in enumerate(samples) if s.label == lab)
    with pytest.raises(DataError, match=r"label id\(s\) \[200\] not in the class table"):
        ds[idx]
    assert np.all(info.id_to_train_id[[0, 1, 39]] == [255, 0, 38])


def test_epoch_batches_are_the_per_epoch_batches_back_to_back():
    """One iterator over epochs 2..4 yields exactly what a per-epoch loader would: each epoch's
    own order and seeds, its partial tail dropped, the cap applied per epoch."""
    from segtrain.data import EpochBatches

    def per_epoch(epoch, bs, drop_last, cap=0):
        s = EpochSampler(11, shuffle=True, seed=5, drop_tail=drop_last)
        s.set_epoch(epoch)
        keys = list(s)
        stop = len(keys) - len(keys) % bs if drop_last and len(keys) > bs else len(keys)
        batches = [keys[i:i + bs] for i in range(0, stop, bs)]
        return batches[:cap] if cap else batches

    for bs, drop_last, cap in ((4, True, 0), (4, False, 0), (20, True, 0), (3, True, 2)):
        spans = EpochBatches(EpochSampler(11, shuffle=True, seed=5, drop_tail=drop_last), bs, drop_last,
                             range(2, 5), max_batches=cap)
        expected = [b for e in range(2, 5) for b in per_epoch(e, bs, drop_last, cap)]
        assert list(spans) == expected and len(spans) == len(expected) == 3 * spans.per_epoch
    assert EpochBatches(EpochSampler(11, True), 20, True, range(1, 2)).per_epoch == 1  # the only batch stays
