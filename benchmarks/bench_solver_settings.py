"""Other solver settings on the benchmark's states: rtol 1e-2, two threads, OS25's 10 % rule.

8192 of the random Region-1 states of bench_solver.py (the same sampler and seed), dt = 0.1 and
1e-3 t_ff at n_H = 1e6 cm^-3; cells per second (one process; ``threads=2`` uses both cores) and the
converged fraction against the compiled solver at rtol 1e-7 (|d log10| <= 0.01 in T and every
species above 1e-20). docs/solver.md quotes the result.

Run: python benchmarks/bench_solver_settings.py [--cells 8192]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.sampling import sample_region
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.primordial.validation import _dlog10

SETTINGS = {
    "rtol=1e-2": SolverSettings(rtol=1e-2),
    "threads=2, rtol 1e-4": SolverSettings(threads=2),
    "relative_change (10 %)": SolverSettings(step_control="relative_change"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=8192)
    a = p.parse_args(argv)
    network = default_network()
    n_H, x = sample_region(1, a.cells, np.random.default_rng(0))
    cell = network.cell_parameters(n_H)
    t_ff = float(free_fall_time(1e6))
    integrate(network, x[:, :2], network.take_cells(cell, np.arange(2)), 1.0)  # compile or load the cache
    for fraction in (0.1, 1e-3):
        dt = np.full(a.cells, fraction * t_ff)
        reference = integrate(network, x, cell, dt, SolverSettings(rtol=1e-7, rtol_dense=1e-7))
        for label, settings in SETTINGS.items():
            t0 = time.perf_counter()
            res = integrate(network, x, cell, dt, settings)
            wall = time.perf_counter() - t0
            d = _dlog10(res.x, reference.x).max(axis=0)
            print(f"dt = {fraction:g} t_ff(1e6), {label:24s}: {a.cells / wall:8.0f} cells/s, median substeps "
                  f"{np.median(res.substeps):.0f}, converged {np.mean(d <= 0.01):.4f}", flush=True)


if __name__ == "__main__":
    main()
