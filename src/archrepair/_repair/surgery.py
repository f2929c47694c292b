"""Deprecated path (kept for one release): block surgery lives in :mod:`archrepair._search.surgery`."""

from .._search.surgery import block_input, check_relaxable, trainable_only, with_discrete_block  # noqa: F401
