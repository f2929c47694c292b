"""Data sources, batch loading and the failure scenario."""

from .arrays import ImageData
from .loader import BatchLoader
from .scenario import FailureSplit, select_failures
from .sources import DEFAULT_SPEC, load_data, parse_spec
from .splits import stratified_split

__all__ = [
    "DEFAULT_SPEC",
    "BatchLoader",
    "FailureSplit",
    "ImageData",
    "load_data",
    "parse_spec",
    "select_failures",
    "stratified_split",
]
