"""One input-checking layer: argparse types for numbers, fractions and lists; output paths that
never destroy a user's files; resumed runs that must have the settings they were started with.

Every check raises :class:`~archrepair.errors.ArchRepairError` (or ``argparse.ArgumentTypeError``
inside argparse) with a message that names the offending option, value or file and says what to
do, so the command line turns it into one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArchRepairError, ArchRepairTypeError, ArchRepairValueError

# ---------------------------------------------------------------------------------- argparse types


def _number(kind: type, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and value != value:  # NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    return value


def _bounded(kind: type, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False,
             what: str = "") -> Callable[[str], int | float]:
    """An argparse type: ``kind(text)`` within the bounds, else an error that states them."""

    def parse(text: str):
        value = _number(kind, text)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _bounded(int, 1, None, what="a whole number of 1 or more")
non_negative_int = _bounded(int, 0, None, what="a whole number of 0 or more")
positive_float = _bounded(float, 0, float("inf"), low_open=True, high_open=True, what="a number above 0")
non_negative_float = _bounded(float, 0, float("inf"), high_open=True, what="a number of 0 or more")
finite_float = _bounded(float, float("-inf"), float("inf"), low_open=True, high_open=True, what="a finite number")
open_fraction = _bounded(float, 0, 1, low_open=True, high_open=True, what="a fraction between 0 and 1 (exclusive)")
fraction_below_one = _bounded(float, 0, 1, high_open=True, what="a fraction from 0 up to (not including) 1")
accuracy_fraction = _bounded(float, 0, 1, low_open=True, what="an accuracy above 0 and at most 1 (e.g. 0.8)")
level_fraction = _bounded(float, 0, 1, low_open=True, what="a level above 0 and at most 1 (e.g. 0.05)")


SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(text: str) -> int:
    """An argparse type: a size in bytes, with an optional binary unit (``512M``, ``4G``, ``0``)."""
    number, unit = text.strip(), ""
    if number[-1:].upper() in SIZE_UNITS and number[-1:].isalpha():
        number, unit = number[:-1], number[-1].upper()
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give bytes or a number with K, M, G or T "
                                         "(e.g. 4G)") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; give a size of 0 or more (e.g. 4G)")
    return int(value * SIZE_UNITS[unit])


byte_size.__name__ = "a size such as 4G"


def int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type for a comma-separated list of distinct whole numbers in ``low..high``,
    returned sorted (so that every writer and reader sees the same order)."""

    def parse(text: str) -> list[int]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty entry; give numbers separated by commas")
        values = [_number(int, part) for part in parts]
        if any(not low <= v <= high for v in values):
            raise argparse.ArgumentTypeError(f"{text!r} has a value outside {low}..{high}")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a value; give each once")
        return sorted(values)

    parse.__name__ = f"list of {low}..{high}"
    return parse


def name_list(text: str) -> list[str]:
    """An argparse type for a comma-separated list of names, none of them empty."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty name; separate names by single commas")
    return parts


def non_empty_name(text: str) -> str:
    """An argparse type for one name (a block, a layer), not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the name is empty; give one, e.g. layer3")
    return text.strip()


non_empty_name.__name__ = "a name"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 1, as every other bad input."""

    def error(self, message: str):  # noqa: D401 (argparse's signature)
        say_once(f"{self.prog}: error: {message} (see {self.prog} --help)")
        raise SystemExit(1)


def launch_size() -> int:
    """How many processes torchrun started (``WORLD_SIZE``; 1 without torchrun). Read from the
    environment, so that the command line knows it without importing torch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launch_rank() -> int:
    """This process's rank as torchrun numbered it (``RANK``; 0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return launch_size() > 1


SPEAKING_SECONDS = 3.0
"""How long a silent process waits before it ends, under torchrun, so that process 0 can say why."""


def say_once(line: str) -> None:
    """Print ``line`` on stderr; under torchrun, where every process refuses the same input, only
    process 0 prints it, and the others wait a little first (torchrun ends them all as soon as one
    ends, which could cut process 0 off before it speaks)."""
    if launch_rank() == 0:
        print(line, file=sys.stderr)
    else:
        import signal
        import threading
        import time

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun's end for it comes quietly
        time.sleep(SPEAKING_SECONDS)


def add_dependent(parser: argparse.ArgumentParser, *flags: str, needs: tuple[str, ...] = (),
                  refused_with: tuple[str, ...] = (), default=None, group=None, **kwargs) -> argparse.Action:
    """Add option ``flags`` (``kwargs`` as for ``add_argument``; into ``group`` when given) that means
    something only when one of the options ``needs`` is given, and nothing when one of
    ``refused_with`` is (an entry ``--option=value``: that option has that value, given or by
    default). Given where it means nothing, :func:`check_dependent` refuses it in one line naming
    both; left out, it takes ``default`` (its argparse default is ``None``, so that a value given on
    the command line can be told from the default)."""
    action = (group or parser).add_argument(*flags, default=None, **kwargs)
    rules = list(parser.get_default("_dependent") or [])
    rules.append((flags[0], action.dest, tuple(needs), tuple(refused_with), default))
    parser.set_defaults(_dependent=rules)
    return action


def check_dependent(args: argparse.Namespace) -> None:
    """Refuse every option of :func:`add_dependent` given where it means nothing; fill in the
    defaults of those left out."""

    def given(flag: str) -> bool:
        option, _, value = flag.partition("=")
        actual = getattr(args, option.lstrip("-").replace("-", "_"), None)
        return str(actual) == value if value else actual not in (None, False)

    for flag, dest, needs, refused_with, default in getattr(args, "_dependent", None) or []:
        if getattr(args, dest) is None:
            setattr(args, dest, default)
            continue
        if needs and not any(given(other) for other in needs):
            wanted = " or ".join(needs)
            raise ArchRepairError(f"{flag} has no effect without {wanted}; add {wanted}, or leave {flag} out")
        for other in refused_with:
            if given(other):
                raise ArchRepairError(f"{flag} has no effect with {other}; leave one of them out")


# ------------------------------------------------------------------------------ Python arguments

PATH = (str, os.PathLike)


def argument(function: str, name: str, value, kinds: type | tuple[type, ...], takes: str, optional: bool = False,
             low: float | None = None, choices: Iterable[str] | None = None) -> None:
    """Check a Python API argument at the boundary (captum's ``_validate_input`` style): ``value`` of
    ``kinds`` (``None`` too when ``optional``; a bool is not a number), at least ``low``, one of
    ``choices``; else :class:`ArchRepairTypeError` or :class:`ArchRepairValueError` naming
    ``function``'s argument ``name``, what it got and what it ``takes``."""
    if value is None and optional:
        return
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ArchRepairTypeError(f"{function}(): {name} takes {takes}{' or None' if optional else ''}, got "
                                  f"{type(value).__name__} {_shown(value)}")
    if isinstance(value, str) and not value.strip():
        raise ArchRepairValueError(f"{function}(): {name} takes {takes}, got an empty text")
    if low is not None and value < low:
        raise ArchRepairValueError(f"{function}(): {name} takes {takes}, got {_shown(value)}")
    if choices is not None and value not in (choices := list(choices)):
        raise ArchRepairValueError(f"{function}(): {name} takes {takes} ({', '.join(choices)}), got {_shown(value)}")


def argument_list(function: str, name: str, value, takes: str, choices: Iterable[str] | None = None,
                  optional: bool = False) -> None:
    """A list or tuple of non-empty texts (a lone text is refused: it would be read letter by letter),
    each one of ``choices`` when given."""
    if value is None and optional:
        return
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ArchRepairTypeError(f"{function}(): {name} takes {takes}{' or None' if optional else ''}, got "
                                  f"{type(value).__name__} {_shown(value)}")
    for index, item in enumerate(value):
        argument(function, f"{name}[{index}]", item, str, "a text")
        if choices is not None and item not in (known := list(choices)):
            raise ArchRepairValueError(f"{function}(): {name} holds {item!r}, not one of {', '.join(known)}")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------------ output paths


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = (), kind: str = "folder",
                 overwrite: bool = False, resume: bool = False, option: str = "--out",
                 resumable: bool = False) -> Path:
    """Check that ``path`` can be written without destroying anything, before any work is done.

    Refused: an output that equals, contains or lies inside one of ``inputs``; a folder given
    for a file or a file for a folder; an existing file or non-empty folder unless ``overwrite``
    (or, for a folder, ``resume``); a place that cannot be written (tried with a temporary file).
    ``resumable``: the command has ``--resume`` (the message then offers it).
    """
    if not str(path).strip():
        raise ArchRepairError(f"{option} is empty; give the path of the {kind} to write")
    target = Path(path).expanduser().absolute()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).expanduser().absolute()
        resolved, source_resolved = target.resolve(), source.resolve()
        if resolved == source_resolved or source_resolved.is_relative_to(resolved):
            raise ArchRepairError(f"{option} {str(path)!r} is or contains the input {str(given)!r}; "
                                  "choose another output (inputs are never overwritten)")
        if source_resolved.is_dir() and resolved.is_relative_to(source_resolved):
            raise ArchRepairError(f"{option} {str(path)!r} lies inside the input folder {str(given)!r}; "
                                  "choose an output outside it")
    flag = "add --overwrite" if option.startswith("--") else "pass overwrite=True"
    if kind == "file":
        if target.is_dir():
            raise ArchRepairError(f"{option} {str(path)!r} is a folder; give the path of a file to write")
        if target.exists() and not overwrite:
            raise ArchRepairError(f"{option} {str(path)!r} exists; {flag} to replace it or choose another path")
    else:
        if target.exists() and not target.is_dir():
            raise ArchRepairError(f"{option} {str(path)!r} is a file; give a folder to write into")
        if target.is_dir() and any(target.iterdir()) and not (overwrite or resume):
            offer = "add --resume to continue the run there, or --overwrite" if resumable and option.startswith("--") \
                else flag
            resume_too = ", resume=True to continue the run there" if resumable and offer == flag else ""
            raise ArchRepairError(f"{option} {str(path)!r} exists and is not empty; {offer} to replace what "
                                  f"this command writes there (other files are kept){resume_too}, or choose another folder")
    _check_writable(target, option, path)
    return target


def _check_writable(target: Path, option: str, given) -> None:
    existing = target if target.is_dir() else target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ArchRepairError(f"{option} {str(given)!r}: {str(existing)!r} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ArchRepairError(f"{option} {str(given)!r} cannot be written ({error.strerror} in {str(existing)!r}); "
                              "choose a writable place") from None


@contextmanager
def output_lock(target: str | Path, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a lock file beside it) for the duration, so that two runs
    cannot write the same output at once."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(f".{target.name}.lock")
    handle = open(lock, "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchRepairError(f"{option} {str(target)!r} is being written by another archrepair run "
                                  f"(lock {str(lock)!r}); wait for it or choose another output") from None
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


# ---------------------------------------------------------------------------------------- settings


def first_difference(saved, current, prefix: str = "") -> str | None:
    """The dotted name of the first setting that differs between two JSON-like values, or ``None``."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in list(saved) + [k for k in current if k not in saved]:
            if key not in saved or key not in current:
                return f"{prefix}{key}"
            found = first_difference(saved[key], current[key], f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if _normal(saved) == _normal(current) else prefix.rstrip(".") or "(value)"


def _normal(value):
    return json.loads(json.dumps(value, default=str))


def check_same_settings(saved: dict, current: dict, what: str) -> None:
    """Refuse to resume ``what`` when ``current`` differs from the ``saved`` settings (read back from
    JSON; ``current`` may hold tuples, paths and devices, compared as JSON), naming the first."""
    differing = first_difference(saved, current)
    if differing:
        raise ArchRepairError(f"cannot resume {what}: it was started with another {differing} "
                              f"({_short(saved, differing)} then, {_short(current, differing)} now); "
                              "rerun with the same settings, or without --resume to start afresh")


def _short(settings: dict, dotted: str) -> str:
    value = settings
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return "unset"
        value = value[key]
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def replace_stale(path: Path, resume: bool, say: Callable[[str], None], what: str, resumable: bool = True) -> None:
    """Without ``resume``, remove the state ``path`` (a file or folder this tool wrote for an earlier,
    failed or different run) and say so in one line (offering ``--resume`` when the command has it)."""
    if resume or not path.exists():
        return
    offer = " (--resume continues one)" if resumable else ""
    say(f"starting afresh: removed {what} {str(path)!r} left by an earlier run{offer}")
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()


@functools.cache
def code_version() -> str:
    """The commit the package's code ran at (``+changes`` when its ``src/`` differs from it), so that a
    result can be traced to its code; ``archrepair <version>`` outside a git checkout."""
    import subprocess

    from . import __version__

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") if (root / ".git").exists() else ""
    if not commit:
        return f"archrepair {__version__}"
    return commit + ("+changes" if git("status", "--porcelain", "src") else "")


def environment() -> dict:
    """The execution settings results depend on: torch's thread count and the process's cores."""
    import torch

    return {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
