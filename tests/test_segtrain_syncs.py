"""Host syncs in the training and evaluation loops (issue 11), counted on the CPU.

On a GPU every read of a device tensor's value (`.item()`, `.tolist()`, `bool(t)`, a
boolean-mask index, `bincount`, …) makes the host wait for the device, so the next batch's
copy and kernel launches no longer overlap the running step. Here each such method and
function is wrapped, and a call is charged to the first stack frame outside torch: calls
charged to segtrain's own code (not the data loader's host-side work) are the syncs the
loops would cause on a GPU. The counts must not grow with the number of steps.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from treebuilder import write_clean_tree

from segtrain import engine
from segtrain.config import TrainConfig
from segtrain.data import eval_dataset, load_dataset_info, make_loader, train_dataset
from segtrain.engine import evaluate, train_one_epoch, train_step
from segtrain.losses import LOSSES, build_loss
from segtrain.models import MODELS, create_model
from segtrain.optim import build_optimizer
from segtrain.runtime import Runtime

TORCH_DIR = str(Path(torch.__file__).parent)
SEGTRAIN_DIR = str(Path(engine.__file__).parent)
LOADER_FILE = str(Path(SEGTRAIN_DIR) / "data.py")
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
DATA_DEPENDENT = ("nonzero", "bincount", "unique", "masked_select", "argwhere")  # shape needs the values


def _charged_to() -> tuple[str, int] | None:
    """(file, line) of the first frame outside torch and this module, if it is segtrain's."""
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(TORCH_DIR) or f.f_code.co_filename == __file__):
        f = f.f_back
    if f is None or not f.f_code.co_filename.startswith(SEGTRAIN_DIR) or f.f_code.co_filename == LOADER_FILE:
        return None
    return f.f_code.co_filename, f.f_lineno


@contextmanager
def count_syncs(monkeypatch):
    found: list[tuple[str, str, int]] = []

    def wrap(owner, name, real, only=None):
        def wrapper(*args, **kwargs):
            if only is None or only(*args):
                where = _charged_to()
                if where is not None:
                    found.append((name, *where))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    for name in READS:
        wrap(torch.Tensor, name, getattr(torch.Tensor, name))
    for name in DATA_DEPENDENT:
        wrap(torch, name, getattr(torch, name))
        if hasattr(torch.Tensor, name):
            wrap(torch.Tensor, name, getattr(torch.Tensor, name))

    def bool_index(t, key):
        keys = key if isinstance(key, tuple) else (key,)
        return any(isinstance(k, torch.Tensor) and k.dtype == torch.bool and k.dim() > 0 for k in keys)

    wrap(torch.Tensor, "__getitem__", torch.Tensor.__getitem__, only=bool_index)
    try:
        yield found
    finally:
        monkeypatch.undo()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("syncs") / "data",
                            counts={"train": 8, "val": 4}, size=(32, 48))


def _setup(tree, optimizer="adamw", loss="ce+dice", weighted=False):
    torch.manual_seed(0)
    info = load_dataset_info(tree.root)
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=True, channels_last=True)
    model = create_model("unet_small", info.num_classes, base_width=4, depth=2)
    cfg = TrainConfig(model="unet_small", data=str(tree.root), out="unused", optimizer=optimizer, lr=1e-3)
    opt = build_optimizer(cfg, model.parameters())
    weight = torch.linspace(0.5, 2.0, info.num_classes) if weighted else None
    return info, rt, model, opt, build_loss(loss, info.num_classes, info.ignore_index, weight)


# every loss, and each that uses class weights with them too (weighted CE indexed by a boolean mask)
@pytest.mark.parametrize(("loss", "weighted"), [(name, False) for name in sorted(LOSSES)]
                         + [(name, True) for name in sorted(LOSSES) if LOSSES[name].uses_weights])
def test_a_training_step_never_reads_the_device(tree, monkeypatch, loss, weighted):
    info, rt, model, opt, loss_fn = _setup(tree, loss=loss, weighted=weighted)
    loader, _ = make_loader(train_dataset(info, "train", "basic"), 4, True, 0, 0, rt.device, drop_last=True)
    batch = next(iter(loader))
    model.train()
    with count_syncs(monkeypatch) as found:
        for _ in range(3):
            train_step(model, *rt.train_batch(batch), loss_fn, opt, rt.make_scaler(), rt, grad_clip=1.0)
    assert found == []


def test_an_epoch_reads_the_device_only_at_its_checks(tree, monkeypatch):
    info, rt, model, opt, loss_fn = _setup(tree)
    ds = train_dataset(info, "train", "basic")
    counts = {}
    for n_batches, check_every in ((2, 100), (8, 100), (8, 3)):
        loader, _ = make_loader(ds, 1, True, 0, 0, rt.device, drop_last=True, epochs=range(1, 2),
                                max_batches=n_batches)
        with count_syncs(monkeypatch) as found:
            train_one_epoch(model, iter(loader), n_batches, loss_fn, opt, rt.make_scaler(), None, rt, 1, 0,
                            0.0, progress=False, check_every=check_every)
        counts[n_batches, check_every] = len(found)
    # one read per check (every 3 steps and at the end) and one for the mean: never per step
    assert counts == {(2, 100): 2, (8, 100): 2, (8, 3): 4}


def test_evaluation_reads_the_device_only_at_its_end(tree, monkeypatch):
    info, rt, model, _, loss_fn = _setup(tree)
    ds = eval_dataset(info, "val")
    counts = []
    for bs in (4, 1):  # one batch, then four
        loader, _ = make_loader(ds, bs, False, 0, 0, rt.device)
        with count_syncs(monkeypatch) as found:
            res = evaluate(model, loader, rt, info.num_classes, loss_fn, progress=False)
        counts.append(len(found))
        assert res.confusion.sum() > 0
    assert counts[0] == counts[1]


def test_an_optimizer_without_a_fused_kernel_reads_once_per_step(tree, monkeypatch):
    info, rt, model, opt, loss_fn = _setup(tree, optimizer="rmsprop")
    assert not engine.supports_device_skip(opt)
    loader, _ = make_loader(train_dataset(info, "train", "none"), 4, False, 0, 0, rt.device)
    batch = next(iter(loader))
    with count_syncs(monkeypatch) as found:
        for _ in range(3):
            train_step(model, *rt.train_batch(batch), loss_fn, opt, rt.make_scaler(), rt)
    assert [name for name, *_ in found] == ["__bool__"] * 3


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_a_non_finite_loss_leaves_weights_and_optimizer_state_alone(tree, optimizer):
    info, rt, model, opt, loss_fn = _setup(tree, optimizer=optimizer)
    loader, _ = make_loader(train_dataset(info, "train", "none"), 4, False, 0, 0, rt.device)
    batch = next(iter(loader))
    model.train()
    scaler = rt.make_scaler()
    train_step(model, *rt.train_batch(batch), loss_fn, opt, scaler, rt)  # optimizer state exists
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    state = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in opt.state.items()}

    def poisoned(logits, target):
        return loss_fn(logits, target) * float("inf")

    model.eval()  # BatchNorm statistics are not what is checked here
    value = train_step(model, *rt.train_batch(batch), poisoned, opt, scaler, rt, grad_clip=1.0)
    assert not torch.isfinite(value)
    for k, v in model.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k
    for p, s in opt.state.items():
        for k, v in s.items():
            assert torch.equal(v, state[id(p)][k]) if torch.is_tensor(v) else v == state[id(p)][k], k
    model.train()
    good = train_step(model, *rt.train_batch(batch), loss_fn, opt, scaler, rt)
    assert torch.isfinite(good)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k in before)


@pytest.mark.parametrize(("model_name", "fusion", "options"), [
    ("unet_small", "early", {"base_width": 4, "depth": 2}),
    ("fcn8s", "mid", {"backbone": "resnet18", "base_width": 8}),
])
def test_an_rgbd_training_step_never_reads_the_device(tree, monkeypatch, model_name, fusion, options):
    torch.manual_seed(0)
    info = load_dataset_info(tree.root)
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, False, False, "rgbd", "inverse", (2.0, 1.0))
    model = create_model(model_name, info.num_classes, inputs="rgbd", fusion=fusion, **options).train()
    cfg = TrainConfig(model=model_name, data=str(tree.root), out="unused", lr=1e-3)
    opt = build_optimizer(cfg, model.parameters())
    loss_fn = build_loss("ce", info.num_classes)
    loader, _ = make_loader(train_dataset(info, "train", "basic", with_depth=True), 2, True, 0, 0, rt.device,
                            drop_last=True)
    batch = next(iter(loader))
    with count_syncs(monkeypatch) as found:
        for _ in range(2):
            train_step(model, *rt.train_batch(batch), loss_fn, opt, rt.make_scaler(), rt)
    assert found == []


@pytest.mark.parametrize("key", list(MODELS))
def test_every_model_trains_without_reading_the_device(tree, monkeypatch, key):
    from test_segtrain_models import build  # the tiny configuration of each registered model

    info, rt, _, _, loss_fn = _setup(tree, loss="ce")
    model = build(key, info.num_classes).train()
    opt = build_optimizer(TrainConfig(model=key, data=str(tree.root), out="unused"), model.parameters())
    loader, _ = make_loader(train_dataset(info, "train", "none"), 2, True, 0, 0, rt.device, drop_last=True)
    batch = next(iter(loader))
    with count_syncs(monkeypatch) as found:
        train_step(model, *rt.train_batch(batch), loss_fn, opt, rt.make_scaler(), rt, grad_clip=1.0)
    assert found == []
