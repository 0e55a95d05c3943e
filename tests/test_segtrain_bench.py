"""`segtrain bench` on CPU (issue 11 §4): windowed steady-state rates, the loader alone, FLOPs
against a matrix product's peak, host CPU per step, one result per model with its own
resources, and the CUDA-only numbers left empty. Never asserts a timing."""

from __future__ import annotations

import gc
import json
import multiprocessing
import statistics

import pytest
import torch
from click.testing import CliRunner
from treebuilder import write_clean_tree

from segtrain.bench import markdown_table, run_bench, run_benches
from segtrain.cli import main
from segtrain.config import BenchConfig
from segtrain.device_augment import DeviceAugment
from segtrain.measure import matmul_peak, split_windows, timed_windows, train_flops
from segtrain.runtime import Runtime

TINY = {"base_width": 4, "depth": 2}
CUDA_ONLY = ("synthetic_gpu_busy", "real_gpu_busy", "peak_gpu_memory_gib", "gpu_memory_at_start_gib")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_clean_tree(tmp_path_factory.mktemp("bench") / "data", counts={"train": 5, "val": 1},
                            size=(32, 48))


def cfg(tree, **kw) -> BenchConfig:
    base = {"data": str(tree.root), "model": "unet_small", "model_options": dict(TINY), "batch_size": 2,
            "steps": 4, "warmup": 1, "windows": 2, "workers": 0, "device": "cpu"}
    return BenchConfig(**{**base, **kw})


def test_split_windows():
    assert split_windows(10, 5) == [2, 2, 2, 2, 2]
    assert split_windows(11, 5) == [3, 2, 2, 2, 2]
    assert split_windows(2, 5) == [1, 1]  # never an empty window
    assert split_windows(7, 1) == [7]


def test_timed_windows_counts_every_step_once_and_has_no_gpu_numbers_on_cpu():
    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.2,) * 3, amp=True, channels_last=True)
    seen = []
    phase = timed_windows(seen.append, iter(range(100)), warmup=3, steps=7, windows=3, rt=rt, batch_size=4)
    assert seen == list(range(10))  # 3 warm-up + 7 timed, in order, none skipped
    assert len(phase.window_images_per_s) == 3 and min(phase.window_images_per_s) > 0
    assert phase.images_per_s == statistics.median(phase.window_images_per_s)
    assert phase.host_ms_per_step >= 0 and phase.gpu_busy is None


def test_train_flops_of_one_convolution_is_the_hand_count():
    """Forward 2·N·H·W·Cout·Cin·k² multiply-adds; backward the weight gradient (the same again),
    no input gradient (the input needs none)."""
    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.2,) * 3, amp=True, channels_last=True)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x, y = torch.randn(2, 3, 10, 12), torch.randint(0, 8, (2, 10, 12))
    fwd = 2 * 2 * 10 * 12 * 8 * 3 * 9
    assert train_flops(conv, x, y, torch.nn.CrossEntropyLoss(), rt) == 2 * fwd
    assert conv.weight.grad is None  # the count leaves no gradient behind


def test_matmul_peak_on_cpu():
    peak = matmul_peak(torch.device("cpu"), torch.float32, n=64, reps=3)
    assert peak["matmul_peak_tflops"] > 0
    assert (peak["matmul_peak_dtype"], peak["matmul_peak_size"]) == ("float32", 64)


def test_bench_reports_windows_loader_flops_and_no_cuda_numbers(tree, tmp_path):
    r = invoke("bench", "--data", tree.root, "--batch-size", 2, "--steps", 6, "--warmup", 1, "--windows", 3,
               "--workers", 1, "--device", "cpu", "--model-opt", "base_width=4", "--model-opt", "depth=2",
               "--json-out", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    for mode in ("synthetic", "real", "loader"):
        windows = res[f"{mode}_window_images_per_s"]
        assert len(windows) == 3 and min(windows) > 0
        assert res[f"{mode}_images_per_s"] == statistics.median(windows)
    assert res["windows"] == 3 and res["steps"] == 6
    assert res["real_over_synthetic"] == pytest.approx(res["real_images_per_s"] / res["synthetic_images_per_s"])
    assert res["loader_over_synthetic"] == pytest.approx(res["loader_images_per_s"] / res["synthetic_images_per_s"])
    assert res["train_flops_per_image"] > 0 and res["matmul_peak_tflops"] > 0
    assert res["matmul_peak_dtype"] == "float32" and res["precision"] == "float32"
    for mode in ("synthetic", "real"):
        tflops = res["train_flops_per_image"] * res[f"{mode}_images_per_s"] / 1e12
        assert res[f"{mode}_tflops"] == pytest.approx(tflops)
        assert res[f"{mode}_share_of_matmul_peak"] == pytest.approx(tflops / res["matmul_peak_tflops"])
        assert res[f"{mode}_host_ms_per_step"] > 0
    assert res["loader_host_ms_per_batch"] >= 0
    for key in CUDA_ONLY:
        assert key in res and res[key] is None
    assert res["train_images"] == 5 and res["torch"] == torch.__version__
    # the table: a header naming the setting and one row for the model, CUDA-only cells empty
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| unet_small |")]
    assert len(rows) == 1 and "| – / – |" in rows[0]
    assert "3 windows" in r.stdout and "matmul peak" in r.stdout


def test_flops_are_deterministic_and_scale_with_the_image(tree):
    a = run_bench(cfg(tree, steps=1, windows=1, warmup=0))
    b = run_bench(cfg(tree, steps=1, windows=1, warmup=0, seed=7))
    assert a["train_flops_per_image"] == b["train_flops_per_image"] > 0
    # convolutions are per pixel: a quarter of the pixels, a quarter of the FLOPs
    c = run_bench(cfg(tree, steps=1, windows=1, warmup=0, size=[16, 24]))
    assert c["train_flops_per_image"] * 4 == pytest.approx(a["train_flops_per_image"], rel=1e-6)


def test_several_models_each_report_their_own_and_release_their_workers(tree):
    cfgs = [cfg(tree, model="baseline", model_options={}, workers=1), cfg(tree, workers=1)]
    results = list(run_benches(cfgs))
    assert [r["model"] for r in results] == ["baseline", "unet_small"]
    assert results[0]["train_flops_per_image"] != results[1]["train_flops_per_image"]
    assert results[0]["parameters"] != results[1]["parameters"]
    # the peak is measured once and shared: the same ceiling for every row of one run
    assert results[0]["matmul_peak_tflops"] == results[1]["matmul_peak_tflops"]
    gc.collect()
    assert multiprocessing.active_children() == []  # each model's loader workers have exited
    table = markdown_table(results).splitlines()
    assert [ln.split(" | ")[0] for ln in table if ln.startswith("| ") and "model" not in ln] == \
        ["| baseline", "| unet_small"]
    # a row that is not the default setting says which one it is (gpu_feed.sh's extra rows)
    extra = markdown_table([results[0], {**results[1], "compile": True}, {**results[1], "inputs": "rgbd"}])
    assert [ln.split(" | ")[0] for ln in extra.splitlines() if ln.startswith("| ") and "model" not in ln] == \
        ["| baseline", "| unet_small --compile", "| unet_small --inputs rgbd"]


def test_json_out_keeps_the_models_measured_before_a_failure(tree, tmp_path, monkeypatch):
    import segtrain.bench as bench

    real_run, calls = bench.run_bench, []

    def second_fails(cfg, *args):
        calls.append(cfg.model)
        if len(calls) == 2:
            raise bench.SegtrainError(f"{cfg.model}: planted failure")
        return real_run(cfg, *args)

    monkeypatch.setattr(bench, "run_bench", second_fails)
    r = invoke("bench", "--data", tree.root, "--model", "baseline,unet_small", "--batch-size", 2, "--steps", 1,
               "--warmup", 0, "--workers", 0, "--device", "cpu", "--json-out", tmp_path / "b.json")
    assert r.exit_code == 2 and "unet_small: planted failure" in r.stderr
    assert [x["model"] for x in json.loads((tmp_path / "b.json").read_text())] == ["baseline"]


def test_gpu_busy_is_the_step_spans_over_the_window(monkeypatch):
    """The CUDA-event path with stand-in events that read the host clock: the spans around each
    step lie inside their window, so the fraction is in (0, 1]."""
    import time

    class HostEvent:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def elapsed_time(self, end):
            return (end.t - self.t) * 1000

    monkeypatch.setattr(torch.cuda, "Event", HostEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.2,) * 3, amp=True, channels_last=True)
    phase = timed_windows(lambda b: sum(range(20000)), iter(range(100)), warmup=1, steps=6, windows=2, rt=rt,
                          batch_size=2, gpu_events=True)
    assert 0 < phase.gpu_busy <= 1


def test_bench_with_augmentation_on_the_device(tree, tmp_path, monkeypatch):
    """The device augmenter runs on the synthetic batches and on the loader's (which carry
    their dataset "index"), so both modes time the same device work."""
    calls = {"synthetic": 0, "real": 0}
    original = DeviceAugment.__call__

    def counting(self, batch):
        calls["real" if "index" in batch else "synthetic"] += 1
        return original(self, batch)

    monkeypatch.setattr(DeviceAugment, "__call__", counting)
    r = invoke("bench", "--data", tree.root, "--batch-size", 2, "--steps", 2, "--warmup", 1, "--windows", 1,
               "--workers", 0, "--device", "cpu", "--augment-on", "device", "--model-opt", "base_width=4",
               "--model-opt", "depth=2", "--json-out", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["augment_on"] == "device" and res["real_images_per_s"] > 0
    assert "unet_small --augment-on device |" in r.stdout
    assert calls["synthetic"] >= 1 + 2 and calls["real"] >= 1 + 2  # at least warm-up + timed steps each


def test_nothing_of_a_model_outlives_its_bench(tree, monkeypatch):
    """After run_bench returns, no weight, optimizer state, batch or activation of its model is
    reachable: the next model of `--model all` starts from what the process held before (on the
    H200 each model's activations and weights stayed allocated: measure.activation_bytes packed
    saved outputs as themselves, a grad_fn cycle through C++ that gc cannot free)."""
    import weakref

    import segtrain.bench as bench

    refs: dict[str, list] = {"weights": [], "optimizer state": [], "batches": [], "activations": []}
    create, step = bench.create_model, bench.train_step

    def keep(kind, obj):
        if torch.is_tensor(obj):
            refs[kind].append(weakref.ref(obj))

    def creating(*args, **kw):
        model = create(*args, **kw)
        for p in model.parameters():
            keep("weights", p)
        for m in model.modules():  # every module's output, in every forward the bench runs
            m.register_forward_hook(lambda mod, inp, out: keep("activations", out))
        return model

    def stepping(net, x, y, loss_fn, opt, *args, **kw):
        keep("batches", x), keep("batches", y)
        out = step(net, x, y, loss_fn, opt, *args, **kw)
        for state in opt.state.values():
            for v in state.values():
                keep("optimizer state", v)
        return out

    monkeypatch.setattr(bench, "create_model", creating)
    monkeypatch.setattr(bench, "train_step", stepping)
    run_bench(cfg(tree, workers=1))
    gc.collect()
    assert all(refs.values())  # each kind was seen
    assert {k: sum(r() is not None for r in v) for k, v in refs.items()} == dict.fromkeys(refs, 0)


def test_activation_bytes_leaves_nothing_alive():
    """The measurement keeps no autograd graph: the model and its weights go when the caller
    drops them (the hook's packed tensors are detached, so no output refers to its grad_fn)."""
    import weakref

    from segtrain.measure import activation_bytes

    rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.2,) * 3, amp=False, channels_last=False)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    x, y = torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))
    weight = weakref.ref(model[0].weight)
    # conv1 saves x and its weight, ReLU its output, conv2 that output and its weight; the
    # loss its own small tensors (counted too)
    assert activation_bytes(model, x, y, torch.nn.CrossEntropyLoss(), rt) >= (2 * 3 + 2 * 8) * 64 * 4
    del model
    gc.collect()
    assert weight() is None


def test_nothing_of_a_training_run_outlives_it(tree, tmp_path, monkeypatch):
    """The same for `segtrain run` (and so `segtrain sweep`, which trains its runs one after
    another in one process): once train() returns, no weight and no activation of its training
    steps or validation passes is left for the next run."""
    import weakref

    import segtrain.engine as engine
    from segtrain.config import TrainConfig

    refs: list = []
    create = engine.create_model

    def creating(*args, **kw):
        model = create(*args, **kw)
        refs.extend(weakref.ref(p) for p in model.parameters())
        for m in model.modules():
            m.register_forward_hook(lambda mod, inp, out: refs.append(weakref.ref(out)) if torch.is_tensor(out)
                                    else None)
        return model

    monkeypatch.setattr(engine, "create_model", creating)
    res = engine.train(TrainConfig(data=str(tree.root), model="unet_small", model_options=dict(TINY),
                                   out=str(tmp_path / "run"), epochs=2, batch_size=2, workers=1, device="cpu"),
                       progress=False)
    assert res.epochs_completed == 2
    gc.collect()
    assert refs and sum(r() is not None for r in refs) == 0
