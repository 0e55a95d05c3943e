"""The model zoo: every model's forward at odd sizes, backward, learning on a tiny tree, the
reference architectures' parameter counts, and `segtrain models`."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.cli import main
from segtrain.data import load_dataset_info, make_loader, train_dataset
from segtrain.engine import train_step
from segtrain.losses import build_loss
from segtrain.models import MODELS, count_parameters, create_model
from segtrain.models.convnext import ConvNeXtEncoder
from segtrain.models.resnet import ResNetEncoder
from segtrain.runtime import Runtime

# tiny widths and depths of every registered model (the defaults are tens of millions of
# parameters); a key with a suffix (`_os8`) is a second configuration of the model before it
TINY = {
    "unet": {"base_width": 4, "depth": 2},
    "unet_bilinear": {"base_width": 4, "depth": 2},
    "unet_small": {"base_width": 4, "depth": 2},
    "baseline": {"width": 8, "depth": 2},
    "fcn8s": {"backbone": "resnet18", "base_width": 8, "channels": 16},
    "deeplabv3plus": {"backbone": "resnet18", "base_width": 8, "aspp_channels": 16, "low_level_channels": 8,
                      "decoder_channels": 16},
    "deeplabv3plus_os8": {"backbone": "resnet50", "base_width": 4, "output_stride": 8, "aspp_channels": 8,
                          "low_level_channels": 4, "decoder_channels": 8},
    "convnext_upernet": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "channels": 16, "drop_path": 0.1},
}


def build(key: str, num_classes: int):
    torch.manual_seed(0)
    return create_model(key.removesuffix("_os8"), num_classes, **TINY[key])


def test_every_registered_model_has_a_tiny_configuration():
    """The per-model tests parametrize over MODELS through TINY: a new model without a tiny
    configuration fails here instead of being silently left out."""
    assert set(MODELS) <= set(TINY), sorted(set(MODELS) - set(TINY))
    assert {k.removesuffix("_os8") for k in TINY} <= set(MODELS)


@pytest.mark.parametrize("key", list(TINY))
def test_forward_odd_sizes_and_backward(key):
    model = build(key, 5).train()
    assert set(model.part_parameters()) == {"encoder", "decoder", "head"}
    assert all(v > 0 for v in model.part_parameters().values())
    x = torch.randn(2, 3, 64, 80)
    y = model(x)
    assert y.shape == (2, 5, 64, 80)
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing  # every parameter takes part (skips, ASPP pooling, PPM bins)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 250, 333)).shape == (1, 5, 250, 333)
        assert model(torch.randn(1, 3, 17, 23)).shape == (1, 5, 17, 23)  # smaller than one stride-32 cell


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tree = write_clean_tree(tmp_path_factory.mktemp("zoo") / "data", counts={"train": 4, "val": 1}, size=(32, 48))
    info = load_dataset_info(tree.root)
    loader, _ = make_loader(train_dataset(info, "train", "none"), 4, False, 0, 0, torch.device("cpu"))
    rt = Runtime.create(torch.device("cpu"), info.mean, info.std, amp=False, channels_last=False)
    b = next(iter(loader))
    return info, rt, rt.images(b["image"]), rt.masks(b["mask"])


@pytest.mark.parametrize("key", list(MODELS))
def test_a_few_steps_lower_the_loss(batch, key):
    info, rt, x, y = batch
    model = build(key, info.num_classes).train()
    loss_fn = build_loss("ce", info.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = rt.make_scaler()
    losses = [train_step(model, x, y, loss_fn, opt, scaler, rt) for _ in range(20)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_reference_architectures_have_the_published_sizes():
    # torchvision resnet50 has 25,557,032 parameters, 2,049,000 of them in the fc classifier
    assert sum(p.numel() for p in ResNetEncoder("resnet50").parameters()) == 25_557_032 - 2_049_000
    assert sum(p.numel() for p in ResNetEncoder("resnet18").parameters()) == 11_689_512 - 513_000
    # ConvNeXt-T has 28,589,128: minus head.fc (769,000) and head.norm (1,536), plus our 4 output norms
    enc = ConvNeXtEncoder()
    assert sum(p.numel() for p in enc.parameters()) == 28_589_128 - 769_000 - 1_536 + 2 * (96 + 192 + 384 + 768)
    feats = enc(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(96, 16, 24), (192, 8, 12), (384, 4, 6), (768, 2, 3)]
    r = ResNetEncoder("resnet50", base_width=4, output_stride=8)(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in r] == [16, 8, 8, 8]  # dilation keeps stride 8 after layer2


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="backbone 'resnet9' is not one of resnet18"):
        create_model("deeplabv3plus", 3, backbone="resnet9")
    with pytest.raises(ValueError, match="output_stride 32 is not one of 8, 16"):
        create_model("deeplabv3plus", 3, output_stride=32)
    with pytest.raises(ValueError, match="variant 'huge' is not one of tiny, small"):
        create_model("convnext_upernet", 3, variant="huge")
    with pytest.raises(KeyError, match="valid: in_channels, backbone, base_width, channels, dropout"):
        create_model("fcn8s", 3, width=3)


def test_models_command_lists_every_model_with_parts():
    r = CliRunner().invoke(main, ["models", "-v"], catch_exceptions=False)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["model", "total", "encoder", "decoder", "head"]
    for name in MODELS:
        row = next(ln for ln in lines if ln.startswith(name + " "))
        total, enc, dec, head = (int(v.replace(",", "")) for v in row.split()[1:5])
        assert total == enc + dec + head == count_parameters(create_model(name, 39))["total"]
    assert "options: in_channels=3, variant=tiny" in r.stdout
