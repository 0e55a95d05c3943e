"""How `segtrain bench` times and counts a training step: timed windows (images/s, the main
thread's CPU time per step, GPU-busy fraction from CUDA events), FLOPs of one step from
torch.utils.flop_counter, a matrix product's rate as the ceiling, and the activations autograd
keeps. Nothing here knows about datasets or models by name (segtrain.bench puts them together).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from segtrain.runtime import Runtime, sync_device

log = logging.getLogger("segtrain")

# n of the n x n x n matrix product whose rate is the peak: large enough to fill an H100/H200
# (1.1 TFLOP, ~1.4 ms in bf16), small enough to take well under a second on 2 CPU cores
MATMUL_SIZE = {"cuda": 8192, "cpu": 1024}
MATMUL_WARM_S = {"cuda": 0.5, "cpu": 0.0}  # lets an idle GPU raise its clocks first


@dataclass
class Phase:
    """One timed mode: images/s of each window, the main thread's CPU ms per step, and the
    GPU-busy fraction (None off CUDA)."""

    window_images_per_s: list[float]
    host_ms_per_step: float
    gpu_busy: float | None

    @property
    def images_per_s(self) -> float:
        return statistics.median(self.window_images_per_s)


def split_windows(steps: int, windows: int) -> list[int]:
    """`steps` as `windows` nearly equal window lengths (fewer windows when steps are fewer)."""
    w = max(1, min(windows, steps))
    return [steps // w + (1 if i < steps % w else 0) for i in range(w)]


def timed_windows(run_step, batches: Iterator, warmup: int, steps: int, windows: int, rt: Runtime,
                  batch_size: int, desc: str = "", progress: bool = False,
                  gpu_events: bool = False) -> Phase:
    """Run `warmup` untimed steps, then `steps` timed ones in windows (what each number means:
    segtrain.bench's docstring); a progress bar on stderr."""
    sizes = split_windows(steps, windows)
    stream = torch.cuda.current_stream(rt.device) if gpu_events else None
    log.info("%s: %d warm-up + %d timed steps of batch %d in %d windows", desc, warmup, steps, batch_size,
             len(sizes))
    bar = tqdm(total=warmup + steps, desc=desc, leave=False, disable=not progress, unit="step")
    for _ in range(warmup):
        run_step(next(batches))
        bar.update()
    rt.sync()
    rates, cpu_s, busy_ms, wall_ms = [], 0.0, 0.0, 0.0
    for n in sizes:
        marks = []
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(n):
            batch = next(batches)
            if gpu_events:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
            run_step(batch)
            if gpu_events:
                end.record(stream)
                marks.append((start, end))
            bar.update()
        rt.sync()
        elapsed = time.perf_counter() - t0
        cpu_s += time.thread_time() - c0
        rates.append(n * batch_size / elapsed)
        wall_ms += elapsed * 1000
        busy_ms += sum(s.elapsed_time(e) for s, e in marks)
    bar.close()
    return Phase(rates, cpu_s * 1000 / steps, busy_ms / wall_ms if gpu_events else None)


def activation_bytes(model, x, y, loss_fn, rt: Runtime) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward."""
    seen: dict[tuple, int] = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse)
            pass
        # kept (so no freed storage's address is reused and counted twice) but detached: a saved
        # output packed as itself refers back to its own grad_fn, a cycle through C++ that
        # gc cannot see, which kept every model's activations and weights alive after the bench
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), rt.autocast():
        loss = loss_fn(model(x), y)
    del loss
    return sum(seen.values())


def train_flops(model, x, y, loss_fn, rt: Runtime) -> int:
    """FLOPs of one training step's forward + backward on batch `x` (shape-based, so the same
    for the same model and input size whatever the device or weights)."""
    counter = FlopCounterMode(display=False)
    with counter:
        with rt.autocast():
            logits = model(x)
        loss_fn(logits, y).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, reps: int = 10) -> dict:
    """TFLOP/s of an n x n x n matrix product in `dtype` on random data, the ceiling the training
    step is compared with: the fastest of `reps` (other work on a shared machine only slows a
    product down, so the fastest is the closest to the chip's rate)."""
    n = n or MATMUL_SIZE[device.type]
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g, device=device, dtype=dtype)
    cuda = device.type == "cuda"
    t_end = time.perf_counter() + MATMUL_WARM_S[device.type]
    while True:  # at least one warm-up product
        torch.mm(a, b)
        sync_device(device)
        if time.perf_counter() >= t_end:
            break
    times = []
    for _ in range(reps):
        if cuda:
            stream = torch.cuda.current_stream(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            torch.mm(a, b)
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
    del a, b
    return {"matmul_peak_tflops": 2 * n**3 / min(times) / 1e12,
            "matmul_peak_dtype": str(dtype).removeprefix("torch."), "matmul_peak_size": n}


