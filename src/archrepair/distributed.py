"""One repair spread over several processes (``torchrun --nproc-per-node N -m archrepair repair ...``).

Every process runs the same code on the same data; what is spread is the work of each step:

- **Training** (every gradient phase: :func:`archrepair.train.fit` and the architecture search):
  each process trains on its own fixed share of the shuffled rows (:func:`share_rows`; failures and
  other rows shared apart so each process sees as many failures), ``batch_size / N`` rows per step, and
  the gradients (the architecture parameters' too) are averaged over the processes before every step
  (:func:`average_gradients`), so every process holds the same weights and the same architecture
  after every step. BatchNorm running statistics are each process's own between epoch ends and
  averaged there and before each checkpoint (:func:`average_buffers`; not SyncBatchNorm: the
  batch statistics a training step normalises with are each process's ``B / N`` rows).
- **Evaluation**: each process predicts every ``N``-th batch and all gather the whole
  (:func:`gather_batches`), so the final choice is computed once, on the same figures everywhere.
- **Decisions**: a deadline counts as passed when it has in any process (:func:`any_rank`), and the
  time left is the least over the processes, so no process waits for another that stopped.
- **Files**: only process 0 writes (:func:`writes_files`).

Launched without torchrun (no ``WORLD_SIZE`` in the environment) every function here is a no-op
that returns its input: nothing changes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ._checks import launch_rank, launch_size, launched
from .errors import ArchRepairError


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes talking over ``backend`` (``None``: alone)."""

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Whether this is process 0 (the one that writes and prints)."""
        return self.rank == 0

    @property
    def spread(self) -> bool:
        return self.size > 1


def world() -> World:
    """The process group this process is in now (a lone process outside one)."""
    if not joined():
        return World()
    return World(dist.get_rank(), dist.get_world_size(), dist.get_backend())


def joined() -> bool:
    """Whether a process group of more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gpu_per_process() -> bool:
    """Whether this machine has a GPU for each of the processes torchrun started on it."""
    return torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def local_device(device: torch.device) -> torch.device:
    """Under torchrun with CUDA, ``cuda:LOCAL_RANK`` when this machine has a GPU per local process,
    else the one GPU for every process (``device`` itself); other devices are kept."""
    if not launched() or device.type != "cuda" or not _gpu_per_process():
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _backend(device: torch.device) -> str:
    """NCCL when each process has a GPU of its own, else gloo (NCCL cannot share one GPU)."""
    return "nccl" if device.type == "cuda" and dist.is_nccl_available() and _gpu_per_process() else "gloo"


@contextlib.contextmanager
def process_group(device: torch.device, timeout_seconds: float = 1800.0) -> Iterator[World]:
    """Join the processes torchrun started (a no-op without torchrun) for the ``with`` block; leave at
    its end. ``device``: this process's device (it picks the backend)."""
    if not launched():
        yield World()
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = _backend(device)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds),
                              device_id=device if backend == "nccl" else None)
    rank = dist.get_rank()
    try:
        barrier()
        yield world()
        barrier()  # every process done before any tears its end of the group down
    except Exception as error:
        error.archrepair_process = rank  # the command's one-line error names the process it hit
        raise
    finally:
        leave()


def leave() -> None:
    """Leave the process group (a process that runs nothing more: the others go on without it)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if joined():
        dist.barrier()


def writes_files() -> bool:
    """Whether this process writes files: process 0, or a lone process."""
    return not joined() or dist.get_rank() == 0


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_reduce(values: torch.Tensor, op=None) -> torch.Tensor:
    """``values`` reduced over the processes (sum unless ``op``), on ``values``' device."""
    moved = values.to(_collective_device())
    dist.all_reduce(moved, op=op or dist.ReduceOp.SUM)
    return moved.to(values.device)


def average_gradients(parameters: Sequence[nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of ``parameters`` over the processes in place (one flat all-reduce; a
    process without a parameter's gradient adds zeros, and a parameter no process has a gradient for
    keeps none, so the optimiser skips it as it would alone) and return the mean of ``loss`` over
    them. A lone process: ``loss`` unchanged."""
    if not joined():
        return loss
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    present = torch.tensor([float(p.grad is not None) for p in parameters], device=loss.device)
    flat = torch.cat([g.detach().reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float(), present])
    flat = _all_reduce(flat)
    offset, size = 0, dist.get_world_size()
    anywhere = flat[-len(parameters):] > 0
    for parameter, grad, has in zip(parameters, grads, anywhere.tolist()):
        count = grad.numel()
        parameter.grad = (flat[offset:offset + count] / size).view_as(grad).to(grad.dtype) if has else None
        offset += count
    return (flat[offset] / size).to(loss.dtype)


def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) of ``module``'s submodules
    in training mode over the processes, in place (the frozen parts are the same everywhere)."""
    if not joined():
        return
    buffers = [b for m in module.modules() if m.training for b in m.buffers(recurse=False) if b.is_floating_point()]
    if not buffers:
        return
    flat = _all_reduce(torch.cat([b.detach().reshape(-1).float() for b in buffers])) / dist.get_world_size()
    offset = 0
    for buffer in buffers:
        buffer.copy_(flat[offset:offset + buffer.numel()].view_as(buffer))
        offset += buffer.numel()


def broadcast(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite ``tensors`` (parameters, buffers) in every process with process 0's, in place, so
    that training starts from the same state everywhere."""
    if not joined():
        return
    tensors = list(tensors)
    if not tensors:
        return
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors]).to(_collective_device())
    dist.broadcast(flat, src=0)
    offset = 0
    for tensor in tensors:
        with torch.no_grad():
            tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds in any process (every process must ask)."""
    if not joined():
        return flag
    return bool(_all_reduce(torch.tensor([float(flag)]), dist.ReduceOp.MAX).item())


def least(value: float) -> float:
    """The smallest ``value`` over the processes."""
    if not joined():
        return value
    return float(_all_reduce(torch.tensor([value], dtype=torch.float64), dist.ReduceOp.MIN).item())


def sums(*values: float) -> tuple[float, ...]:
    """Each of ``values`` summed over the processes (an epoch's loss sums, correct counts, ...)."""
    if not joined():
        return values
    return tuple(_all_reduce(torch.tensor(values, dtype=torch.float64)).tolist())


def gather(value) -> list:
    """Every process's ``value`` (any picklable object), in rank order."""
    if not joined():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def my_batches(batches: Iterable) -> Iterator:
    """This process's share of ``batches``: every ``N``-th, starting at its rank."""
    rank, size = (dist.get_rank(), dist.get_world_size()) if joined() else (0, 1)
    for index, batch in enumerate(batches):
        if index % size == rank:
            yield batch


def gather_batches(outputs: list) -> list:
    """What every process made of its :func:`my_batches` (one picklable item per batch, on the CPU),
    in batch order, in every process."""
    if not joined():
        return outputs
    parts = gather(outputs)
    size = len(parts)
    ordered = []
    for index in range(sum(len(p) for p in parts)):
        ordered.append(parts[index % size][index // size])
    return ordered


def share_rows(indices: np.ndarray, num_failures: int, seed: int) -> np.ndarray:
    """This process's fixed share of the training rows ``indices``: the failures (rows below
    ``num_failures``) and the other rows are each permuted (seeded, the same in every process) and
    dealt out, then padded by repeating rows so every process has as many of each (at most
    ``N - 1`` repeats per kind), so that every process runs the same number of steps. A lone
    process: ``indices`` unchanged."""
    if not joined():
        return indices
    rank, size = dist.get_rank(), dist.get_world_size()
    indices = np.asarray(indices)
    generator = np.random.default_rng([seed, 7919])
    shares = []
    for kind in (indices[indices < num_failures], indices[indices >= num_failures]):
        if not len(kind):
            continue
        dealt = generator.permutation(kind)
        per_process = -(-len(dealt) // size)
        shares.append(np.resize(dealt, per_process * size)[rank::size])
    return np.sort(np.concatenate(shares)) if shares else indices[:0]


def batch_share(batch_size: int, size: int | None = None) -> int:
    """Each process's part of a training batch of ``batch_size`` rows spread over ``size`` processes
    (default: the launched ones); a batch that does not divide is refused."""
    size = launch_size() if size is None else size
    if batch_size % size:
        raise ArchRepairError(f"a batch of {batch_size} examples does not divide over {size} processes; choose a "
                              f"training batch size that is a multiple of {size} (--search-batch-size)")
    return batch_size // size


def digests(tensors: Iterable[torch.Tensor]) -> list[str]:
    """Every process's SHA-256 (16 hex digits) of ``tensors``' bytes, in rank order: equal when every
    process holds bit-identical values."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return gather(digest.hexdigest()[:16])


def describe(device: torch.device | str) -> dict:
    """``{"processes", "backend", "devices"}`` of this run, for its report."""
    here = world()
    return {"processes": here.size, "backend": here.backend, "devices": gather(str(device))}


__all__ = ["World", "any_rank", "average_buffers", "average_gradients", "barrier", "batch_share", "broadcast",
           "describe", "digests", "gather", "gather_batches", "joined", "launch_rank", "launch_size", "launched",
           "leave", "least", "local_device", "my_batches", "process_group", "share_rows", "sums", "world",
           "writes_files"]
