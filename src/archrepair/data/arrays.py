"""In-memory image data: uint8 NHWC arrays for a train and a test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArchRepairError


@dataclass
class ImageData:
    """A data set held as arrays.

    Attributes:
        spec: the data spec string it was loaded from.
        x_train, x_test: images, ``(N, H, W, C)`` uint8 (0..255).
        y_train, y_test: labels, ``(N,)`` int64 in ``0..num_classes-1``.
        class_names: one name per class, in label order.
        home: for a field set (:mod:`.field`), the model's own data, whose test split this one's
            replaced (the repair is judged there too); else ``None``.
    """

    spec: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    _fingerprint: str | None = field(default=None, repr=False)
    home: ImageData | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ArchRepairError(
                    f"data {self.spec!r}: x_{split} must be uint8 of shape (N, H, W, C), got {x.dtype} {x.shape}"
                )
            if y.ndim != 1 or len(y) != len(x):
                raise ArchRepairError(f"data {self.spec!r}: y_{split} must be (N,) with N = {len(x)}, got {y.shape}")
            if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ArchRepairError(
                    f"data {self.spec!r}: y_{split} has labels outside 0..{len(self.class_names) - 1}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ArchRepairError(
                f"data {self.spec!r}: train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape"
            )
        self.y_train = self.y_train.astype(np.int64)
        self.y_test = self.y_test.astype(np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        """sha256 (hex, first 16 digits) over the four arrays and the class names."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for array in (self.x_train, self.y_train, self.x_test, self.y_test):
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).data)
            digest.update("\n".join(self.class_names).encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the training images, in [0, 1] units."""
        x = self.x_train.reshape(-1, self.x_train.shape[-1]).astype(np.float64) / 255.0
        std = x.std(axis=0)
        return x.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()

    def summary(self) -> dict:
        return {
            "spec": self.spec,
            "train": len(self.y_train),
            "test": len(self.y_test),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "fingerprint": self.fingerprint,
        }
