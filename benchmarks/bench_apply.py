"""``thermoemu apply`` on snapshot-like cubes: cells/s, peak memory, and the ratio to single-thread ``ds.emu.step``.

The cubes (64^3 and 128^3 by default) are collapsing cores in Grackle's conventions
(:func:`thermoemu.snapshots.examples.grackle_cube`: each cell the reference collapse's state at its
density, n_H perturbed by +-0.05 dex and T by +-0.02 dex), written as netCDF. In the same run:

1. the single-thread speed of ``ds.emu.step`` (one torch thread, in this process) on the states of
   ``--baseline-cells`` cells drawn at random from the largest cube: the baseline;
2. ``thermoemu apply`` of each cube on a LocalCluster of 1 and 2 single-threaded workers, with the
   idle cluster's resident memory measured after its models are loaded (one warm-up task per worker)
   and the peak resident memory of all processes (this one and the workers) sampled every 0.2 s
   during the run;
3. hydrogen nuclei and charge in every cell of the output.

Goal (issue 25): with 2 workers, cells/s >= 0.8 x (2 x the single-thread speed); peak memory <= 1 GB
above the idle cluster and within 20 % of the 64^3 run's; conservation to 1e-12.

Run: python benchmarks/bench_apply.py [--sizes 64,128] [--workers 1,2] [--baseline-cells 65536] [--chunk-cells 131072]
     (writes benchmarks/results/bench_apply.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import xarray as xr

HYDROGEN = ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density")
DT = "0.01 t_ff"


class PeakMemory:
    """Peak summed RSS [bytes] of this process and its children (the dask workers), sampled in a thread."""

    def __init__(self, interval=0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def now():
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _warm():
    """Load the default models in a worker (what the idle-cluster memory includes)."""
    import torch

    import thermoemu  # noqa: F401
    from thermoemu.primordial.emulator import get_emulator
    torch.set_num_threads(1)
    get_emulator("default")
    return os.getpid()


def _baseline(path, cells, seed=0, repeats=3):
    """Single-thread ds.emu.step speed [cells/s] on ``cells`` cells drawn at random from the whole cube (median
    of ``repeats`` passes)."""
    import torch

    from thermoemu.primordial.physics.network import free_fall_time
    from thermoemu.snapshots.grackle import fields_to_state
    torch.set_num_threads(1)
    fields = xr.open_dataset(path).load().stack(cell=("x", "y", "z")).reset_index("cell", drop=True)
    pick = np.sort(np.random.default_rng(seed).choice(fields.sizes["cell"], size=cells, replace=False))
    state = fields_to_state(fields.isel(cell=pick))[["n_H", "temperature", "abundance"]]
    state.isel(cell=slice(0, 64)).emu.step(1e9)  # load the models and warm the caches
    dt = 0.01 * free_fall_time(state["n_H"])
    walls = []
    for _ in range(repeats):  # the median of a few: one pass is at the mercy of the machine's noise
        t0 = time.perf_counter()
        state.emu.step(dt)
        walls.append(time.perf_counter() - t0)
    return state["n_H"].size / float(np.median(walls)), int(state["n_H"].size)


def _conservation(fields, out):
    h_in = sum(fields[k] for k in HYDROGEN)
    h_out = sum(out[k] for k in HYDROGEN)
    charge = out["e_density"] - out["HeII_density"] / 4 - 2 * out["HeIII_density"] / 4 - (
        out["HII_density"] + out["H2II_density"] / 2 - out["HM_density"])
    return float(abs(h_out / h_in - 1).max()), float(abs(charge / out["e_density"]).max())


def run(sizes=(64, 128), workers=(1, 2), baseline_cells=65536, chunk_cells=131072, out=None):
    import dask
    from distributed import Client, LocalCluster

    from thermoemu.core.cluster import worker_environ
    from thermoemu.snapshots.apply import apply_snapshot
    from thermoemu.snapshots.examples import grackle_cube

    work = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    rows, meta = [], {"machine": platform.platform(), "cpus": os.cpu_count(), "dt": DT, "chunk_cells": chunk_cells}
    try:
        cubes = {}
        for n in sizes:
            t0 = time.perf_counter()
            cubes[n] = work / f"cube{n}.nc"
            grackle_cube(n, seed=n).to_netcdf(cubes[n])
            print(f"cube {n}^3 written in {time.perf_counter() - t0:.1f} s", flush=True)
        rate, base_n = _baseline(cubes[sizes[-1]], baseline_cells)
        meta.update(baseline_cells_per_s=rate, baseline_cells=base_n)
        print(f"single-thread ds.emu.step: {rate:.0f} cells/s on {base_n} cells", flush=True)
        for k in workers:
            # the same workers thermoemu apply starts (core.cluster.dask_client), kept to measure their idle memory
            with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}), \
                    LocalCluster(n_workers=k, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                    Client(cluster) as client:
                client.run(_warm)
                time.sleep(1.0)
                idle = PeakMemory.now()
                for n in sizes:
                    target = work / f"out{n}-{k}.nc"
                    with PeakMemory() as mem:
                        summary = apply_snapshot(cubes[n], DT, target, client=client, chunk_cells=chunk_cells,
                                                 progress=False)
                    fields, result = xr.open_dataset(cubes[n]), xr.open_dataset(target)
                    h_err, q_err = _conservation(fields, result)
                    wall_rate = summary["cells"] / summary["wall_s"]
                    row = {"cube": n, "cells": summary["cells"], "workers": k, "wall_s": round(summary["wall_s"], 2),
                           "compute_s": round(summary["compute_s"], 2),
                           "cells_per_s": round(wall_rate), "cells_per_s_without_assembly": round(summary["cells_per_s"]),
                           "ratio_to_single_thread": round(wall_rate / rate, 3),
                           "goal_ratio": 0.8 * k, "idle_rss_mb": round(idle / 2**20),
                           "peak_rss_mb": round(mem.peak / 2**20),
                           "peak_above_idle_mb": round((mem.peak - idle) / 2**20),
                           "failed": summary["failed"], "fallback": summary["fallback"],
                           "max_hydrogen_error": h_err, "max_charge_error": q_err}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    target.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"meta": meta, "rows": rows}
    out = Path(out or Path(__file__).parent / "results" / "bench_apply.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,128", help="cube sides, comma separated")
    p.add_argument("--workers", default="1,2", help="LocalCluster sizes, comma separated")
    p.add_argument("--baseline-cells", type=int, default=65536)
    p.add_argument("--chunk-cells", type=int, default=131072)
    p.add_argument("-o", "--out", default=None)
    a = p.parse_args(argv)
    run(tuple(int(s) for s in a.sizes.split(",")), tuple(int(w) for w in a.workers.split(",")), a.baseline_cells,
        a.chunk_cells, a.out)


if __name__ == "__main__":
    main()
