"""The dask cluster a job runs on: a given client, a scheduler's address, or a LocalCluster of
single-threaded worker processes (the default); and submit-and-collect with progress.

Long jobs (catalog builds, validations, ``thermoemu apply``) are written against a
``distributed.Client``; this module is where one comes from, so that every job runs on a laptop's
cores by default and on any existing cluster (a dask-jobqueue ``SLURMCluster``, a running
scheduler) by address.
"""

from __future__ import annotations

import contextlib
import os
import sys

import dask

__all__ = ["dask_client", "client_info", "run_tasks", "worker_environ"]


@contextlib.contextmanager
def dask_client(client=None, *, scheduler=None, n_workers=None):
    """Yield a ``distributed.Client``: ``client`` itself (left open), one connected to ``scheduler`` (an
    address such as ``tcp://host:8786``), or one on a new LocalCluster with ``n_workers`` single-threaded
    worker processes (default: the number of cores). Clients and clusters made here are closed after."""
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster
    if n_workers is not None and int(n_workers) < 1:
        raise ValueError(f"workers = {n_workers!r} is not allowed; it must be >= 1")
    if scheduler is not None:
        with Client(scheduler) as own:
            yield own
        return
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}), \
            LocalCluster(n_workers=n_workers or os.cpu_count(), threads_per_worker=1, processes=True,
                         dashboard_address=":0") as cluster, Client(cluster) as own:
        yield own


def worker_environ():
    """The environment dask's nanny gives new worker processes, less ``MALLOC_TRIM_THRESHOLD_``.

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` to hand memory back to the OS early. Setting it at
    all switches off glibc's dynamic mmap threshold, so every large temporary array is a fresh mmap whose
    pages fault in on each use: the emulator's step ran 1.6-2x slower in such a worker than in a plain
    process (34 000 against 16 000 cells/s on one core, measured here). Memory per worker stays bounded
    by the task (a slab of cells), so the LocalClusters made here leave glibc's default on.
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def client_info(client):
    """The scheduler address and worker count of a client (recorded with results)."""
    return {"scheduler": client.scheduler.address, "workers": len(client.scheduler_info()["workers"])}


def run_tasks(client, func, tasks, *, label=None, progress=False):
    """Submit ``func(*args)`` for each ``key, args`` of ``tasks``; yield ``(key, result or exception)``
    as tasks finish (a failed task yields its exception, so a job can record it and go on)."""
    from distributed import as_completed
    futures = {client.submit(func, *args, pure=False): key for key, args in tasks}
    for k, fut in enumerate(as_completed(futures), 1):
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - handed to the caller per task
            result = exc
        yield futures[fut], result
        if progress and label:
            sys.stderr.write(f"\r{label}: {k}/{len(futures)} blocks")
            sys.stderr.flush()
    if progress and label and futures:
        sys.stderr.write("\n")
