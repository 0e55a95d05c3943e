"""`segtrain bench`: training throughput with the real input pipeline vs synthetic batches.

Both modes run the same training step on the same model in one process; the synthetic
batches are uint8 tensors already on the device (normalised there, like real batches), so
real / synthetic near 1 means the data pipeline keeps the accelerator fed and a low ratio
means it is starved (more --workers, smaller images on disk, or a faster decoder needed).

Memory is reported as parameters (+ gradients and Adam state for the trainable ones) and as
the activations autograd keeps for the backward pass of one batch (measured with saved-tensor
hooks, so it exists on CPU too); on CUDA the allocator's peak is reported as well.
`--model all` runs every registered model in turn with its default options.
"""

from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from segtrain.config import BenchConfig, check_fields
from segtrain.data import load_dataset_info, make_loader, train_dataset
from segtrain.depth import FALLBACK_DEPTH_STATS, uses_depth
from segtrain.engine import Runtime, prepare_model, resolve_device, seed_everything, train_step
from segtrain.losses import build_loss
from segtrain.models import (
    MODELS,
    check_inputs,
    check_model,
    count_parameters,
    count_trainable,
    create_model,
)
from segtrain.utils import SegtrainError, parse_hw, parse_parts

log = logging.getLogger("segtrain")


def _timed(run_step, batches, warmup: int, steps: int, rt: Runtime, batch_size: int,
           desc: str = "", progress: bool = False) -> float:
    """Images/s over `steps` steps after `warmup` untimed ones; a progress bar on stderr."""
    log.info("%s: %d warm-up + %d timed steps of batch %d", desc, warmup, steps, batch_size)
    bar = tqdm(total=warmup + steps, desc=desc, leave=False, disable=not progress, unit="step")
    for _ in range(warmup):
        run_step(next(batches))
        bar.update()
    rt.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        run_step(next(batches))
        bar.update()
    rt.sync()
    elapsed = time.perf_counter() - t0
    bar.close()
    return steps * batch_size / elapsed


def bench_models(spec: str) -> list[str]:
    """'all' or a comma list of registered names (checked)."""
    names = list(MODELS) if spec.strip() == "all" else [m.strip() for m in spec.split(",") if m.strip()]
    for n in names:
        if n not in MODELS:
            raise SegtrainError(f"unknown model {n!r}; available: {', '.join(sorted(MODELS))}, all")
    return names


def activation_bytes(model, x, y, loss_fn, rt: Runtime) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward."""
    seen: dict[tuple, int] = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse)
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), rt.autocast():
        loss = loss_fn(model(x), y)
    del loss
    return sum(seen.values())


def run_bench(cfg: BenchConfig, progress: bool = False) -> dict:
    """Time one model (see the module docstring); progress goes to the log and, with
    `progress`, a bar per mode on stderr (the result itself only to the caller)."""
    check_fields(cfg)
    info = load_dataset_info(cfg.data)
    device = resolve_device(cfg.device)
    size = list(parse_hw(cfg.size)) if cfg.size else (list(info.image_size) if info.image_size else None)
    if size is None:
        raise SegtrainError(f"{cfg.data}: samples have different sizes; give --size HxW")
    try:
        check_model(cfg.model, cfg.model_options)
        check_inputs(cfg.model, cfg.model_options, cfg.inputs, cfg.fusion)
    except (KeyError, ValueError) as e:
        raise SegtrainError(e.args[0]) from None
    log.info("bench %s %dx%d batch %d on %s: building the model and measuring activations", cfg.model,
             size[0], size[1], cfg.batch_size, device)
    seed_everything(cfg.seed)
    with_depth = uses_depth(cfg.inputs)
    depth_stats = info.depth_stats()[:2] if with_depth else FALLBACK_DEPTH_STATS
    rt = Runtime.create(device, info.mean, info.std, cfg.amp, cfg.channels_last, cfg.inputs,
                        cfg.depth_encoding, depth_stats)
    try:
        model = create_model(cfg.model, info.num_classes, inputs=cfg.inputs, fusion=cfg.fusion,
                             **cfg.model_options)
        model.set_train_parts(parse_parts(cfg.train_parts))
    except ValueError as e:
        raise SegtrainError(str(e)) from None
    params = count_parameters(model)["total"]
    trainable = count_trainable(model)["total"]
    net = prepare_model(model, rt, cfg.compile)
    net.train()
    loss_fn = build_loss("ce", info.num_classes, info.ignore_index).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = rt.make_scaler()
    bs = cfg.batch_size

    def step(batch):
        train_step(net, *rt.train_batch(batch), loss_fn, optimizer, scaler, rt)

    g = torch.Generator(device="cpu").manual_seed(cfg.seed)
    x_syn = torch.randint(0, 256, (bs, 3, *size), generator=g, dtype=torch.uint8).to(device)
    y_syn = torch.randint(0, info.num_classes, (bs, *size), generator=g, dtype=torch.uint8).to(device)
    syn_batch = {"image": x_syn, "mask": y_syn}
    if with_depth:  # metres in the converter's 0.5..8 m range
        syn_batch["depth"] = (torch.rand((bs, *size), generator=g) * 7.5 + 0.5).to(device)

    def synthetic():
        while True:
            yield syn_batch

    ds = train_dataset(info, "train", cfg.augment, size=size, with_depth=with_depth)
    if len(ds) < bs:
        raise SegtrainError(f"{cfg.data}: the train split has {len(ds)} images, fewer than --batch-size {bs}")
    loader, sampler = make_loader(ds, bs, True, cfg.seed, cfg.workers, device, drop_last=True)

    def real():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    act = activation_bytes(model, rt.batch_inputs(syn_batch), rt.masks(y_syn), loss_fn, rt)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    syn = _timed(step, synthetic(), cfg.warmup, cfg.steps, rt, bs, f"{cfg.model} synthetic batches", progress)
    rl = _timed(step, real(), cfg.warmup, cfg.steps, rt, bs, f"{cfg.model} real input pipeline", progress)
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "model": cfg.model, "model_options": cfg.model_options, "parameters": params,
        "inputs": cfg.inputs, **({"depth_encoding": cfg.depth_encoding, "fusion": cfg.fusion} if with_depth else {}),
        "train_parts": cfg.train_parts, "trainable_parameters": trainable,
        # fp32 weights, plus gradient and two Adam moments for each trainable one
        "weights_and_optimizer_mib": (params + 3 * trainable) * 4 / 2**20,
        "activations_mib": act / 2**20,
        "size": size, "batch_size": bs, "workers": cfg.workers, "augment": cfg.augment,
        "precision": str(rt.amp_dtype).removeprefix("torch.") if rt.amp_dtype else "float32",
        "channels_last": rt.channels_last, "compile": cfg.compile,
        "torch_threads": torch.get_num_threads(), "steps": cfg.steps, "warmup": cfg.warmup,
        "synthetic_images_per_s": syn, "real_images_per_s": rl, "real_over_synthetic": rl / syn,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result
