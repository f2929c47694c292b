"""Running a study: the driver that owns the store hands its pending rows to workers.

Engines: ``local``, ``--workers N`` processes on this machine (``1``: the driver runs them itself),
each claiming rows in a transaction; ``ray``, each run a Ray task with its declared resources on an
existing cluster (``address``; none: a local Ray instance), results flowing back to the driver,
which alone writes the store. A killed driver loses only the runs in progress: the next driver puts
them back (:meth:`Store.reset`); a worker that outlives its driver cannot finish a row, its claim
being gone (:meth:`Store.finish`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .._checks import output_lock
from ..errors import ArchRepairError
from ..fileio import write_text_atomically
from .execute import execute
from .imported import import_into
from .spec import Study
from .store import STATUSES, Store, StoredRun, read_export

ENGINES = ("local", "ray")


def run_study(study: Study, workers: int = 1, engine: str = "local", address: str | None = None,
              retry_failed: bool = False, log: Callable[[str], None] | None = None, poll: float = 1.0) -> dict:
    """Run every pending row of ``study`` (rows are added for runs not stored yet; a row left running
    by a killed driver is rerun; failed rows only with ``retry_failed``). Returns the counts of this
    study's rows by status, what was added and reset, and the store's path."""
    if engine not in ENGINES:
        raise ArchRepairError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if workers < 1:
        raise ArchRepairError(f"--workers must be 1 or more, got {workers}")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    runs = study.runs(workers)
    hashes = {run.hash for run in runs}
    with output_lock(study.store, "the study store"):
        store = Store(study.store)
        try:
            store.set_meta("study", {"name": study.name, "file": str(study.path)})
            added = store.add(runs)
            for rows_path, models in study.imports:
                imported = import_into(store, rows_path, models)["imported"]
                if imported:
                    log(f"imported {imported} rows from {rows_path.name}")
            if study.export is not None and study.export.is_file():
                restored = store.restore(read_export(study.export))
                if restored:
                    log(f"restored {restored} finished rows from {study.export.name}")
            reset = store.reset(retry_failed)
            owner = uuid.uuid4().hex
            todo = sum(run.status == "pending" for run in store.runs() if run.hash in hashes)
            log(f"study {study.name}: {len(runs)} runs, {todo} to run ({added} new, {reset['interrupted']} interrupted "
                f"before, {reset['retried']} failed retried), {workers} {engine} worker(s); store {study.store}")

            def finished(run_hash: str) -> None:
                log(_progress(store, run_hash, hashes))
                if study.export is not None:
                    write_text_atomically(study.export, store.export_lines(study.export.parent))

            try:
                if engine == "ray":
                    _run_ray(store, owner, hashes, workers, address, finished)
                elif workers == 1:
                    _run_here(store, owner, hashes, finished)
                else:
                    _run_processes(store, owner, hashes, workers, finished, poll)
            finally:
                store.release(owner)
            counts = dict.fromkeys(STATUSES, 0)
            errors = []
            for run in store.runs():
                if run.hash in hashes:
                    counts[run.status] += 1
                    errors += [run.error] if run.status == "failed" else []
        finally:
            store.close()
    if errors and len(errors) == len(runs):
        distinct = len(set(errors))
        raise ArchRepairError(f"every run of study {study.name!r} failed ({len(errors)} runs, {distinct} distinct "
                              f"error{'s' if distinct > 1 else ''}); the first: {errors[0]}; fix it and rerun with "
                              "--retry-failed")
    return {"study": study.name, "store": str(study.store), "runs": len(runs), "added": added, **reset,
            "counts": counts}


def describe(run: StoredRun) -> str:
    """One line for a finished row: its grid cell and its headline figure (or its error)."""
    if run.status == "failed":
        return f"{run.cell}: failed: {run.error}"
    figures = run.figures or {}
    change = figures.get("holdout_change_points")
    headline = (f"hold-out {change:+.2f} points, negative flips {100 * figures['holdout_negative_flip_rate']:.2f}%"
                if change is not None else f"change {figures.get('change_points', 0.0):+.2f} points (paper's figure)")
    return f"{run.cell}: {headline}, kept {figures.get('kept')}, {run.seconds:.0f} s"


def _run_here(store: Store, owner: str, hashes: set[str], finished: Callable[[str], None]) -> None:
    """One worker: the driver itself."""
    worker = f"{os.uname().nodename}:{os.getpid()}"
    while (run := store.claim(owner, worker, hashes)) is not None:
        store.finish(run.hash, owner, worker, execute(run.config))
        finished(run.hash)


def _run_processes(store: Store, owner: str, hashes: set[str], workers: int, finished: Callable[[str], None],
                   poll: float) -> None:
    """``workers`` processes claiming rows from the store; the driver reports each finished row."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(str(store.path), owner, hashes), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    reported: set[str] = set()
    try:
        while True:
            alive = any(process.is_alive() for process in processes)
            for run_hash in store.finished_by(owner):
                if run_hash in hashes and run_hash not in reported:
                    reported.add(run_hash)
                    finished(run_hash)
            if not alive:
                break
            time.sleep(poll)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    broken = [process.exitcode for process in processes if process.exitcode not in (0, -signal.SIGTERM)]
    if broken:
        raise ArchRepairError(f"{len(broken)} worker process(es) ended with exit codes {broken}; their runs are "
                              "pending again: rerun the study")


def _worker(store_path: str, owner: str, hashes: set[str]) -> None:
    """A worker process: claim, run, record, until no pending row is left; it dies with its driver."""
    _die_with_parent()
    store = Store(store_path)
    worker = f"{os.uname().nodename}:{os.getpid()}"
    try:
        while (run := store.claim(owner, worker, hashes)) is not None:
            store.finish(run.hash, owner, worker, execute(run.config))
    finally:
        store.close()


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _run_ray(store: Store, owner: str, hashes: set[str], workers: int, address: str | None,
             finished: Callable[[str], None]) -> None:
    """Each run a Ray task (``num_cpus`` its threads, one GPU for a CUDA run), at most ``workers`` at a
    time; the driver claims rows, and records what comes back."""
    try:
        import ray
    except ImportError:
        raise ArchRepairError("the ray engine needs Ray: pip install -e \".[ray]\"") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    task = ray.remote(execute)
    flying: dict = {}
    try:
        while True:
            while len(flying) < workers and (run := store.claim(owner, f"ray:{len(flying)}", hashes)) is not None:
                gpus = 1 if str(run.config["task"]["device"]).startswith("cuda") else 0
                reference = task.options(num_cpus=run.config["threads"], num_gpus=gpus).remote(run.config)
                flying[reference] = run
            if not flying:
                break
            done, _ = ray.wait(list(flying), num_returns=1)
            for reference in done:
                run = flying.pop(reference)
                store.finish(run.hash, owner, run.worker, ray.get(reference))
                finished(run.hash)
    finally:
        for reference in flying:
            ray.cancel(reference, force=True)
        if started_here:
            ray.shutdown()


def _progress(store: Store, run_hash: str, hashes: set[str]) -> str:
    finished = sum(run.status in ("done", "failed") for run in store.runs() if run.hash in hashes)
    return f"[{finished}/{len(hashes)}] {describe(store.get(run_hash))}"


def status(path: str | Path) -> dict:
    """The store's rows by status, the running ones (worker, seconds so far), the failed ones with
    their errors, and the time left estimated from the finished rows (mean seconds per method; for a
    method with none, the run's wall-clock budget, else the mean over all methods), divided among the
    workers of the last run."""
    store = Store(path, create=False)
    try:
        rows = store.runs()
        counts = store.counts()
        done = [run for run in rows if run.status == "done" and run.seconds is not None]
        per_method: dict[str, list[float]] = {}
        for run in done:
            per_method.setdefault(run.method, []).append(run.seconds)
        overall = sum(run.seconds for run in done) / len(done) if done else None
        left = [run for run in rows if run.status in ("pending", "running")]
        workers = max((run.config.get("workers", 1) for run in left), default=1)
        estimates = [sum(per_method[run.method]) / len(per_method[run.method]) if run.method in per_method
                     else _budget_seconds(run) or overall for run in left]
        seconds_left = None if None in estimates else sum(estimates) / workers
        now = time.time()
        return {"store": str(path), "study": store.meta("study"), "counts": counts,
                "running": [{"run": run.cell, "worker": run.worker, "seconds": round(now - run.started)}
                            for run in rows if run.status == "running"],
                "failed": [{"run": run.cell, "error": run.error} for run in rows if run.status == "failed"],
                "seconds_done": round(sum(run.seconds for run in done), 1), "seconds_left": seconds_left}
    finally:
        store.close()


def _budget_seconds(run: StoredRun) -> float | None:
    """The wall-clock budget of a run's repair (its configuration's ``budget.seconds``), if it has one."""
    return ((run.config or {}).get("budget") or {}).get("seconds")
