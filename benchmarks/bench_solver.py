"""Cells per second of the batched solver against the per-cell scipy loop, same states, same run.

32^3 random Region-1 states (OS25 Table 1), dt = 0.1 t_ff and 1e-3 t_ff with t_ff at n_H = 1e6
cm^-3 (1.378e12 s). The batched Rosenbrock solver integrates all 32768 cells; the per-cell scipy
loop (solve_ivp BDF with the analytic/FD Jacobian, the same rtol) integrates a random subset of the
same states, and its rate is cells per second over that subset. Convergence: the batched result at
its default rtol against the batched result at rtol 1e-7 (all cells) and against the scipy loop
(subset): fraction of cells with |d log10| <= 0.01 in T and every species above 1e-20.

Run: python benchmarks/bench_solver.py [--cells 32768] [--scipy-cells 48] [-o benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from thermoemu.reference import default_network, free_fall_time
from thermoemu.sampling import sample_region
from thermoemu.solvers.percell import integrate_per_cell
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.validation import _dlog10


def converged_fraction(a, b):
    return float((_dlog10(a, b).max(axis=0) <= 0.01).mean())


def run(cells=32768, scipy_cells=48, seed=0, rtols=(1e-4, 1e-3)):
    network = default_network()
    n_H, x = sample_region(1, cells, np.random.default_rng(seed))
    cell = network.cell_parameters(n_H)
    subset = np.random.default_rng(seed + 1).choice(cells, size=min(scipy_cells, cells), replace=False)
    conv = np.random.default_rng(seed + 2).choice(cells, size=min(4096, cells), replace=False)
    t_ff = float(free_fall_time(1e6))
    rows = []
    for fraction in (0.1, 1e-3):
        dt = np.full(cells, fraction * t_ff)
        reference = integrate(network, x[:, conv], network.take_cells(cell, conv), dt[conv], SolverSettings(rtol=1e-7))
        for rtol in rtols:
            t0 = time.perf_counter()
            res = integrate(network, x, cell, dt, SolverSettings(rtol=rtol))
            wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            loop = integrate_per_cell(network, x[:, subset], network.take_cells(cell, subset), dt[subset],
                                      method="BDF", rtol=rtol)
            wall_loop = time.perf_counter() - t0
            row = {
                "dt_over_tff_1e6": fraction, "dt_s": fraction * t_ff, "rtol": rtol, "cells": cells,
                "batched_wall_s": wall, "batched_cells_per_s": cells / wall,
                "batched_success": float(res.success.mean()),
                "median_substeps": float(np.median(res.substeps)), "mean_substeps": float(res.substeps.mean()),
                "scipy_cells": int(subset.size), "scipy_wall_s": wall_loop,
                "scipy_cells_per_s": subset.size / wall_loop,
                "speedup": (cells / wall) / (subset.size / wall_loop),
                "converged_vs_rtol1e-7": converged_fraction(res.x[:, conv], reference.x),
                "agree_with_scipy_subset": converged_fraction(res.x[:, subset], loop.x),
            }
            rows.append(row)
            print(f"dt = {fraction:g} t_ff(1e6), rtol {rtol:g}: batched {row['batched_cells_per_s']:8.0f} cells/s "
                  f"(median {row['median_substeps']:.0f} substeps), scipy loop {row['scipy_cells_per_s']:6.1f} cells/s, "
                  f"speed-up {row['speedup']:6.1f}x, converged {row['converged_vs_rtol1e-7']:.4f}, "
                  f"agrees with scipy {row['agree_with_scipy_subset']:.3f}", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=32768)
    p.add_argument("--scipy-cells", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="benchmarks/results")
    a = p.parse_args(argv)
    rows = run(a.cells, a.scipy_cells, a.seed)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "threads": os.environ.get("OMP_NUM_THREADS", "default")}
    (out / "solver.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out / 'solver.json'}")


if __name__ == "__main__":
    main()
