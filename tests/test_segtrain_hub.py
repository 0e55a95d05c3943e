"""`--pretrained NAME` through huggingface_hub, offline: a tiny Hugging Face cache is built in
each test (the layout huggingface_hub writes: models--timm--NAME/refs/main + snapshots/SHA/),
and the network is never used (HF_HUB_OFFLINE, or an endpoint on a closed local port)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from test_segtrain_finetune import RESNET, write_safetensors
from treebuilder import write_clean_tree

from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.engine import train
from segtrain.models import create_model
from segtrain.models.hub import PRETRAINED, accepted_names, resolve_pretrained
from segtrain.utils import SegtrainError

hub = pytest.importorskip("huggingface_hub")
SHA = "0123456789abcdef0123456789abcdef01234567"


def build_cache(root, name: str, tensors: dict[str, torch.Tensor]):
    """What `hf_hub_download("timm/NAME", "model.safetensors")` leaves in the cache."""
    repo = root / f"models--timm--{name}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    snap = repo / "snapshots" / SHA
    snap.mkdir(parents=True)
    write_safetensors(snap / "model.safetensors", tensors)
    return snap / "model.safetensors"


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("st-hub") / "data", counts={"train": 2, "val": 1},
                            size=(32, 48))


def fake_timm_resnet18(tree) -> dict[str, torch.Tensor]:
    """A timm-named ResNet state dict of the test's small width (random values we can recognise),
    with the ImageNet classifier a real file has."""
    torch.manual_seed(123)
    enc = create_model("deeplabv3plus", 3, **RESNET).encoder.state_dict()
    sd = {k: (torch.rand_like(v) + 0.5 if k.endswith("running_var") else 0.1 * torch.randn_like(v))
          if v.is_floating_point() else v for k, v in enc.items()}
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 64), torch.randn(1000)
    return sd


def test_a_name_loads_from_the_cache_offline_into_the_encoder(tree, tmp_path, offline_cache):
    sd = fake_timm_resnet18(tree)
    path = build_cache(offline_cache, "resnet18.tv_in1k", sd)
    assert resolve_pretrained("resnet18.tv_in1k", "deeplabv3plus", {"backbone": "resnet18"}) == str(path)
    cfg = TrainConfig(model="deeplabv3plus", data=str(tree.root), out=str(tmp_path / "run"), model_options=RESNET,
                      epochs=1, batch_size=2, workers=0, pretrained="resnet18.tv_in1k", train_parts="head")
    res = train(cfg, progress=False)
    assert res.epochs_completed == 1
    model = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    # encoder frozen (weights and BatchNorm statistics): exactly the cached tensors
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(model[f"encoder.{k}"].float(), v.float()), k
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"pretrained encoder: resnet18.tv_in1k ({path})" in log
    assert "unexpected 2 (fc.bias, fc.weight)" in log


def test_names_that_do_not_fit_the_model_are_one_line_errors(offline_cache):
    with pytest.raises(SegtrainError, match=r"weights for a convnext_tiny encoder, but deeplabv3plus with "
                       r"backbone=resnet50 builds resnet50; use one of resnet50.tv_in1k"):
        resolve_pretrained("convnext_tiny.fb_in22k", "deeplabv3plus", {"backbone": "resnet50"})
    with pytest.raises(SegtrainError, match="unet has no encoder with published weights"):
        resolve_pretrained("resnet50.tv_in1k", "unet", {"base_width": 64})
    with pytest.raises(SegtrainError, match=r"convnext_tiny.fb_in99k: not a file and not a known name \(names "
                       r"for convnext_upernet: convnext_tiny.fb_in22k"):
        resolve_pretrained("convnext_tiny.fb_in99k", "convnext_upernet", {"variant": "tiny"})
    assert resolve_pretrained("weights/encoder.pth", "unet", {}) == "weights/encoder.pth"  # a file stays a file


def test_offline_without_the_file_in_the_cache_says_so(offline_cache):
    with pytest.raises(SegtrainError) as e:
        resolve_pretrained("resnet50.tv_in1k", "fcn8s", {"backbone": "resnet50"})
    msg = str(e.value)
    assert "\n" not in msg
    assert f"not in the Hugging Face cache ({offline_cache}) and HF_HUB_OFFLINE is set" in msg


@pytest.mark.slow  # huggingface_hub retries a refused connection for ~25 s before giving up
def test_cli_no_network_and_no_cache_is_one_line_exit_2(tree, tmp_path):
    """The real command with the hub unreachable (a closed local port) and an empty cache."""
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    env.pop("TRANSFORMERS_OFFLINE", None)
    r = subprocess.run([sys.executable, "-m", "segtrain", "run", "fcn8s", "--data", str(tree.root), "--out",
                        str(tmp_path / "run"), "--epochs", "1", "--workers", "0", "--pretrained",
                        "resnet50.tv_in1k"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "not in the Hugging Face cache" in errors[0]
    assert "download from http://127.0.0.1:9/timm/resnet50.tv_in1k failed (" in errors[0]
    assert "Connection refused" in errors[0]  # the cause, not the library's generic advice
    assert "Retrying" not in r.stderr
    assert "give --pretrained FILE" in errors[0]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_models_lists_the_names_each_model_accepts():
    out = CliRunner().invoke(main, ["models"], catch_exceptions=False).output
    assert "--pretrained: convnext_tiny.fb_in22k, convnext_tiny.fb_in22k_ft_in1k, convnext_tiny.fb_in1k" in out
    assert "--pretrained (with --model-opt variant=small): convnext_small.fb_in22k" in out
    assert "--pretrained: resnet50.tv_in1k, resnet50.tv2_in1k, resnet50.a1_in1k" in out
    assert accepted_names("unet") == {} and accepted_names("unet_small") == {}
    assert set(accepted_names("deeplabv3plus")) == {"", "backbone=resnet18", "backbone=resnet34",
                                                    "backbone=resnet101", "backbone=resnet152"}
    assert all(n.startswith(arch + ".") for arch, names in PRETRAINED.items() for n in names)
