"""Fine-tuning: --pretrained in the timm / torchvision / facebookresearch layouts (PyTorch and
safetensors files), --train-parts freezing weights and BatchNorm statistics, --init-from."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.data import load_dataset_info, make_loader, train_dataset
from segtrain.engine import train, train_step
from segtrain.losses import build_loss
from segtrain.models import count_trainable, create_model
from segtrain.models.pretrained import SafetensorsFile, load_encoder_weights
from segtrain.runtime import Runtime, seed_everything
from segtrain.utils import SegtrainError

RESNET = {"backbone": "resnet18", "base_width": 8, "aspp_channels": 16, "low_level_channels": 8,
          "decoder_channels": 16}
CONVNEXT = {"depths": [1, 2, 1, 1], "dims": [8, 16, 32, 64], "channels": 16}



def write_safetensors(path, tensors: dict[str, torch.Tensor]) -> None:
    """An independent writer of the format (header length, JSON header, raw little-endian data)."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for k, t in tensors.items():
        raw = t.contiguous().view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 \
            else t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def to_torchvision_convnext(sd: dict) -> dict:
    """Our (timm) ConvNeXt names -> torchvision's (features.N…, block.K, layer_scale (C,1,1))."""
    out = {}
    for k, v in sd.items():
        if k.startswith("out_norms."):
            continue  # segmentation-only: not in an ImageNet checkpoint
        k2 = re.sub(r"^stem\.", "features.0.", k)
        k2 = re.sub(r"^stages\.(\d+)\.downsample\.", lambda m: f"features.{2 * int(m.group(1))}.", k2)
        m = re.match(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$", k2)
        if m:
            rest = {"conv_dw": "block.0", "norm": "block.2", "mlp.fc1": "block.3", "mlp.fc2": "block.5"}
            name, leaf = m.group(3).rsplit(".", 1) if m.group(3) != "gamma" else ("gamma", "")
            if name == "gamma":
                k2, v = f"features.{2 * int(m.group(1)) + 1}.{m.group(2)}.layer_scale", v.reshape(-1, 1, 1)
            else:
                k2 = f"features.{2 * int(m.group(1)) + 1}.{m.group(2)}.{rest[name]}.{leaf}"
        out[k2] = v
    out["classifier.0.weight"], out["classifier.2.weight"] = torch.ones(64), torch.zeros(10, 64)
    return out


def to_facebook_convnext(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if k.startswith("out_norms."):
            continue
        k2 = re.sub(r"^stem\.", "downsample_layers.0.", k)
        k2 = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", k2)
        k2 = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", k2)
        k2 = k2.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2")
        out[k2] = v
    out.update({"norm.weight": torch.ones(64), "norm.bias": torch.zeros(64), "head.weight": torch.zeros(10, 64),
                "head.bias": torch.zeros(10)})
    return out


def assert_encoder_equal(a, b, skip=()):
    for k, v in a.encoder.state_dict().items():
        if not k.startswith(skip):
            assert torch.equal(v, b.encoder.state_dict()[k]), k


def test_resnet_torchvision_layout_nested_with_prefix(tmp_path):
    torch.manual_seed(1)
    src = create_model("deeplabv3plus", 5, **RESNET)
    sd = {f"module.{k}": v for k, v in src.encoder.state_dict().items()}
    sd["module.fc.weight"], sd["module.fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save({"state_dict": sd, "epoch": 90}, tmp_path / "resnet18.pth")
    torch.manual_seed(2)
    dst = create_model("deeplabv3plus", 7, **RESNET)
    rep = load_encoder_weights(dst, tmp_path / "resnet18.pth", "deeplabv3plus")
    assert_encoder_equal(src, dst)
    assert rep.unexpected == ["module.fc.bias", "module.fc.weight"] and rep.missing == []
    assert rep.layout.startswith("torchvision/timm") and len(rep.loaded) == len(src.encoder.state_dict())


@pytest.mark.parametrize("layout", ["timm-safetensors", "torchvision", "facebookresearch"])
def test_convnext_layouts(tmp_path, layout):
    torch.manual_seed(1)
    src = create_model("convnext_upernet", 5, **CONVNEXT)
    sd = src.encoder.state_dict()
    if layout == "timm-safetensors":
        sd = {k: v for k, v in sd.items() if not k.startswith("out_norms.")}
        sd["head.fc.weight"] = torch.zeros(10, 64)
        path = tmp_path / "convnext.safetensors"
        write_safetensors(path, sd)
    else:
        sd = to_torchvision_convnext(sd) if layout == "torchvision" else to_facebook_convnext(sd)
        path = tmp_path / "convnext.pth"
        torch.save(sd, path)
    torch.manual_seed(2)
    dst = create_model("convnext_upernet", 3, **CONVNEXT)
    rep = load_encoder_weights(dst, path, "convnext_upernet")
    assert_encoder_equal(src, dst, skip=("out_norms.",))
    assert rep.missing == [f"out_norms.{i}.{p}" for i in range(4) for p in ("bias", "weight")]
    assert len(rep.unexpected) == (1 if layout == "timm-safetensors" else 2 if layout == "torchvision" else 4)
    assert rep.layout.split(" ")[0].rstrip(",") == layout.split("-")[0]


def test_shape_mismatch_and_foreign_files_are_refused(tmp_path):
    torch.manual_seed(1)
    src = create_model("convnext_upernet", 5, **CONVNEXT)
    torch.save(src.encoder.state_dict(), tmp_path / "narrow.pt")
    wide = create_model("convnext_upernet", 5, **{**CONVNEXT, "dims": [8, 16, 32, 32]})
    with pytest.raises(SegtrainError) as e:
        load_encoder_weights(wide, tmp_path / "narrow.pt", "convnext_upernet")
    msg = str(e.value)
    assert "\n" not in msg and "narrow.pt" in msg and "has shape [64" in msg and "needs [32" in msg
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(SegtrainError, match="no tensor matches the convnext_upernet encoder"):
        load_encoder_weights(wide, tmp_path / "other.pt", "convnext_upernet")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(SegtrainError, match="junk.safetensors: not a valid safetensors file"):
        load_encoder_weights(wide, tmp_path / "junk.safetensors")


def test_safetensors_reader_dtypes(tmp_path):
    t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
         "c": torch.tensor([0.5], dtype=torch.float16), "d": torch.tensor([2**40, -3])}
    write_safetensors(tmp_path / "x.safetensors", t)
    back = SafetensorsFile(tmp_path / "x.safetensors")
    assert list(back) == list(t) and len(back) == len(t) and "a" in back and "z" not in back
    for k in t:
        assert back[k].dtype == t[k].dtype and torch.equal(back[k], t[k]), k


def test_safetensors_reads_only_the_tensors_the_encoder_takes(tmp_path, monkeypatch):
    """The file is memory-mapped and a tensor read only when the encoder takes it: a
    classifier head (ImageNet's 1000 classes in a real file) is never read."""
    torch.manual_seed(1)
    src = create_model("convnext_upernet", 5, **CONVNEXT)
    sd = {k: v for k, v in src.encoder.state_dict().items() if not k.startswith("out_norms.")}
    write_safetensors(tmp_path / "enc.safetensors", {**sd, "head.fc.weight": torch.zeros(1000, 64),
                                                     "head.fc.bias": torch.zeros(1000)})
    read: list[str] = []
    get = SafetensorsFile.__getitem__
    monkeypatch.setattr(SafetensorsFile, "__getitem__", lambda self, k: read.append(k) or get(self, k))
    whole = SafetensorsFile(tmp_path / "enc.safetensors")
    assert "head.fc.weight" in whole and "nope" not in whole and read == []  # `in` reads no tensor
    dst = create_model("convnext_upernet", 3, **CONVNEXT)
    rep = load_encoder_weights(dst, tmp_path / "enc.safetensors", "convnext_upernet")
    assert sorted(read) == sorted(sd) and rep.unexpected == ["head.fc.bias", "head.fc.weight"]
    assert_encoder_equal(src, dst, skip=("out_norms.",))


def _st(header, body: bytes = b"") -> bytes:
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h)) + h + body


@pytest.mark.parametrize("data", [
    b"abc",  # too short for the header length
    struct.pack("<Q", 1 << 20) + b"{}",  # header length past the end of the file
    _st(b"{oops"),  # header not JSON
    _st([1, 2]),  # not an object of tensor entries
    _st({"a": {"dtype": "F32"}}),  # entry without shape, data_offsets
    _st({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),  # unknown dtype
    _st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)),  # offsets vs shape
    _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(2)),  # body not covered
])
def test_bad_safetensors_files_are_one_line_naming_the_file(tmp_path, data: bytes):
    """Our phrase and the package's own first line, whatever its version calls the problem."""
    from safetensors import safe_open

    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(Exception) as lib:
        safe_open(str(path), framework="pt")
    wide = create_model("convnext_upernet", 5, **CONVNEXT)
    with pytest.raises(SegtrainError) as e:
        load_encoder_weights(wide, path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not a valid safetensors file (") and "\n" not in msg
    assert str(lib.value).splitlines()[0].strip() in msg


def test_frozen_parts_keep_weights_and_bn_buffers(tmp_path):
    tree = write_clean_tree(tmp_path / "data", counts={"train": 4, "val": 1}, size=(32, 48))
    info = load_dataset_info(tree.root)
    loader, _ = make_loader(train_dataset(info, "train", "basic"), 2, True, 0, 0, torch.device("cpu"))
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=False, channels_last=False)
    model = create_model("deeplabv3plus", info.num_classes, **RESNET)
    model.set_train_parts("head")
    model.train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    assert not model.encoder.training and not model.decoder.training and model.head.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == count_trainable(model)["total"] == \
        sum(p.numel() for p in model.head.parameters())
    opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
    loss_fn = build_loss("ce", info.num_classes)
    for batch in list(loader) * 2:
        train_step(model, rt.images(batch["image"]), rt.masks(batch["mask"]), loss_fn, opt, rt.make_scaler(), rt)
    after = model.state_dict()
    for k, v in frozen.items():  # conv weights AND running_mean / running_var / num_batches_tracked
        assert torch.equal(after[k], v), k
    assert any(not torch.equal(model.head.state_dict()[k], v) for k, v in head.items())
    # a decoder,head run: the encoder's BN statistics stay, the decoder's move
    model2 = create_model("deeplabv3plus", info.num_classes, **RESNET)
    model2.set_train_parts("decoder,head")
    enc = {k: v.clone() for k, v in model2.encoder.state_dict().items()}
    model2.train()(rt.images(batch["image"]))
    assert all(torch.equal(model2.encoder.state_dict()[k], v) for k, v in enc.items())
    assert int(model2.decoder.low[1].num_batches_tracked) == 1


def test_run_with_pretrained_and_train_parts_via_cli(tmp_path):
    tree = write_clean_tree(tmp_path / "data", counts={"train": 4, "val": 2}, size=(32, 48))
    torch.manual_seed(5)
    src = create_model("convnext_upernet", 3, **CONVNEXT)
    write_safetensors(tmp_path / "enc.safetensors",
                      {k: v for k, v in src.encoder.state_dict().items() if not k.startswith("out_norms.")})
    opts = [a for k, v in CONVNEXT.items() for a in ("--model-opt", f"{k}={json.dumps(v)}")]
    r = CliRunner().invoke(main, ["run", "convnext_upernet", "--data", str(tree.root), "--out", str(tmp_path / "run"),
                                  "--pretrained", str(tmp_path / "enc.safetensors"), "--train-parts", "decoder,head",
                                  "--epochs", "1", "--batch-size", "2", "--workers", "0", *opts],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    log = (tmp_path / "run" / "train.log").read_text()
    n = sum(1 for k in src.encoder.state_dict() if not k.startswith("out_norms."))
    assert "pretrained encoder" in log and f"[timm layout]: loaded {n} tensors; missing 8 (out_norms" in log
    assert re.search(r"train parts decoder,head: [\d,]+ of [\d,]+ parameters trainable", log)
    assert "frozen: encoder (weights and BatchNorm statistics)" in log
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["train_parts"] == "decoder,head"
    for k, v in src.encoder.state_dict().items():  # trained with a frozen encoder: still the file's
        if not k.startswith("out_norms."):
            assert torch.equal(ckpt["model"][f"encoder.{k}"], v), k
    assert ckpt["trainable_parameters"] == sum(
        v.numel() for k, v in ckpt["model"].items() if k.startswith(("decoder.", "head."))
        and "running" not in k and "num_batches" not in k)


def test_init_from_another_class_table_rebuilds_only_the_head(tmp_path):
    a = write_clean_tree(tmp_path / "a", counts={"train": 2, "val": 1}, size=(32, 48))
    cfg = dict(model="baseline", model_options={"width": 8, "depth": 2}, epochs=1, batch_size=2, workers=0)
    train(TrainConfig(data=str(a.root), out=str(tmp_path / "ra"), **cfg), progress=False)
    b = write_clean_tree(tmp_path / "b", counts={"train": 2, "val": 1}, size=(32, 48))
    meta = json.loads((b.root / "dataset.json").read_text())  # a 3-class table: wall, floor, rest ignored
    n_a = meta["num_classes"]  # a's (the tree's own table, 39)
    for c in meta["classes"]:
        c["train_id"] = c["id"] - 1 if c["id"] in (1, 2) else (2 if c["id"] > 2 else 255)
    meta["classes"][3]["name"] = "thing"
    meta["num_classes"] = 3
    (b.root / "dataset.json").write_text(json.dumps(meta))
    # labels written with the 39-class table: remap them to the 3-class one
    import cv2

    for p in (b.root / "gtFine").rglob("*_labelTrainIds.png"):
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), np.where(m == 255, 255, np.minimum(m, 2)).astype(np.uint8))
    res = train(TrainConfig(data=str(b.root), out=str(tmp_path / "rb"), init_from=str(tmp_path / "ra" / "last.pt"),
                            train_parts="head", **cfg), progress=False)
    assert res.epochs_completed == 1 and res.trainable_parameters == 8 * 3 + 3
    src, dst = load_checkpoint(tmp_path / "ra" / "last.pt"), load_checkpoint(tmp_path / "rb" / "last.pt")
    assert dst["model"]["head.weight"].shape[0] == 3 and src["model"]["head.weight"].shape[0] == n_a
    for k, v in src["model"].items():
        if not k.startswith("head."):  # loaded, then frozen: unchanged by training
            assert torch.equal(dst["model"][k], v), k
    log = (tmp_path / "rb" / "train.log").read_text()
    assert "head rebuilt" in log and "skipped 2 (head.bias, head.weight)" in log
    # another architecture is refused with the checkpoint's own model and options
    with pytest.raises(SegtrainError, match=r"was trained as baseline \(--model-opt width=8"):
        train(TrainConfig(data=str(b.root), out=str(tmp_path / "rc"), init_from=str(tmp_path / "ra" / "last.pt"),
                          **{**cfg, "model_options": {"width": 4, "depth": 2}}), progress=False)
    seed_everything(0)
