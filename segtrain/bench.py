"""`segtrain bench`: steady-state training throughput with the real input pipeline vs synthetic
batches, the input pipeline alone, and how close the step comes to the chip's limit.

Three modes run in one process on the same model. *synthetic*: the training step on uint8
batches already on the device (normalised there like real ones): what the model can do when
fed. *real*: the same step on batches from the training loader. *loader*: the loader alone,
each batch moved to the device (pinned, as in training) and normalised, no model: whether the
pipeline could keep up at all. Each mode runs `warmup` untimed steps, then `steps` timed ones
split into `windows` windows; the rate reported is the median window, so worker start-up and
prefetched batches do not set it (the windows are in the result: falling windows mean the
prefetch buffer was still draining, and more --steps are needed). The loader is one iterator
over all the epochs the bench takes, as in `segtrain run` (data.EpochBatches), so no epoch
boundary restarts the workers' prefetch from empty inside the measurement. The optimizer is
`segtrain run`'s default (fused Adam), so the step reads nothing back, as in training.

Per mode: the main thread's CPU time per step (the host work that must stay under the GPU's
step time, or the GPU starves; on CPU it includes the main thread's share of the compute) and,
on CUDA, the GPU-busy fraction: CUDA events around each step's work on the stream, summed,
over the window's wall time. FLOPs of one training step (forward + backward, as
torch.utils.flop_counter counts them: matrix products and convolutions) give the achieved
TFLOP/s and its share of a large matrix product's rate measured in the same run, in the
step's compute precision.

Memory is reported as parameters (+ gradients and Adam state for the trainable ones) and as
the activations autograd keeps for the backward pass of one batch (measured with saved-tensor
hooks, so it exists on CPU too); on CUDA the model's own peak: the allocator's peak since the
model was built less what was allocated when it began (`gpu_memory_at_start_gib`, ~0 when
nothing of an earlier model or caller is left; both are in the result).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator

import torch

from segtrain.config import BenchConfig, TrainConfig, check_fields
from segtrain.data import load_dataset_info, make_loader, train_dataset
from segtrain.depth import uses_depth
from segtrain.device_augment import PARAMS_KEY, DeviceAugment, batch_params, resolve_augment_on
from segtrain.engine import batchnorm_batch_error, check_network, train_step
from segtrain.losses import build_loss
from segtrain.measure import MATMUL_SIZE, activation_bytes, matmul_peak, timed_windows, train_flops
from segtrain.models import MODELS, count_parameters, count_trainable, create_model
from segtrain.optim import make_optimizer
from segtrain.runtime import prepare_model, resolve_device, runtime_for_dataset, seed_everything
from segtrain.utils import SegtrainError, parse_hw

log = logging.getLogger("segtrain")


def bench_models(spec: str) -> list[str]:
    """'all' or a comma list of registered names (checked)."""
    names = list(MODELS) if spec.strip() == "all" else [m.strip() for m in spec.split(",") if m.strip()]
    for n in names:
        if n not in MODELS:
            raise SegtrainError(f"unknown model {n!r}; available: {', '.join(sorted(MODELS))}, all")
    return names


def _release(device: torch.device) -> None:
    """Free what earlier models left (cycles, the allocator's cache) and restart the peak."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_benches(cfgs: Iterable[BenchConfig], progress: bool = False) -> Iterator[dict]:
    """`run_bench` for each config in turn, one result at a time (so a caller can save each
    as it comes); the matrix-product peak is measured once per device and precision."""
    peaks: dict = {}
    for cfg in cfgs:
        yield run_bench(cfg, progress, peaks)


def run_bench(cfg: BenchConfig, progress: bool = False, peaks: dict | None = None) -> dict:
    """Time one model (see the module docstring); progress goes to the log and, with
    `progress`, a bar per mode on stderr (the result itself only to the caller). `peaks`
    caches matrix-product peaks across calls."""
    check_fields(cfg)
    info = load_dataset_info(cfg.data)
    device = resolve_device(cfg.device)
    size = list(parse_hw(cfg.size)) if cfg.size else (list(info.image_size) if info.image_size else None)
    if size is None:
        raise SegtrainError(f"{cfg.data}: samples have different sizes; give --size HxW")
    check_network(cfg)
    with_depth = uses_depth(cfg.inputs)
    bs = cfg.batch_size
    augment_on = resolve_augment_on(cfg.augment_on, cfg.augment, device)
    ds = train_dataset(info, "train", cfg.augment, size=size, with_depth=with_depth, augment_on=augment_on)
    if len(ds) < bs:
        raise SegtrainError(f"{cfg.data}: the train split has {len(ds)} images, fewer than --batch-size {bs}")
    rt = runtime_for_dataset(cfg, info, device)
    compute_dtype = rt.amp_dtype or torch.float32
    peaks = {} if peaks is None else peaks
    if (str(device), compute_dtype) not in peaks:
        log.info("bench: %d^3 %s matrix product on %s (the peak the step is compared with)",
                 MATMUL_SIZE[device.type], str(compute_dtype).removeprefix("torch."), device)
        peaks[(str(device), compute_dtype)] = matmul_peak(device, compute_dtype)
    peak = peaks[(str(device), compute_dtype)]
    _release(device)
    cuda = device.type == "cuda"
    start_gib = torch.cuda.memory_allocated(device) / 2**30 if cuda else None
    log.info("bench %s %dx%d batch %d on %s: building the model and measuring activations and FLOPs",
             cfg.model, size[0], size[1], bs, device)
    seed_everything(cfg.seed)
    try:
        model = create_model(cfg.model, info.num_classes, inputs=cfg.inputs, fusion=cfg.fusion,
                             **cfg.model_options)
        model.set_train_parts(cfg.train_parts)
    except ValueError as e:
        raise SegtrainError(str(e)) from None
    params = count_parameters(model)["total"]
    trainable = count_trainable(model)["total"]
    net = prepare_model(model, rt)
    if cfg.compile:
        net = torch.compile(net)
    net.train()
    loss_fn = build_loss("ce", info.num_classes, info.ignore_index).to(device)
    # segtrain run's default optimizer and rate (fused: no sync per step, as in training)
    optimizer = make_optimizer(TrainConfig.optimizer, [p for p in model.parameters() if p.requires_grad],
                               TrainConfig.lr)
    scaler = rt.make_scaler()

    def step(batch):
        train_step(net, *rt.train_batch(batch), loss_fn, optimizer, scaler, rt)

    def to_device(batch):  # the loader alone: what training does to a batch before the model
        rt.train_batch(batch)

    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    x_syn = torch.randint(0, 256, (bs, 3, *size), generator=g, dtype=torch.uint8).to(device)
    y_syn = torch.randint(0, info.num_classes, (bs, *size), generator=g, dtype=torch.uint8).to(device)
    syn_batch = {"image": x_syn, "mask": y_syn}
    if with_depth:  # metres in the converter's 0.5..8 m range
        syn_batch["depth"] = (torch.rand((bs, *size), generator=g) * 7.5 + 0.5).to(device)
    if augment_on == "device":  # the same device work in both modes
        rt.augment = DeviceAugment()
        syn_batch[PARAMS_KEY] = batch_params(range(bs)).to(device)

    def synthetic():
        while True:
            yield syn_batch

    # one iterator over as many epochs as the modes take, as `segtrain run` iterates (no
    # epoch boundary restarts the workers inside a measurement)
    loader, _ = make_loader(ds, bs, True, cfg.seed, cfg.workers, device, drop_last=True, epochs=range(1, 2**31))
    prefetched = max(cfg.workers, 1) * (loader.prefetch_factor or 1)  # batches the workers hold ready

    def real():
        yield from loader

    batches = real()
    try:
        x, y = rt.train_batch(syn_batch)
        try:
            act = activation_bytes(model, x, y, loss_fn, rt)
        except ValueError as e:  # the first training forward: BatchNorm on one value per channel
            raise batchnorm_batch_error(e, x) or e from None
        flops = train_flops(model, x, y, loss_fn, rt)
        del x, y
        syn = timed_windows(step, synthetic(), cfg.warmup, cfg.steps, cfg.windows, rt, bs,
                            f"{cfg.model} synthetic batches", progress, gpu_events=cuda)
        rl = timed_windows(step, batches, cfg.warmup, cfg.steps, cfg.windows, rt, bs,
                           f"{cfg.model} real input pipeline", progress, gpu_events=cuda)
        # the loader alone; its warm-up first takes what real mode left prefetched
        ld = timed_windows(to_device, batches, cfg.warmup + prefetched, cfg.steps, cfg.windows, rt, bs,
                           f"{cfg.model} input pipeline alone", progress)
    finally:
        batches.close()  # ends the loader's iterator, so its workers exit before the next model
    flops_per_image = flops / bs
    tflops = {k: flops_per_image * p.images_per_s / 1e12 for k, p in (("synthetic", syn), ("real", rl))}
    result = {
        "device": str(device) if not cuda else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "model": cfg.model, "model_options": cfg.model_options, "parameters": params,
        "inputs": cfg.inputs, **({"depth_encoding": cfg.depth_encoding, "fusion": cfg.fusion} if with_depth else {}),
        "train_parts": cfg.train_parts, "trainable_parameters": trainable,
        # fp32 weights, plus gradient and two Adam moments for each trainable one
        "weights_and_optimizer_mib": (params + 3 * trainable) * 4 / 2**20,
        "activations_mib": act / 2**20,
        "size": size, "batch_size": bs, "workers": cfg.workers, "augment": cfg.augment, "augment_on": augment_on,
        "precision": str(rt.amp_dtype).removeprefix("torch.") if rt.amp_dtype else "float32",
        "channels_last": rt.channels_last, "compile": cfg.compile,
        "torch_threads": torch.get_num_threads(), "steps": cfg.steps, "warmup": cfg.warmup,
        "windows": len(syn.window_images_per_s), "train_images": len(ds),
        "synthetic_images_per_s": syn.images_per_s, "real_images_per_s": rl.images_per_s,
        "real_over_synthetic": rl.images_per_s / syn.images_per_s,
        "loader_images_per_s": ld.images_per_s,
        "loader_over_synthetic": ld.images_per_s / syn.images_per_s,
        "synthetic_window_images_per_s": syn.window_images_per_s,
        "real_window_images_per_s": rl.window_images_per_s,
        "loader_window_images_per_s": ld.window_images_per_s,
        "synthetic_host_ms_per_step": syn.host_ms_per_step, "real_host_ms_per_step": rl.host_ms_per_step,
        "loader_host_ms_per_batch": ld.host_ms_per_step,
        "synthetic_gpu_busy": syn.gpu_busy, "real_gpu_busy": rl.gpu_busy,
        "train_flops_per_image": flops_per_image,
        "synthetic_tflops": tflops["synthetic"], "real_tflops": tflops["real"],
        **peak,
        "synthetic_share_of_matmul_peak": tflops["synthetic"] / peak["matmul_peak_tflops"],
        "real_share_of_matmul_peak": tflops["real"] / peak["matmul_peak_tflops"],
        # the model's own: above what was allocated when it began (earlier models, the caller)
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 - start_gib if cuda else None,
        "gpu_memory_at_start_gib": start_gib,
    }
    windows = rl.window_images_per_s
    if len(windows) > 2 and windows[0] > 1.15 * rl.images_per_s:  # early windows above the steady ones
        log.warning("warning: %s: the first real-pipeline window ran at %.1f img/s, the median at %.1f: "
                    "prefetched batches were still draining (or the machine was busy); give more --steps "
                    "for the steady state", cfg.model, windows[0], rl.images_per_s)
    return result


def _cell(*values, fmt: str = "{:.1f}") -> str:
    return " / ".join("–" if v is None else fmt.format(v) for v in values)


def markdown_table(results: list[dict]) -> str:
    """One row per result: the numbers issue 11 asks for, with a line naming the setting."""
    if not results:
        return ""
    r0 = results[0]
    head = (f"{r0['device']}, torch {r0['torch']}, {r0['size'][0]}x{r0['size'][1]}, batch {r0['batch_size']}, "
            f"{r0['precision']}, {r0['workers']} workers, augment {r0['augment']}, {r0['steps']} timed steps in "
            f"{r0['windows']} windows after {r0['warmup']} warm-up (medians of windows); matmul peak "
            f"{r0['matmul_peak_tflops']:.3g} TFLOP/s ({r0['matmul_peak_dtype']} {r0['matmul_peak_size']}^3); "
            "peak GiB: each model's own (allocator peak less what was allocated at its start)")
    cols = ["model", "synthetic img/s", "real img/s", "real ÷ synthetic", "loader-only img/s",
            "GPU busy syn / real", "TFLOP/s syn / real", "share of matmul peak syn / real", "peak GiB",
            "host ms/step syn / real"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        name = r["model"] + "".join(f" {flag}" for flag, on in (("--compile", r["compile"]),
                                                                ("--augment-on device", r["augment_on"] == "device"),
                                                                (f"--inputs {r['inputs']}", r["inputs"] != "rgb"))
                                    if on)
        if r["precision"] != r0["precision"]:
            name += f" ({r['precision']})"
        row = [
            name,
            f"{r['synthetic_images_per_s']:.1f} ({min(r['synthetic_window_images_per_s']):.1f}–"
            f"{max(r['synthetic_window_images_per_s']):.1f})",
            f"{r['real_images_per_s']:.1f} ({min(r['real_window_images_per_s']):.1f}–"
            f"{max(r['real_window_images_per_s']):.1f})",
            f"{r['real_over_synthetic']:.2f}",
            f"{r['loader_images_per_s']:.1f}",
            _cell(r["synthetic_gpu_busy"], r["real_gpu_busy"], fmt="{:.0%}"),
            _cell(r["synthetic_tflops"], r["real_tflops"], fmt="{:.3g}"),
            _cell(r["synthetic_share_of_matmul_peak"], r["real_share_of_matmul_peak"], fmt="{:.1%}"),
            _cell(r["peak_gpu_memory_gib"], fmt="{:.1f}"),
            _cell(r["synthetic_host_ms_per_step"], r["real_host_ms_per_step"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
