"""Models that are not in the zoo: a user's own, rebuilt from how they were made.

A checkpoint made by ``archrepair import`` records, instead of a zoo name, where its model comes
from (``record.arguments``)::

    {"source": "torchvision", "name": "resnet18", "kwargs": {"num_classes": 10}}
    {"source": "timm", "name": "resnet18", "kwargs": {...}}          # when timm is installed
    {"source": "factory", "factory": "/abs/path/net.py:build", "kwargs": {...}}
    {"source": "factory", "factory": "package.module:build", "kwargs": {...}}
    {"source": "memory", "key": "...", "kwargs": {}}   # staged from a model held in this process

and ``blocks``, the block names to use where the family has no automatic list; ``stem``
(``{"module": "conv1", "in_channels": 1}``) when ``import --in-channels-from`` folded the first
convolution to the data's channel count (grayscale data, a model made for RGB). Loading imports
the named package or the user's file again and calls the factory; nothing stored in a checkpoint
folder is ever executed (a factory file inside one is refused), and weights are never downloaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from ..errors import ArchRepairError

EXTERNAL = "external"
SOURCES = ("torchvision", "timm", "factory", "memory")

_IN_MEMORY: dict[str, nn.Module] = {}
"""Models a Python user handed over in memory (:mod:`archrepair.in_memory`), by key: the templates a
``memory`` checkpoint is rebuilt from, in this process only."""


def remember_model(model: nn.Module) -> str:
    """Keep a copy of ``model`` (on the CPU) as the template of a ``memory`` checkpoint; its key."""
    import copy

    key = f"{type(model).__qualname__}-{len(_IN_MEMORY)}"
    _IN_MEMORY[key] = copy.deepcopy(model).cpu()
    return key


def build_external(arguments: dict, checkpoint_folder: Path | None = None) -> nn.Module:
    """The untrained model ``arguments`` describe (see the module docstring), with its recorded
    block names as ``model.block_names`` so that every command finds them."""
    source, kwargs = arguments.get("source"), arguments.get("kwargs") or {}
    if source not in SOURCES or not isinstance(kwargs, dict):
        raise ArchRepairError(f"unknown model source {source!r} (known: {', '.join(SOURCES)})")
    try:
        if source == "torchvision":
            from torchvision import models

            model = models.get_model(arguments["name"], weights=None, **kwargs)
        elif source == "memory":
            if arguments.get("key") not in _IN_MEMORY:
                raise ArchRepairError("this checkpoint was staged from a model held in memory by another Python "
                                      "process; make it with `archrepair import` to use it anywhere")
            import copy

            model = copy.deepcopy(_IN_MEMORY[arguments["key"]])
        elif source == "timm":
            try:
                import timm
            except ImportError:
                raise ArchRepairError("this model was imported from timm; install timm to load it") from None
            model = timm.create_model(arguments["name"], pretrained=False, **kwargs)
        else:
            model = load_factory(arguments["factory"], checkpoint_folder)(**kwargs)
    except ArchRepairError:
        raise
    except Exception as error:  # the user's code, or an unknown torchvision name: say what failed
        what = arguments.get("name") or arguments.get("factory")
        raise ArchRepairError(f"building the model {what!r} failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if not isinstance(model, nn.Module):
        raise ArchRepairError(f"the factory {arguments.get('factory')!r} returned a {type(model).__name__}, "
                              "not an nn.Module")
    if arguments.get("blocks"):
        model.block_names = tuple(arguments["blocks"])
    if arguments.get("stem"):
        fold_stem(model, arguments["stem"]["module"], arguments["stem"]["in_channels"])
    return model


def first_convolution(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The name and module of ``model``'s first ``Conv2d`` in registration order (its stem, for the
    families people import), or ``None`` without one."""
    return next(((name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)), None)


def fold_stem(model: nn.Module, name: str, channels: int) -> None:
    """Make the convolution ``name`` take ``channels`` (1) input channels instead of its ``N``, in place.

    Its weights ``(O, N, k, k)`` are summed over the input channels to ``(O, 1, k, k)``, so that the
    folded model gives a grayscale image exactly the outputs the original gave that image repeated
    ``N`` times (the usual way to feed a gray image to an RGB network).
    """
    old = model.get_submodule(name)
    if not isinstance(old, nn.Conv2d) or old.groups != 1:
        raise ArchRepairError(f"{name!r} is not an ungrouped Conv2d; its input channels cannot be folded")
    if channels != 1:
        raise ArchRepairError(f"only grayscale input (1 channel) can be folded into a stem made for {old.in_channels} "
                              f"channels, not {channels}")
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    bias=old.bias is not None, padding_mode=old.padding_mode).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.sum(1, keepdim=True))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, new)


def load_factory(spec: str, checkpoint_folder: Path | None = None):
    """The callable ``spec`` names: ``path/to/file.py:function`` or ``package.module:function``."""
    module_name, sep, function = str(spec).rpartition(":")
    if not sep or not module_name or not function:
        raise ArchRepairError(f"factory {spec!r} must be path/to/file.py:function or package.module:function")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise ArchRepairError(f"factory file {str(path)!r} does not exist")
        if checkpoint_folder is not None and path.is_relative_to(Path(checkpoint_folder).resolve()):
            raise ArchRepairError(f"factory file {str(path)!r} lies inside the checkpoint folder; code stored "
                                  "with a checkpoint is never run: keep the factory elsewhere")
        name = f"archrepair_user_{abs(hash(str(path)))}"
        module = sys.modules.get(name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception:
                del sys.modules[name]
                raise
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ArchRepairError(f"cannot import {module_name!r} for factory {spec!r} ({error})") from None
    if not callable(getattr(module, function, None)):
        raise ArchRepairError(f"{module_name!r} has no function {function!r}")
    return getattr(module, function)
