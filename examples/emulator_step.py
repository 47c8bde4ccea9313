"""The shipped emulator on a 3-D snapshot cube: one step, many short steps, timescales, out-of-domain cells.

Run: python examples/emulator_step.py
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
# one hydro step on every cell with the shipped physics-first models (physics step + closures + small
# residual nets, docs/emulator.md), and the reference beside it
new = state.emu.step("1e10 s")
ref = te.integrate_state(state, "1e10 s")
dlog = np.abs(np.log10(new.temperature / ref.temperature))
print(f"one step of 1e10 s on {new.temperature.size} cells: median |dlog10 T| vs reference = {float(dlog.median()):.4f}")

# the same, lazily, chunk by chunk on dask
lazy = state.chunk({"x": 4}).emu.step("1e10 s")
print("dask-backed:", lazy.temperature.chunks is not None, "| equal to numpy:",
      bool(np.allclose(lazy.temperature.compute(), new.temperature)))

# 100 short steps: the physics step is the network's own implicit step at short dt, so many short
# steps stay on the reference; the OS25-design set (os25-deeponet) needs its timescale-based
# update (eq. 8) or the tangent update for that
slab = state.isel(x=slice(0, 2))
for model, update in (("default", None), ("os25-deeponet", "timescale"), ("os25-deeponet", "tangent")):
    evolved = slab.emu.evolve("1e10 s", dt="1e8 s", model=model, update=update)
    dev = np.abs(np.log10(evolved.temperature / ref.temperature.isel(x=slice(0, 2))))
    print(f"after 100 steps of 1e8 s ({model}, {update or 'its own'} update): every cell succeeded: "
          f"{bool(evolved.success.all())}, median |dlog10 T| vs one reference step of 1e10 s = {float(dev.median()):.4f}")

# timescales tau_eps (eps = 0.1) of all variables, from the DGM nets of the OS25-design set
tau = state.emu.timescales(model="os25-deeponet")
print("median tau_eps [s]:", tau.median(dims).to_series().map("{:.3g}".format).to_dict())

# a cell outside the trained domain (T = 1e5 K) is flagged and advanced by the reference solver
hot = state.isel(x=0, y=0, z=slice(0, 2)).copy(deep=True)
hot["temperature"][0] = 1e5
out = hot.emu.step("1e9 s")
print("out of domain:", out.emu_out_of_domain.values, "| status:", out.emu_status.values,
      "| success:", out.success.values)
