"""Cost per cell of the Saha-table step against the solvers, on the same states, in the same run.

A 32^3 cube of states above 1e18 cm^-3: n_H log-uniform in [1e18, 1e22], Saha abundances at
T log-uniform in [2000, 20000] K, then T raised by 10% so the step has work to do. Timed:

* the table step (E_tot from the state, bilinear lookup): the whole cube;
* the direct Saha solve at the same E_tot (what the table replaces; the ground truth): the cube;
* the batched reference solver (Rosenbrock, the non-equilibrium network) over dt = 0.1 t_ff on a
  random subset (``--reference-cells``), as the network would be used without the table.

All on one core. Writes benchmarks/results/saha.json.

Run: python benchmarks/bench_saha.py [--cube 32] [--reference-cells 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from thermoemu.primordial.physics.saha import saha_abundances, saha_state, total_energy
from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.saha_table import load_saha_table
from thermoemu.solvers.rosenbrock import SolverSettings, integrate


def _timed(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(cube=32, reference_cells=512, seed=0):
    rng = np.random.default_rng(seed)
    N = cube ** 3
    n_H = 10 ** rng.uniform(18, 22, N)
    T0 = 10 ** rng.uniform(np.log10(2000), np.log10(20000), N)
    x = np.concatenate([saha_abundances(n_H, T0), 1.1 * T0[None]])
    table = load_saha_table(progress=True)
    t_table, (x_tab, inside) = _timed(lambda: table.step(n_H, x))
    E = total_energy(x[6], x[:6])
    t_direct, (T_dir, _) = _timed(lambda: saha_state(n_H, E), repeat=1)
    sub = rng.choice(N, size=min(reference_cells, N), replace=False)
    network = default_network()
    dt = 0.1 * free_fall_time(n_H[sub])
    t_ref, res = _timed(lambda: integrate(network, x[:, sub].copy(), network.cell_parameters(n_H[sub]), dt,
                                          SolverSettings()), repeat=1)
    rate = {"table": N / t_table, "direct_saha": N / t_direct, "reference_solver": sub.size / t_ref}
    out = {
        "cells": N, "reference_cells": int(sub.size), "table_inside": int(inside.sum()),
        "cells_per_s": {k: round(v, 1) for k, v in rate.items()},
        "us_per_cell": {k: round(1e6 / v, 3) for k, v in rate.items()},
        "speedup_table_vs_direct_saha": round(rate["table"] / rate["direct_saha"], 1),
        "speedup_table_vs_reference_solver": round(rate["table"] / rate["reference_solver"], 1),
        "reference_solver_success": int(res.success.sum()),
        "max_rel_dT_table_vs_direct": float(np.max(np.abs(x_tab[6] / T_dir - 1))),
        "median_rel_dT_network_vs_table": float(np.median(np.abs(res.x[6] / x_tab[6, sub] - 1))),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
    }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cube", type=int, default=32)
    p.add_argument("--reference-cells", type=int, default=512)
    p.add_argument("--out", default="benchmarks/results/saha.json")
    a = p.parse_args()
    out = run(a.cube, a.reference_cells)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
