"""Multi-process training under `torchrun`: process group, sharding rules, reductions, SyncBN.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `segtrain run` then trains with
DistributedDataParallel (NCCL on CUDA, gloo on CPU). The rules that make a 2-process run
give the same metrics as a single process on the same data:

- `--batch-size` is the global batch: each process takes batch_size / world_size, and the
  training sampler hands process r the indices r, r + W, … of the same seeded permutation, so
  the union of the per-process batches of step k is exactly batch k of a single process.
- evaluation shards the split without padding (a DistributedSampler pads with duplicates,
  which would be counted twice) and sums the confusion matrices with all_reduce; it runs on
  the unwrapped model, so uneven shards never wait on a collective.
- only rank 0 writes files and logs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from segtrain.utils import SegtrainError

log = logging.getLogger("segtrain")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def setup(device_name: str) -> tuple[DistInfo, str]:
    """Join the process group torchrun describes (if any). Returns the info and the device
    name this process should use (cuda:LOCAL_RANK on CUDA)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo(), device_name
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise SegtrainError(f"--device {device_name} requested but CUDA is not available; use --device cpu")
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    else:
        device_name = "cpu"
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        here = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, here), device_name


def cleanup(info: DistInfo, finished: bool = False) -> None:
    """Leave the process group. After a finished run every process first waits for the others:
    one that tore its group down while a peer was still saving could abort with "terminate
    called without an active exception" (a gloo thread still joinable at exit). After an error
    nobody waits, since the others may never arrive."""
    if info.initialized_here and dist.is_initialized():
        if finished and info.enabled:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_buffers(model: nn.Module, info: DistInfo) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics) — the ones rank 0
    saves — before evaluating, so all shards are judged by the same model."""
    if not info.enabled:
        return
    for b in model.buffers():
        dist.broadcast(b, src=0)


class _RankFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_non_main(info: DistInfo) -> logging.Filter | None:
    """Non-zero ranks log warnings and errors only (rank 0 logs the run)."""
    if info.is_main:
        return None
    f = _RankFilter()
    log.addFilter(f)
    return f


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes (each process's
    loss depends on every process's contribution to the global statistics)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are summed over all processes, on any device.

    torch.nn.SyncBatchNorm only runs on GPUs; this one reduces (count, sum) and then the sum of
    squared deviations with an autograd-aware all_reduce, so the gradient flows through the global statistics
    exactly as in one large batch. Same parameters and buffers as BatchNorm2d, so checkpoints
    load into a plain model.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        # two passes (mean, then squared deviations), like BatchNorm's own kernels: the one-pass
        # E[x^2] - E[x]^2 loses the variance of nearly constant channels to cancellation
        xf = x.float()
        n = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=xf.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([n, xf.sum(dim=(0, 2, 3))]))
        count = stats[0]
        mean = stats[1:] / count
        centred = xf - mean[None, :, None, None]
        var = _AllReduceSum.apply((centred * centred).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        y = centred * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """torch.nn.SyncBatchNorm on CUDA, GlooSyncBatchNorm elsewhere (CPU / gloo)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _swap_bn(model)


def _swap_bn(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            if child.affine:
                new.weight.requires_grad_(child.weight.requires_grad)
                new.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, new)
        else:
            _swap_bn(child)
    return module


__all__ = ["DistInfo", "setup", "cleanup", "all_reduce_sum_", "broadcast_buffers", "quiet_non_main",
           "GlooSyncBatchNorm", "convert_sync_batchnorm"]
