"""Model registry: register builders by name, build by name (in the style of timm)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ArchRepairError

ModelBuilder = Callable[..., nn.Module]

_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(builder: ModelBuilder) -> ModelBuilder:
    """Decorator: register ``builder`` under its function name."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_BUILDERS)


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the zoo model ``name`` with ``kwargs`` (``num_classes``, ``in_channels``, ``width``).

    Example:
        >>> model = get_model("resnet18", num_classes=10, width=0.25)
    """
    from .._checks import argument

    argument("get_model", "name", name, str, "a zoo model's name")
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ArchRepairError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}"
        ) from None
    for key, kinds, takes, low in (("num_classes", int, "a whole number of classes >= 2", 2),
                                   ("in_channels", int, "a whole number of channels >= 1", 1),
                                   ("width", (int, float), "a width multiplier > 0", 1e-9)):
        if key in kwargs:
            argument("get_model", key, kwargs[key], kinds, takes, low=low)
    return builder(**kwargs)


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """Channel count ``channels * width`` rounded, never below ``minimum``."""
    if width <= 0:
        raise ArchRepairError(f"width multiplier must be positive, got {width}")
    return max(minimum, int(round(channels * width)))
