"""Blocks of a model, named by module paths.

A block name is a dotted module path (``layer3``, ``dense2.4.layers``), optionally ending in a
slice of an ``nn.Sequential`` (``features.14:24``: children 14 to 23 of ``features``). Replacing a
block swaps the module (or the first module of the slice, the rest becoming ``nn.Identity``), so a
replacement must take and return tensors of the block's shapes.
"""

from __future__ import annotations

from torch import nn

from ..errors import ArchRepairError


def default_blocks(model: nn.Module) -> list[str]:
    """The paper's ordered blocks of ``model``: zoo models and torchvision's ResNet, VGG,
    DenseNet, EfficientNet and MobileNetV2. Other models need user-given names."""
    names = getattr(model, "block_names", None)
    if names:
        return list(names)
    finder = _torchvision_finder(model)
    if finder is None:
        children = ", ".join(name for name, _ in model.named_children()) or "(none)"
        raise ArchRepairError(
            f"no automatic block list for {type(model).__name__}; name the blocks yourself "
            f"(for example --blocks layer1,layer2 or features.0:7); its top-level modules are: {children}"
        )
    return finder(model)


def resolve_blocks(model: nn.Module, names: list[str] | None = None) -> list[str]:
    """Validate user-given block names (or return the defaults); unknown names raise with the valid ones."""
    if not names:
        return default_blocks(model)
    for name in names:
        try:
            get_block(model, name)
        except ArchRepairError as error:
            try:
                hint = "automatic blocks: " + ", ".join(default_blocks(model))
            except ArchRepairError:
                hint = "top-level modules: " + ", ".join(n for n, _ in model.named_children())
            raise ArchRepairError(f"{error}; {hint}") from None
    return list(names)


def get_block(model: nn.Module, name: str) -> nn.Module:
    """The module a block name refers to (a slice becomes an ``nn.Sequential`` sharing the modules)."""
    if not name.strip():
        raise ArchRepairError("empty block name; name a block such as layer3 (see `archrepair blocks`)")
    parent_path, index = _split_slice(name)
    if index is None:
        return _get_module(model, name)
    parent = _get_module(model, parent_path)
    if not isinstance(parent, nn.Sequential):
        raise ArchRepairError(f"block {name!r}: {parent_path!r} is not an nn.Sequential, so it cannot be sliced")
    start, stop = index
    if not 0 <= start < stop <= len(parent):
        raise ArchRepairError(f"block {name!r}: slice {start}:{stop} is outside 0:{len(parent)}")
    return nn.Sequential(*[parent[i] for i in range(start, stop)])


def block_module_paths(name: str) -> list[str]:
    """The module paths block ``name`` covers: itself, or each module of a slice (``features.3:5``
    gives ``features.3`` and ``features.4``)."""
    parent, index = _split_slice(name)
    if index is None:
        return [name]
    return [f"{parent}.{i}" if parent else str(i) for i in range(*index)]


def replace_block(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of block ``name`` inside ``model`` (in place: copy the model first)."""
    get_block(model, name)  # validates the name
    parent_path, index = _split_slice(name)
    if index is None:
        parent_path, _, attribute = name.rpartition(".")
        parent = _get_module(model, parent_path) if parent_path else model
        setattr(parent, attribute, new) if not attribute.isdigit() else parent.__setitem__(int(attribute), new)
        return
    parent = _get_module(model, parent_path)
    start, stop = index
    parent[start] = new
    for i in range(start + 1, stop):
        parent[i] = nn.Identity()


def _split_slice(name: str) -> tuple[str, tuple[int, int] | None]:
    parent, _, last = name.rpartition(".")
    if ":" not in last:
        return name, None
    try:
        start, stop = (int(part) for part in last.split(":"))
    except ValueError:
        raise ArchRepairError(f"block {name!r}: a slice must look like START:STOP, e.g. features.0:7") from None
    return parent, (start, stop)


def _get_module(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ArchRepairError(f"unknown block {path!r} in {type(model).__name__}") from None


def _torchvision_finder(model: nn.Module):
    try:
        from torchvision import models as tvm
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    finders = [
        (tvm.ResNet, lambda m: ["layer1", "layer2", "layer3", "layer4"]),
        (tvm.VGG, _vgg_segments),
        (tvm.DenseNet, _densenet_layers),
        (tvm.EfficientNet, lambda m: [f"features.{i}" for i in range(1, len(m.features) - 1)]),
        (tvm.MobileNetV2, _mobilenet_v2_stages),
    ]
    for cls, finder in finders:
        if isinstance(model, cls):
            return finder
    return None


def _vgg_segments(model: nn.Module) -> list[str]:
    names, start = [], 0
    for i, layer in enumerate(model.features):
        if isinstance(layer, nn.MaxPool2d):
            names.append(f"features.{start}:{i + 1}")
            start = i + 1
    return names


def _densenet_layers(model: nn.Module) -> list[str]:
    return [
        f"features.{block}.{layer}"
        for block, module in model.features.named_children()
        if block.startswith("denseblock")
        for layer, _ in module.named_children()
    ]


def _mobilenet_v2_stages(model: nn.Module) -> list[str]:
    """Group the inverted residuals between stem and head by output width (one group per stage)."""
    groups: list[list[int]] = []
    last_width = None
    for i in range(1, len(model.features) - 1):
        width = model.features[i].out_channels
        if width != last_width:
            groups.append([])
            last_width = width
        groups[-1].append(i)
    return [f"features.{g[0]}" if len(g) == 1 else f"features.{g[0]}:{g[-1] + 1}" for g in groups]


def block_shapes(model: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, dict]:
    """Input and output shapes (without the batch dimension) and parameter count of each block,
    from one forward pass of a zero batch of ``input_shape`` = ``(C, H, W)``."""
    import torch

    from ..hooks import run_with_hooks

    shapes: dict[str, dict] = {}
    forward_hooks, pre_hooks = [], []
    for name in names:
        block = get_block(model, name)
        first, last = (block[0], block[-1]) if _split_slice(name)[1] else (block, block)
        entry = shapes.setdefault(name, {"parameters": sum(p.numel() for p in block.parameters())})
        pre_hooks.append((first, lambda module, inputs, entry=entry: _note(entry, "input", inputs[0])))
        forward_hooks.append((last, lambda module, inputs, output, entry=entry: _note(entry, "output", output)))
    run_with_hooks(model, torch.zeros(1, *input_shape), forward_hooks, pre_hooks)
    return shapes


def _note(entry: dict, key: str, tensor) -> None:
    """Record the first shape seen (a hook must return None, or it replaces the tensor)."""
    entry.setdefault(key, list(tensor.shape[1:]))
