"""Named entries in registration order: the one mechanism behind the registries of repair methods,
localisers and corruptions (each adds its own decorator on top)."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import ArchRepairError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one ``kind`` (``"repair method"``, ...) by name; an unknown name lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ArchRepairError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def copy(self) -> Registry[T]:
        """A registry with the same entries (tests register toys into a copy)."""
        other = Registry[T](self.kind)
        other._entries = dict(self._entries)
        return other
