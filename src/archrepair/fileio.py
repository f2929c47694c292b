"""Atomic writes: a reader never sees half a file, and an interrupted write leaves the old one."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: temporary files are created private (0600), outputs get the usual mode


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    write_bytes_atomically(path, text.encode())


def write_bytes_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename; spread
    over processes, only process 0 writes (:func:`archrepair.distributed.writes_files`)."""
    from .distributed import writes_files

    if not writes_files():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
        os.chmod(temporary, 0o666 & ~UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict) -> bytes:
    """``arrays`` (name to numpy array) as the bytes of an ``.npz`` file, for :func:`write_bytes_atomically`."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def replace_directory(staging: Path, target: Path) -> None:
    """Publish a fully written ``staging`` folder as ``target``: a rename when ``target`` does not
    exist; otherwise each file written into ``staging`` replaces its namesake in ``target``
    (atomically, one by one) and every other file in ``target`` is left as it is."""
    if not target.exists():
        os.replace(staging, target)
        return
    for entry in sorted(staging.iterdir()):
        destination = target / entry.name
        if entry.is_dir():
            destination.mkdir(exist_ok=True)
            replace_directory(entry, destination)
        else:
            os.replace(entry, destination)
    shutil.rmtree(staging, ignore_errors=True)


def staging_directory(target: Path) -> Path:
    """A new empty folder beside ``target`` to write into before :func:`replace_directory`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    os.chmod(staging, 0o777 & ~UMASK)
    return staging


def json_ready(value):
    """``value`` as plain JSON types: numpy scalars and arrays, paths and devices become numbers,
    lists and strings, recursively through dicts, lists and tuples. The one encoder every record uses."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Path, torch.device, dtype
