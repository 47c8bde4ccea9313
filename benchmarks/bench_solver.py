"""Cells per second of the batched solver against the per-cell scipy loop, same states, same run.

32^3 random Region-1 states (OS25 Table 1), dt = 0.1 t_ff and 1e-3 t_ff with t_ff at n_H = 1e6
cm^-3 (1.378e12 s). The batched Rosenbrock solver integrates all 32768 cells with each backend
(``compiled``: numba, cell by cell; ``vectorized``: numpy over all cells), one process, one thread.
Baselines on random subsets of the same states, in the same run: the per-cell scipy loop
(``solve_ivp`` BDF with the analytic Jacobian, the same rtol), once with the compiled kernel as its
right-hand side (``scipy_loop``: the fastest scipy loop we can build) and once with the network's
numpy methods on one-cell arrays (``scipy_loop_numpy_rhs``: the loop of earlier versions).
Convergence: each batched result against the compiled result at rtol 1e-7 on a 4096-cell subset,
and against the scipy loop on its subset: fraction of cells with |d log10| <= 0.01 in T and every
species above 1e-20. A last pair of rows times a hydro-like step on relaxed states: the same cells
after 0.1 t_ff(1e6) (the compiled result), then dt = 1e-3 t_ff(n_H) of each cell, at the default
rtol (``relaxed_hydro_step``). Grackle's compiled solver on the same states is measured by
benchmarks/grackle/bench_grackle.py (its own venv); its figures are copied into the output when
benchmarks/grackle/grackle.json exists, marked as from that run.

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

from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.sampling import sample_region
from thermoemu.primordial.physics import compiled
from thermoemu.solvers.percell import integrate_per_cell
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.primordial.validation import _dlog10

ROOT = Path(__file__).resolve().parent


def converged_fraction(a, b):
    return float((_dlog10(a, b).max(axis=0) <= 0.01).mean())


def _scipy_loop(network, x, cell, dt, rtol, numpy_rhs):
    supports = compiled.supports
    if numpy_rhs:  # the per-cell functions fall back to the network's numpy methods
        compiled.supports = lambda *args: False
    try:
        t0 = time.perf_counter()
        res = integrate_per_cell(network, x, cell, dt, method="BDF", rtol=rtol)
        return res, time.perf_counter() - t0
    finally:
        compiled.supports = supports


def run(cells=32768, scipy_cells=48, seed=0, rtols=(1e-4, 1e-3), backends=("compiled", "vectorized")):
    network = default_network()
    n_H, x = sample_region(1, cells, np.random.default_rng(seed))
    cell = network.cell_parameters(n_H)
    subset = np.random.default_rng(seed + 1).choice(cells, size=min(scipy_cells, cells), replace=False)
    numpy_subset = subset[: max(1, len(subset) // 3)]
    conv = np.random.default_rng(seed + 2).choice(cells, size=min(4096, cells), replace=False)
    t_ff = float(free_fall_time(1e6))
    # compile (first use) or load the cache of both compiled entry points before any timing
    integrate(network, x[:, :2], network.take_cells(cell, np.arange(2)), 1.0)
    integrate_per_cell(network, x[:, :1], network.take_cells(cell, np.arange(1)), 1.0, method="BDF")
    rows = []
    for fraction in (0.1, 1e-3):
        dt = np.full(cells, fraction * t_ff)
        reference = integrate(network, x[:, conv], network.take_cells(cell, conv), dt[conv],
                              SolverSettings(rtol=1e-7, rtol_dense=1e-7))
        for rtol in rtols:
            loop, wall_loop = _scipy_loop(network, x[:, subset], network.take_cells(cell, subset), dt[subset],
                                          rtol, numpy_rhs=False)
            _, wall_numpy = _scipy_loop(network, x[:, numpy_subset], network.take_cells(cell, numpy_subset),
                                        dt[numpy_subset], rtol, numpy_rhs=True)
            for backend in backends:
                t0 = time.perf_counter()
                res = integrate(network, x, cell, dt, SolverSettings(rtol=rtol, backend=backend))
                wall = time.perf_counter() - t0
                row = {
                    "dt_over_tff_1e6": fraction, "dt_s": fraction * t_ff, "rtol": rtol, "backend": backend,
                    "cells": cells, "batched_wall_s": wall, "batched_cells_per_s": cells / wall,
                    "batched_success": float(res.success.mean()),
                    "median_substeps": float(np.median(res.substeps)), "mean_substeps": float(res.substeps.mean()),
                    "us_per_cell_substep": 1e6 * wall / float(res.substeps.sum()),
                    "scipy_cells": int(subset.size), "scipy_wall_s": wall_loop,
                    "scipy_cells_per_s": subset.size / wall_loop,
                    "speedup": (cells / wall) / (subset.size / wall_loop),
                    "scipy_numpy_rhs_cells": int(numpy_subset.size),
                    "scipy_numpy_rhs_cells_per_s": numpy_subset.size / wall_numpy,
                    "speedup_vs_numpy_rhs_loop": (cells / wall) / (numpy_subset.size / wall_numpy),
                    "converged_vs_rtol1e-7": converged_fraction(res.x[:, conv], reference.x),
                    "agree_with_scipy_subset": converged_fraction(res.x[:, subset], loop.x),
                }
                rows.append(row)
                print(f"dt = {fraction:g} t_ff(1e6), rtol {rtol:g}, {backend:10s}: {row['batched_cells_per_s']:7.0f} cells/s "
                      f"({row['us_per_cell_substep']:.2f} us per cell-substep, median {row['median_substeps']:.0f}), "
                      f"scipy loop {row['scipy_cells_per_s']:5.1f} cells/s ({row['speedup']:5.0f}x; numpy-rhs loop "
                      f"{row['scipy_numpy_rhs_cells_per_s']:4.1f}, {row['speedup_vs_numpy_rhs_loop']:5.0f}x), "
                      f"converged {row['converged_vs_rtol1e-7']:.4f}, agrees with scipy {row['agree_with_scipy_subset']:.3f}",
                      flush=True)
    relaxed = integrate(network, x, cell, np.full(cells, 0.1 * t_ff)).x
    dt = 1e-3 * free_fall_time(n_H)
    reference = integrate(network, relaxed[:, conv], network.take_cells(cell, conv), dt[conv],
                          SolverSettings(rtol=1e-7, rtol_dense=1e-7))
    for backend in backends:
        t0 = time.perf_counter()
        res = integrate(network, relaxed, cell, dt, SolverSettings(backend=backend))
        wall = time.perf_counter() - t0
        row = {"case": "relaxed_hydro_step", "dt": "1e-3 t_ff(n_H)", "rtol": 1e-4, "backend": backend, "cells": cells,
               "batched_wall_s": wall, "batched_cells_per_s": cells / wall, "batched_success": float(res.success.mean()),
               "median_substeps": float(np.median(res.substeps)), "mean_substeps": float(res.substeps.mean()),
               "converged_vs_rtol1e-7": converged_fraction(res.x[:, conv], reference.x)}
        rows.append(row)
        print(f"relaxed states, dt = 1e-3 t_ff(n_H), rtol 1e-4, {backend:10s}: {row['batched_cells_per_s']:8.0f} cells/s "
              f"(median {row['median_substeps']:.0f} substeps), converged {row['converged_vs_rtol1e-7']:.4f}", flush=True)
    return rows


def grackle_context():
    """Grackle's cells/s and self-convergence on the same states, from benchmarks/grackle (if run)."""
    path = ROOT / "grackle" / "grackle.json"
    if not path.exists():
        return None
    g = json.loads(path.read_text())
    return {"source": str(path.relative_to(ROOT.parent)), "grackle": g.get("grackle"), "timing": g.get("timing"),
            "self_convergence": g.get("self_convergence"),
            "agreement_with_thermoemu_rtol1e-7": g.get("agreement_with_thermoemu_rtol1e-7")}


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
    meta["numba"] = __import__("numba").__version__ if compiled.available() else None
    (out / "solver.json").write_text(json.dumps({"meta": meta, "rows": rows, "grackle_same_states": grackle_context()},
                                                indent=2))
    print(f"wrote {out / 'solver.json'}")


if __name__ == "__main__":
    main()
