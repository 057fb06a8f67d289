"""Jobs in local worker processes or on a Dask cluster (docs/design.md, 'Runs and atomic writes').

``clean`` runs one job a site and ``report`` one a notebook. Both submit their jobs to a pool,
either a local ``ProcessPoolExecutor`` (the default) or, given a scheduler address
(``--scheduler tcp://host:8786``), a :class:`Cluster`: the same ``submit`` and ``shutdown`` on
a Dask distributed cluster whose workers have linkeval installed and share the file system
with this process (the same paths). :func:`finished` yields each job's future as it completes,
from either. Dask is imported only when a scheduler is used, so ``import linkeval`` stays light.

On a cluster the key never reaches a log: a job that needs it gets it wrapped in
:class:`Hidden` (Dask logs a failed task's arguments). A job whose worker is lost is run again
by Dask on another worker, as often as the scheduler's ``allowed-failures`` lets it (3 by
default), and then fails with :class:`JobLost`; when no worker is left, the jobs not yet done
fail after ``NO_WORKER_SECONDS`` instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from linkeval.errors import LinkevalError

CONNECT_SECONDS = 10  # to reach the scheduler
NO_WORKER_SECONDS = 30  # with jobs to run and no worker: when the cluster has none, or none left
POLL_SECONDS = 0.1

T = TypeVar("T")


class JobLost(LinkevalError):
    """A job on a Dask cluster that no worker finished: its worker was lost (as often as the
    scheduler allows), no worker was left to run it, or the scheduler went away."""


class NotShared(LinkevalError):
    """A Dask worker cannot see a folder of this run: the file system is not shared."""


@dataclass(frozen=True)
class Hidden:
    """A task argument no log shows (the pseudonymisation key sent to a Dask worker).

    >>> Hidden(b"secret")
    Hidden(...)
    """

    value: Any

    def __repr__(self) -> str:
        return "Hidden(...)"


def connect(address: str):
    """A ``distributed.Client`` of the scheduler at ``address``, with at least one worker.

    An address that is malformed or cannot be reached within ``CONNECT_SECONDS``, or a cluster
    without workers for ``NO_WORKER_SECONDS``, is one :class:`LinkevalError` line.
    """
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except Exception as exc:  # OSError, ValueError or worse, from one bad address
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        reason = None
    if reason is not None:
        # The half-made client closes itself when collected: now, while its event loop runs
        # (at exit it would wait 20 s and print a traceback).
        gc.collect()
        raise LinkevalError(
            f"{address}: cannot reach the Dask scheduler ({reason}); start one with "
            "`dask scheduler` or drop --scheduler"
        )
    try:
        client.wait_for_workers(1, timeout=NO_WORKER_SECONDS)
    except Exception:
        client.close()
        raise LinkevalError(
            f"{address}: the Dask scheduler has no workers (waited {NO_WORKER_SECONDS}s); "
            f"start some with `dask worker {address}` or drop --scheduler"
        ) from None
    return client


class Cluster:
    """A Dask cluster used as the ``ProcessPoolExecutor`` it stands in for: ``submit``,
    ``shutdown`` and ``with``. Jobs are never retried on an error (``retries=0``)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.client = connect(address)
        self.futures: list = []

    def submit(self, fn, /, *args):
        # An explicit key: Dask would otherwise name the task by a hash of its arguments.
        name = getattr(fn, "__name__", None) or getattr(fn, "func", fn).__name__  # a partial
        key = f"linkeval-{name}-{uuid.uuid4().hex}"
        future = self.client.submit(fn, *args, key=key, pure=False, retries=0)
        self.futures.append(future)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Cancel what has not finished and disconnect. A job already running on a worker
        runs to its end; it finds its folder gone (:func:`check_shared`) and writes nothing."""
        pending = [f for f in self.futures if not f.done()]
        try:
            if pending:
                self.client.cancel(pending, force=True)
        finally:
            self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(cancel_futures=True)

    def finished(self, futures: dict[Any, T]) -> Iterator[tuple[T, _Outcome]]:
        pending = dict(futures)
        idle_since = None
        while pending:
            done = [f for f in pending if f.done()]
            for future in done:
                yield pending.pop(future), _Outcome(future, self.address)
            if done:
                continue
            time.sleep(POLL_SECONDS)
            if self._has_workers():
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > NO_WORKER_SECONDS:
                lost = JobLost(
                    f"no Dask worker left to run it for {NO_WORKER_SECONDS}s "
                    f"(scheduler {self.address})"
                )
                for future, task in pending.items():
                    future.cancel()
                    yield task, _Outcome(future, self.address, lost)
                return

    def _has_workers(self) -> bool:
        try:
            return bool(self.client.nthreads())
        except Exception:  # the scheduler went away: its futures are cancelled
            return False


class _Outcome:
    """A Dask future's ``result()``, with a lost worker or scheduler as :class:`JobLost`."""

    def __init__(self, future, address: str, lost: JobLost | None = None) -> None:
        self.future = future
        self.address = address
        self.lost = lost

    def result(self):
        from concurrent.futures import CancelledError

        from distributed.scheduler import KilledWorker

        if self.lost:
            raise self.lost
        try:
            return self.future.result()
        except KilledWorker as exc:
            tries = exc.allowed_failures + 1
            each = f", on each of the {tries} workers that tried it" if tries > 1 else ""
            raise JobLost(
                f"the Dask worker running it was lost (out of memory, or stopped?){each}"
            ) from None
        except CancelledError:
            raise JobLost(f"the Dask scheduler {self.address} went away or cancelled it") from None


def finished(pool, futures: dict[Any, T]) -> Iterator[tuple[T, Any]]:
    """Each job's task (the value in ``futures``) and future, as the job finishes.

    ``future.result()`` gives what the job returned or raises what it raised; on a
    :class:`Cluster` it also raises :class:`JobLost` for a job no worker finished.
    """
    if isinstance(pool, Cluster):
        yield from pool.finished(futures)
        return
    for future in as_completed(futures):
        yield futures[future], future


def check_shared(*folders: Path) -> None:
    """In a job on a Dask worker: refuse to go on when a folder of this run is not there (a
    file system the worker does not share, or a run that has ended and removed it)."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise NotShared(
                f"{folder}: not found on Dask worker {socket.gethostname()}; the data, "
                "processed and reports folders and the notebooks must be on a file system "
                "that this machine and every worker share, at the same paths"
            )


# -- local worker processes ------------------------------------------------------------------


def pid_alive(pid) -> bool:
    """Is the process running? A zombie (dead, not yet reaped by its parent) is not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError, IndexError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def die_with_parent(main_pid: int | None = None) -> None:
    """In a worker process: be killed as soon as the process that started it dies.

    Linux delivers SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and
    for workers started through a fork server (whose parent, the server, lives as long as any
    of its workers), a watchdog thread checks the parent and the main process, ``main_pid``,
    twice a second. So a killed run leaves no worker behind that goes on writing files or
    starting kernels.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)

    def orphaned() -> bool:
        return os.getppid() != parent or (main_pid is not None and not pid_alive(main_pid))

    def watch() -> None:
        while not orphaned():
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    if orphaned():
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="linkeval-die-with-parent", daemon=True).start()
