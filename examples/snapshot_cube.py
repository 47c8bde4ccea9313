"""A 3-D snapshot cube, numpy- or dask-backed, advanced by one hydro step with the reference solver.

Run: python examples/snapshot_cube.py
"""

import numpy as np
import xarray as xr

import thermoemu as te
from thermoemu.primordial.sampling import sample_region

shape = (16, 16, 16)
n_H, x = sample_region(1, int(np.prod(shape)), np.random.default_rng(0))
dims = ("x", "y", "z")
state = te.primordial_state(
    xr.DataArray(n_H.reshape(shape), dims=dims),
    xr.DataArray(x[6].reshape(shape), dims=dims),
    xr.DataArray(x[:6].T.reshape(shape + (6,)), dims=dims + ("species",),
                 coords={"species": list(te.SPECIES)}),
)
lazy = te.integrate_state(state.chunk({"x": 4}), "1e9 s")  # lazy, one task per chunk
out = lazy.compute()
print(out)
print("all cells succeeded:", bool(out.success.all()), "| median substeps:", int(out.substeps.median()))
