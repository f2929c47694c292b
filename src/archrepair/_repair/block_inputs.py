"""Cached block inputs: a block-level repair runs the frozen part of the network before its block
once per example of ``D_repair``, and every training step runs only the block and what follows.

Repair uses no augmentation, so the block's inputs never change; caching them removes the prefix's
forward pass from every step (and from every validation pass). The cut is made with torch.fx
(:mod:`.block_split`); when it cannot be made or would not be exact the view is off and says why
(``"off: <reason>"``), and the method runs the full model on images as before. The original model's
logits on every row come from its suffix over the cached inputs, when a method asks for them
(:meth:`BlockView.original_logits`: regression-aware training, MODE), so that the pass that builds
the cache runs only the part before the block.

Memory: rows are packed as one ``(N, D)`` float32 array; up to ``TaskConfig.cache_memory`` bytes it
lives in memory (on the task's device), above it in a memory-mapped file in the work folder (or a
temporary folder), read batch by batch. With a work folder, a key file records what the cache was
made from (model weights, block, rows, shift, dtype, device, memory format, AMP); a resumed run
with another key is refused, and with the same key rebuilds the cache (one pass).

Example:
    >>> view = task.block_view("layer4", work_dir)                  # doctest: +SKIP
    >>> bound = view.bind(model, set_train_mode)                      # model: a copy with its block replaced
    >>> fit(bound.model, bound.loader(task.fit_indices, 128, shuffle=True), ...)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn
from tqdm import tqdm

from .. import distributed
from .._checks import check_same_settings
from ..device import autocast
from ..fileio import write_text_atomically
from ..models import get_block
from ..evaluate import predict_logits
from .block_split import BlockSplit, CacheOff, eval_mode, restored_modes, split_at_block

CACHE_FILE = "block_inputs.npy"
KEY_FILE = "block_inputs.json"
BUILD_BATCH = 256


class BlockInputs:
    """The frontier values of every row of ``D_repair``, packed ``(N, D)`` float32 (a tensor, or a
    memory-mapped array when spilled). ``take(rows)`` gives a batch ``(B, D)``
    (:class:`~archrepair.data.loader.FeatureRows`)."""

    def __init__(self, values: torch.Tensor | np.ndarray, spilled_to: Path | None) -> None:
        self.values = values
        self.spilled_to = spilled_to

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        if isinstance(self.values, torch.Tensor):
            return self.values[rows.to(self.values.device)]
        return torch.from_numpy(np.asarray(self.values[rows.numpy()]))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.values.shape)) * 4


def pack(values: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Frontier values (batch first) as one ``(B, D)`` float32 batch, the cache's row format."""
    return torch.cat([value.float().reshape(len(value), -1) for value in values], 1)


class PackedSuffix(nn.Module):
    """The block and what follows it (``graph_module``: :meth:`BlockSplit.suffix`), taking a packed
    batch ``(B, D)`` of frontier values whose per-example shapes are ``shapes``."""

    def __init__(self, graph_module: fx.GraphModule, shapes: list[tuple[int, ...]], channels_last: bool) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.shapes = shapes
        self.sizes = [math.prod(shape) for shape in shapes]
        self.channels_last = channels_last
        self.training = graph_module.training  # the model's mode, as the graph module took it (not nn.Module's True)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        values, offset = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            value = packed[:, offset:offset + size].reshape(-1, *shape)
            four_d = value.dim() == 4 and self.channels_last
            values.append(value.contiguous(memory_format=torch.channels_last if four_d else torch.contiguous_format))
            offset += size
        return self.graph_module(*values)


@dataclass
class BoundBlock:
    """A model ready to train or evaluate at a block: call ``model`` on the batches of ``loader``
    (cached frontier values when ``status == "on"``, images otherwise)."""

    model: nn.Module
    loader: Callable[..., object]
    status: str


class BlockView:
    """The cached inputs of ``block`` for ``task`` (built on first use, shared by every model bound
    to it: the search's relaxed model, the fine-tuned discrete one, the original in the final choice).

    ``status``: ``"on"`` or ``"off: <reason>"``; a bind can also be off for its own model."""

    def __init__(self, task, block: str, work_dir: Path | None = None) -> None:
        self.task, self.block, self.work_dir = task, block, work_dir
        self.split: BlockSplit | None = None
        self.inputs: BlockInputs | None = None
        self.shapes: list[tuple[int, ...]] = []
        self.status = "on"
        if not task.config.prefix_cache:
            self.status = "off: turned off (--no-prefix-cache)"
            return
        try:
            self.split = split_at_block(task.model, block)
        except CacheOff as reason:
            self.status = f"off: {reason}"

    def bind(self, model: nn.Module, set_train_mode: Callable[[nn.Module], None] | None = None,
             build: bool = True) -> BoundBlock:
        """``model`` (the task's model or a copy with the block replaced) at this block. With
        ``set_train_mode`` (training), the cache is off unless, in training mode, every module and
        parameter before the block is frozen and nothing outside the block trains. ``build=False``
        (estimates): the cache is not built and ``loader`` is ``None`` when on; batches come from
        :meth:`pack_images`."""
        status = self.status
        if status == "on":
            try:
                split = split_at_block(model, self.block)
                if split.frontier != self.split.frontier:
                    raise CacheOff("the model's part before the block differs from the original's")
                if set_train_mode is not None:
                    _check_frozen(model, self.block, split, set_train_mode)
                inputs = self.cached_inputs() if build else None
                if not self.shapes:
                    self.pack_images(self.task.example(2))
            except CacheOff as reason:
                status = f"off: {reason}"
        if status != "on":
            return BoundBlock(model, self.task.loader, status)
        suffix = PackedSuffix(split.suffix(model), self.shapes, self.task.channels_last)
        loader = (lambda *args, **kwargs: self.task.loader(*args, features=inputs, **kwargs)) if build else None
        return BoundBlock(suffix, loader, "on")

    def pack_images(self, images: torch.Tensor) -> torch.Tensor:
        """The cached row format ``(B, D)`` of a batch of normalised images, computed now."""
        with eval_mode(self.task.model), torch.no_grad(), autocast(self.task.device, self.task.amp):
            return self._pack(self.split.prefix(self.task.model)(images), len(images))

    def cached_inputs(self) -> BlockInputs:
        """The block's inputs on every row of ``D_repair`` (made on first call)."""
        if self.inputs is None:
            self.inputs = self._build()
        return self.inputs

    def original_logits(self) -> torch.Tensor:
        """The original model's logits ``(N, classes)`` (float32, on the CPU) on every row of
        ``D_repair``: its block and what follows, run over the cached inputs (the cache is built
        first if need be). The caller keeps them (:meth:`RepairTask.original_logits`)."""
        task = self.task
        inputs = self.cached_inputs()
        suffix = PackedSuffix(self.split.suffix(task.model), self.shapes, task.channels_last)
        with restored_modes(task.model):
            return predict_logits(suffix, task.loader(np.arange(len(task.repair.y)), BUILD_BATCH, features=inputs),
                                  task.amp, progress="original logits")

    def key(self) -> dict:
        """What the cache was made from; a resumed run must match it."""
        task = self.task
        digest = hashlib.sha256()
        for name, value in sorted(task.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        rows = hashlib.sha256(np.ascontiguousarray(task.repair.y).tobytes())
        rows.update(np.ascontiguousarray(task.repair.train_indices).tobytes())
        rows.update(task.split.digest().encode())
        return {"model": digest.hexdigest()[:16], "block": self.block, "rows": int(len(task.repair.y)),
                "rows_sha256": rows.hexdigest()[:16], "corruption": task.config.corruption, "dtype": "float32",
                "device": str(task.device), "memory_format": "channels_last" if task.channels_last else "contiguous",
                "amp": task.amp}

    def _build(self) -> BlockInputs:
        task, key = self.task, self.key()
        key_path = self.work_dir / KEY_FILE if self.work_dir else None
        if key_path is not None and key_path.exists():
            saved = json.loads(key_path.read_text())
            check_same_settings(saved.get("key", {}), key, f"with the cached block inputs in {str(key_path)!r}")
        model = task.model
        prefix = self.split.prefix(model)
        rows = len(task.repair.y)
        values: torch.Tensor | np.ndarray | None = None
        offset, spilled_to = 0, None
        batches = tqdm(task.loader(np.arange(rows), batch_size=BUILD_BATCH), desc=f"caching the inputs of {self.block}",
                       unit="batch", leave=False, disable=None)
        with eval_mode(model), torch.no_grad():
            for images, _ in batches:
                with autocast(task.device, task.amp):
                    frontier = prefix(images)
                packed = self._pack(frontier, len(images))
                if values is None:
                    values, spilled_to = self._allocate(rows, packed.shape[1])
                if isinstance(values, torch.Tensor):
                    values[offset:offset + len(images)] = packed.to(values.device)
                else:
                    values[offset:offset + len(images)] = packed.cpu().numpy()
                offset += len(images)
        if isinstance(values, np.memmap):
            values.flush()
        if key_path is not None:
            write_text_atomically(key_path, json.dumps({"key": key, "spilled": spilled_to is not None}))
        return BlockInputs(values, spilled_to)

    def _pack(self, frontier: tuple[torch.Tensor, ...], batch: int) -> torch.Tensor:
        """One ``(B, D)`` float32 batch of frontier values; records their shapes on first use."""
        for name, value in zip(self.split.frontier, frontier):
            if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != batch:
                raise CacheOff(f"the value {name!r} before the block is not one row per example")
            if not value.is_floating_point():
                raise CacheOff(f"the value {name!r} before the block is not a floating-point tensor")
        if not self.shapes:
            self.shapes = [tuple(value.shape[1:]) for value in frontier]
        return pack(frontier)

    def _allocate(self, rows: int, width: int):
        """An ``(rows, width)`` float32 store: a tensor when it fits ``cache_memory``, else a
        memory-mapped file (in the work folder, or a temporary folder removed with this view; spread
        over processes, each but process 0 spills to a temporary folder of its own)."""
        if rows * width * 4 <= self.task.config.cache_memory:
            return torch.empty(rows, width, device=self.task.device), None
        if self.work_dir is not None and distributed.writes_files():
            folder = self.work_dir
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(tempfile.mkdtemp(prefix="archrepair-cache-"))
            weakref.finalize(self, shutil.rmtree, folder, True)
        path = folder / CACHE_FILE
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width)), path


def _check_frozen(model: nn.Module, block: str, split: BlockSplit, set_train_mode: Callable[[nn.Module], None]) -> None:
    """Raise :class:`CacheOff` unless, in training mode, no parameter before ``block`` trains and no
    module outside the block is in training mode (BatchNorm statistics, dropout, ``self.training``
    branches that the trace fixed in eval mode)."""
    with restored_modes(model):
        set_train_mode(model)
        for path in split.prefix_modules:
            if any(parameter.requires_grad for parameter in _parameters_at(model, path)):
                raise CacheOff(f"{path} before the block has trainable parameters")
        inside = {id(module) for module in get_block(model, block).modules()}
        for name, module in model.named_modules():
            if module.training and id(module) not in inside:
                raise CacheOff(f"{name or type(model).__name__} outside the block is in training mode")


def _parameters_at(model: nn.Module, path: str) -> list[nn.Parameter]:
    """The parameters of the module at ``path``, or the parameter itself (a traced attribute read)."""
    try:
        return list(model.get_submodule(path).parameters())
    except AttributeError:
        try:
            return [model.get_parameter(path)]
        except AttributeError:
            return []
