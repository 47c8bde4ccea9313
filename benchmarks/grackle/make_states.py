"""States and thermoemu reference results for the Grackle baseline (run with the thermoemu venv).

Writes
  /tmp/grackle-states.npz     n_H [cm^-3], x (7, N) = y(H), y(H2), y(e-), y(H+), y(H-), y(H2+), T [K]
                              (y = n_i / n_H), t_ff = free_fall_time(1e6) [s], dt_hydro (N,) [s]
  /tmp/grackle-reference.npz  sub (2048 cell indices) and the converged thermoemu result
                              (rosenbrock, rtol 1e-7) of those cells for each case

The states are exactly those of benchmarks/bench_solver.py: sample_region(1, 32768, default_rng(0)).
dt_hydro is the "typical hydro step" dt = 1e-3 t_ff(n_H) of each cell, made piecewise constant
so that Grackle (whose solve_chemistry takes one scalar dt per call) can use it exactly: the cells
sorted by n_H are split into 256 groups of 128 and each group gets 1e-3 t_ff at the geometric-mean
n_H of the group (within a group t_ff varies by ~2%).

Run (from the repository root):  .venv/bin/python benchmarks/grackle/make_states.py
Then:                   see benchmarks/grackle/bench_grackle.py
"""

from __future__ import annotations

import time

import numpy as np

from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.sampling import sample_region
from thermoemu.solvers.rosenbrock import SolverSettings, integrate

CELLS = 32768
GROUPS = 256
SUBSET = 2048


def hydro_dt(n_H, fraction=1e-3, groups=GROUPS):
    order = np.argsort(n_H, kind="stable")
    dt = np.empty_like(n_H)
    for idx in np.array_split(order, groups):
        dt[idx] = fraction * float(free_fall_time(np.exp(np.log(n_H[idx]).mean())))
    return dt


def main():
    n_H, x = sample_region(1, CELLS, np.random.default_rng(0))
    t_ff = float(free_fall_time(1e6))
    dt_hydro = hydro_dt(n_H)
    np.savez("/tmp/grackle-states.npz", n_H=n_H, x=x, t_ff=t_ff, dt_hydro=dt_hydro)
    print(f"t_ff(1e6) = {t_ff:.6e} s; n_H {n_H.min():.3e}..{n_H.max():.3e}; "
          f"T {x[6].min():.1f}..{x[6].max():.1f} K; dt_hydro {dt_hydro.min():.3e}..{dt_hydro.max():.3e} s")

    net = default_network()
    sub = np.sort(np.random.default_rng(3).choice(CELLS, size=SUBSET, replace=False))
    cell = net.cell_parameters(n_H[sub])
    cases = {"dt_0.1tff": np.full(SUBSET, 0.1 * t_ff), "dt_1e-3tff": np.full(SUBSET, 1e-3 * t_ff),
             "hydro_1e-3tff_own": dt_hydro[sub]}
    out = {"sub": sub}
    for name, dt in cases.items():
        t0 = time.perf_counter()
        res = integrate(net, x[:, sub], cell, dt, SolverSettings(rtol=1e-7))
        out[name] = res.x
        out[name + "_success"] = res.success
        print(f"reference {name}: {time.perf_counter() - t0:.1f} s, success {res.success.mean():.4f}, "
              f"median substeps {np.median(res.substeps):.0f}", flush=True)
    np.savez("/tmp/grackle-reference.npz", **out)


if __name__ == "__main__":
    main()
