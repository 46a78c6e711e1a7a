"""Many independent tasks (model fits, SBC or planning replications), here or on a Dask cluster.

:func:`run_tasks` is the one engine: it runs ``function(task)`` for every task, in this process
(one after another, or ``threads`` at a time), or on a ``dask.distributed`` cluster (``local:N``
for N local worker processes, or the address of a running scheduler, as ``predict --cluster``).
With a :class:`TaskStore` each result is written atomically as soon as it comes back (by this
process: workers need no shared disk), and tasks whose result is already on disk are skipped, so
a killed run resumes where it stopped. ``on_done(task, seconds)`` reports progress after each
task (``seconds`` None for a skipped one). The results do not depend on where a task ran: the
function must be deterministic in its task (seeded), and the engine passes nothing else to it.

A task and the function are sent to the workers by pickling, so both must be picklable
(top-level functions or instances of top-level classes; no lambdas on a cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from perceptiongap.errors import InputError

__all__ = ["OnDone", "TaskStore", "dask_client", "parse_cluster", "run_on_dask", "run_tasks"]

T = TypeVar("T")
R = TypeVar("R")

#: ``on_done(task, seconds)``: called in this thread after each task; ``seconds`` is None when
#: the task's result was already on disk.
OnDone = Callable[[T, "float | None"], None]


@dataclass(frozen=True)
class TaskStore(Generic[T, R]):
    """Where each task's result lives on disk: ``path(task)``; ``save(result, path)`` must write
    atomically (``perceptiongap.files.atomic_path``); ``load(path)`` reads a result back (None:
    results already on disk are not read, and come back as None)."""

    path: Callable[[T], Path]
    save: Callable[[R, Path], None]
    load: Callable[[Path], R] | None = None


def parse_cluster(address: str) -> int | None:
    """The number of workers of ``local:N`` (N >= 1), or None for a scheduler address."""
    if not address.startswith("local:"):
        return None
    try:
        n_workers = int(address.removeprefix("local:"))
    except ValueError:
        n_workers = 0
    if n_workers < 1:
        raise InputError(f"{address!r}: expected local:N with N >= 1 worker processes", source="cluster")
    return n_workers


@contextmanager
def dask_client(address: str):
    """A dask.distributed Client for ``local:N`` (a LocalCluster of N single-threaded worker
    processes, closed on exit) or for the scheduler address of a running cluster."""
    from distributed import Client, LocalCluster

    n_workers = parse_cluster(address)
    if n_workers is not None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    else:
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError(f"cannot connect to the Dask scheduler at {address!r}: {error}",
                             source="cluster") from None
        try:
            yield client
        finally:
            client.close()


def run_on_dask(tasks: Iterable[T], function: Callable[[T], R], client, in_flight: int | None = None
                ) -> Iterator[tuple[T, R]]:
    """(task, result) as the tasks finish on a dask.distributed cluster, at most ``in_flight``
    (default: twice the cluster's threads) submitted at once, so that a long task list never sits
    in memory as futures. Tasks still queued are cancelled when the caller stops early."""
    from distributed import as_completed as dask_completed

    in_flight = in_flight or 2 * max(sum(client.nthreads().values()), 1)
    pending = iter(tasks)
    owner = {}
    queue = dask_completed()
    try:
        for task in pending:
            future = client.submit(function, task, pure=False)
            owner[future.key] = task
            queue.add(future)
            if len(owner) >= in_flight:
                break
        for future in queue:
            task = owner.pop(future.key)
            result = future.result()
            future.release()
            yield task, result
            following = next(pending, None)
            if following is not None:
                new = client.submit(function, following, pure=False)
                owner[new.key] = following
                queue.add(new)
    finally:
        for future in list(queue.futures):
            future.cancel()


class _Timed:
    """``function`` returning (result, seconds it took where it ran); picklable when ``function`` is."""

    def __init__(self, function: Callable):
        self.function = function

    def __call__(self, task):
        start = time.perf_counter()
        result = self.function(task)
        return result, time.perf_counter() - start


def _run_in_threads(tasks: Sequence[T], function: Callable, threads: int) -> Iterator[tuple[T, object]]:
    if threads <= 1:
        for task in tasks:
            yield task, function(task)
        return
    with ThreadPoolExecutor(max_workers=threads) as executor:
        futures = {executor.submit(function, task): task for task in tasks}
        failure: BaseException | None = None
        try:
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    yield futures[future], future.result()
                elif failure is None:
                    # A task failed: start nothing new; tasks in flight finish and their results
                    # are still handed back (saved), then the first error is raised.
                    failure = error
                    for other in futures:
                        other.cancel()
        except BaseException:
            # Interrupted (or the caller stopped): start nothing new; tasks in flight finish and save.
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        if failure is not None:
            raise failure


def run_tasks(
    tasks: Sequence[T],
    function: Callable[[T], R],
    *,
    store: TaskStore[T, R] | None = None,
    cluster: str | None = None,
    threads: int = 1,
    on_done: OnDone | None = None,
) -> list[R | None]:
    """``function(task)`` for every task; the results in task order.

    Where: ``cluster`` (``local:N`` or a scheduler address) runs them on dask.distributed;
    otherwise they run in this process, ``threads`` at a time (1: one after another). With a
    ``store``, tasks whose result file exists are skipped (their result is ``store.load`` of it,
    or None), and each new result is saved as soon as it comes back. A task that raises stops the
    run with its exception; the results saved before are kept.
    """
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}", source="threads")
    results: dict[int, R | None] = {}
    todo = []
    for index, task in enumerate(tasks):
        if store is not None and store.path(task).is_file():
            results[index] = store.load(store.path(task)) if store.load is not None else None
            if on_done:
                on_done(task, None)
        else:
            todo.append((index, task))

    timed = _Timed(_Indexed(function))
    if cluster is None and store is not None:
        # Here, each thread saves its own result: a fit in flight when the run is interrupted is kept.
        timed = _Saved(timed, store)
    with _executor(todo, timed, cluster, threads) as finished:
        for (index, task), (result, seconds) in finished:
            if store is not None and cluster is not None:
                store.save(result, store.path(task))  # on a cluster: by this process, as results come back
            results[index] = result
            if on_done:
                on_done(task, seconds)
    return [results[index] for index in range(len(tasks))]


class _Saved:
    """``timed`` whose result is saved by the thread that computed it."""

    def __init__(self, timed: Callable, store: TaskStore):
        self.timed, self.store = timed, store

    def __call__(self, item):
        result, seconds = self.timed(item)
        self.store.save(result, self.store.path(item[1]))
        return result, seconds


class _Indexed:
    """``function`` applied to the task of an (index, task) pair."""

    def __init__(self, function: Callable):
        self.function = function

    def __call__(self, item):
        return self.function(item[1])


@contextmanager
def _executor(items: Sequence, function: Callable, cluster: str | None, threads: int):
    if cluster is not None and items:
        with dask_client(cluster) as client:
            yield run_on_dask(items, function, client)
    else:
        yield _run_in_threads(items, function, threads)
