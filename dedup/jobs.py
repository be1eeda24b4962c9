"""Running independent jobs on every core: worker processes plus this one.

A run on ``n`` cores starts ``n - 1`` worker processes and does a share of the jobs itself, instead of
starting ``n`` workers and waiting: a spawned worker costs about 0.6 s of CPU before its first job
(imports and wordfreq's table; measured on Reuters dev), which the process that is already running
has paid. When the input is large enough to be shared out, the workers start before it is read
(:meth:`Workers.for_input`), so that their start-up overlaps the read and this process's imports.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence


def cpu_threads(requested: int = 0) -> int:
    """``requested`` threads, or with 0 every CPU this process may run on (its affinity mask, so
    ``taskset -c 0`` means one)."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


JOBS_PER_PROCESS = 8  # work is cut into about this many jobs per process, so that all finish together


def job_size(items: int, processes: int, least: int, most: int | None = None, per_process: int = JOBS_PER_PROCESS) -> int:
    """Items per job: about ``per_process`` jobs for each of ``processes``, but at least ``least``
    items (smaller jobs are not worth the pickling) and at most ``most``."""
    size = max(least, -(-items // (per_process * max(1, processes))))
    return size if most is None else min(most, size)


class Workers:
    """The worker processes of a run (``engine.processes``, 0: one per usable CPU, counting this
    process), started when a stage first has work for more than one, and shared by the stages that
    follow."""

    def __init__(self, processes: int):
        self.count = cpu_threads(processes)
        self._pool: Executor | None = None

    def pool(self, jobs: int) -> Executor | None:
        """The pool of ``count - 1`` processes, or None when this process does as well alone (one
        CPU, or fewer than two jobs)."""
        if self.count <= 1 or jobs <= 1:
            return None
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: polars' and rapidfuzz's thread pools do not survive a fork
            self._pool = ProcessPoolExecutor(self.count - 1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_leave_with, initargs=(os.getpid(),))
        return self._pool

    @classmethod
    def for_input(cls, source, processes: int) -> "Workers":
        """The workers of a run over the input file or folder ``source``: when it is large enough
        to be shared out (:data:`WARM_BYTES` on disk), started now (:meth:`warm`), so that they
        get ready while the input is read. Standard input (``-``) is read in this process alone."""
        if str(source) == "-":
            return cls(1)
        workers = cls(processes)
        if input_bytes(source) >= WARM_BYTES:
            workers.warm()
        return workers

    def warm(self) -> None:
        """Start the pool's processes now, each with the document stage imported and wordfreq's
        table loaded, so that they get ready while this process reads the input (a process pool
        starts a process only when a job is submitted: one warm-up job per process)."""
        pool = self.pool(self.count)
        if pool is not None:
            for _ in range(self.count - 1):
                pool.submit(_warm_up)

    def run(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """``(k, fn(*jobs[k]))`` for every job, in the order they finish (see :func:`shared`)."""
        return shared(fn, jobs, self.pool(len(jobs)), self.count - 1)

    def close(self) -> None:
        """Stop the pool and its processes now, without letting them tear down: a run closes its
        workers once every result is back (or on an error), so nothing of theirs is lost, and an
        interpreter's teardown kept ``dedup clean`` waiting about 0.15 s at exit after the outputs
        were written (Reuters dev). A job cut short leaves at most a temporary file in the work
        folder (parts are written atomically). The pool's own thread is then joined, so that its
        queues are closed (and their semaphores released) before this process goes on to exit."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # the pool's processes (Python 3.14's pool.terminate_workers() does the same)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


WARM_BYTES = 1 << 20  # an input this large is shared out; a smaller one may not need the workers at all


def input_bytes(source, enough: int = WARM_BYTES) -> int:
    """The size on disk of an input file, or of the files of an input folder, counted until it
    reaches ``enough`` (a folder of a million files is not listed twice); 0 when unreadable."""
    path = Path(str(source))
    try:
        if not path.is_dir():
            return path.stat().st_size
        total = 0
        for f in path.rglob("*"):
            if f.is_file():
                total += f.stat().st_size
                if total >= enough:
                    break
        return total
    except OSError:
        return 0  # the reader names the problem


def _leave_with(parent: int) -> None:
    """A worker's initializer: the worker exits once the process that started it is gone. A run
    killed with ``kill -9`` (or by the kernel for want of memory) closes nothing, and its workers,
    each holding its imports and tables (about 200 MB), would otherwise wait for jobs forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK)
        os._exit(1)

    threading.Thread(target=watch, name="dedup-parent-watch", daemon=True).start()


_PARENT_CHECK = 0.5  # seconds between a worker's looks at its parent


def _warm_up() -> None:
    """In a new worker: what its first document-stage job would otherwise load."""
    from . import pipeline  # noqa: F401  (the stage modules, polars, numpy, ftfy, rapidfuzz)
    from .garble import zipf

    zipf("the")  # loads wordfreq's English table


def shared(fn: Callable, jobs: Iterable[tuple], pool: Executor | None = None, slots: int = 0) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*job)`` for every job, ``slots`` at a time on ``pool`` and the rest in this process,
    yielding ``(k, result)`` for job ``k`` as each finishes (so not in order).

    Jobs are handed out in order to whoever comes free first: a feeder thread (which only waits)
    gives the pool its next job the moment one of its ``slots`` finishes, and this process takes the
    next one whenever it has finished its own. ``jobs`` may be a generator: a job is made only when
    it is handed out (under a lock, by whichever thread takes it), so at most ``slots + 1`` exist at
    once, and an error raised while making one is raised here. With no pool, or no slots, every job
    runs here, in order. ``fn`` and the jobs must be picklable for the pool. An error in a job, or a
    broken pool, is raised here when its turn comes.
    """
    if pool is None or slots < 1:
        for k, job in enumerate(jobs):
            yield k, fn(*job)
        return
    source = iter(jobs)
    lock = threading.Lock()
    given = [0]  # jobs handed out so far
    spent: list = [False, None]  # the jobs are exhausted; the error that making one raised

    def take() -> tuple[int, tuple] | None:
        with lock:
            if spent[0]:
                return None
            try:
                job = next(source)
            except StopIteration:
                spent[0] = True
                return None
            except BaseException as exc:
                spent[0], spent[1] = True, exc
                raise
            given[0] += 1
            return given[0] - 1, job

    finished: queue.SimpleQueue = queue.SimpleQueue()  # (k, future), or (None, error) from the feeder

    def feed() -> None:
        running: dict = {}
        try:
            while True:
                while len(running) < slots and (got := take()) is not None:
                    running[pool.submit(fn, *got[1])] = got[0]
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    finished.put((running.pop(f), f))
        except BaseException as exc:  # the pool broke or shut down, or a job could not be made: raised below
            finished.put((None, exc))

    # the pool's threads move each job and result through a pipe in chunks, taking the GIL back for
    # every chunk: at the default 5 ms switch interval, while this process computes, that left a
    # worker idle about 0.5 s between jobs (measured on the synthetic 20k corpus)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _SWITCH_INTERVAL))
    threading.Thread(target=feed, name="dedup-feeder", daemon=True).start()
    try:
        yield from _collect(fn, take, given, spent, finished)
    finally:
        sys.setswitchinterval(interval)


_SWITCH_INTERVAL = 0.0002  # seconds; see shared


def _collect(fn: Callable, take: Callable, given: list[int], spent: list, finished: queue.SimpleQueue) -> Iterator[tuple[int, Any]]:
    """The loop of :func:`shared` in this process: run the next job, or wait for the pool's. It ends
    when the jobs are exhausted and every one handed out has been yielded (then nothing runs on the
    pool), raising the error that making a job raised, if any."""
    yielded = 0
    while True:
        got = take()
        if got is not None:
            k, job = got
            result = fn(*job)
            yielded += 1
            yield k, result
            ready = []
        elif yielded == given[0]:
            if spent[1] is not None:
                raise spent[1]
            return
        else:  # nothing left to take: wait for the pool
            ready = [finished.get()]
        while not finished.empty():
            ready.append(finished.get())
        for k, f in ready:
            if k is None:
                raise f
            yielded += 1
            yield k, f.result()
