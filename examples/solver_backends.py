"""The reference solver's two backends and threads on a 3-D cube, with their timings.

The compiled backend (numba, each cell its own substep loop) is the default wherever it runs; the
vectorized one (numpy over all cells) gives the same result to round-off. A hydro-like step of
relaxed gas takes a few substeps per cell, a step from random Table 1 states a few hundred
(docs/solver.md has the benchmark).

Run: python examples/solver_backends.py
"""

import time

import numpy as np
import xarray as xr

import thermoemu as te
from thermoemu.primordial.sampling import sample_region

shape = (24, 24, 24)
dims = ("x", "y", "z")
n_H, x = sample_region(1, int(np.prod(shape)), np.random.default_rng(0))
state = te.primordial_state(
    xr.DataArray(n_H.reshape(shape), dims=dims),
    xr.DataArray(x[6].reshape(shape), dims=dims),
    xr.DataArray(x[:6].T.reshape(shape + (6,)), dims=dims + ("species",), coords={"species": list(te.SPECIES)}),
)
te.integrate_state(state.isel(x=[0], y=[0], z=[0]), "1 s")  # compile (first use, ~10 s) or load the cache
# relax the random states for 0.1 t_ff, then take a hydro-like step of 1e-3 t_ff per cell
relaxed = te.integrate_state(state, te.free_fall_time(state["n_H"]) * 0.1).drop_vars(["success", "status", "substeps"])
dt = te.free_fall_time(relaxed["n_H"]) * 1e-3

runs = {"compiled": te.SolverSettings(backend="compiled"),
        "compiled, 2 threads": te.SolverSettings(backend="compiled", threads=2),
        "vectorized": te.SolverSettings(backend="vectorized")}
results = {}
for label, settings in runs.items():
    t0 = time.perf_counter()
    results[label] = te.integrate_state(relaxed, dt, settings=settings)
    wall = time.perf_counter() - t0
    out = results[label]
    print(f"{label:20s}: {out['success'].size / wall:9.0f} cells/s, median substeps "
          f"{int(out['substeps'].median())}, all succeeded: {bool(out['success'].all())}")

a, b = results["compiled"]["temperature"], results["vectorized"]["temperature"]
print(f"compiled vs vectorized: max |d log10 T| = {float(np.abs(np.log10(a / b)).max()):.1e}")
