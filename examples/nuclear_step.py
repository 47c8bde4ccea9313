"""A silicon-burning step with the shipped mesa80 NNNs on a temperature x density grid (make demo runs this).

Run: python examples/nuclear_step.py [OUT_DIR]   (default results/; writes nuclear_step.nc and nuclear_step.png)

The shipped NNNs are physics-first: the network's own linearly implicit step where its error
estimate trusts it, small CPU-trained nets elsewhere (docs/nuclear.md, "Physics-first NNNs", gives
their errors against mesa80 and persistence); the step needs mesa80's compiled kernel, built on
first use (about 30 s). Cells outside the trained domain are flagged here (``out_of_domain="flag"``)
rather than burned with mesa80.
"""

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import thermoemu as te  # noqa: E402

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
out_dir.mkdir(parents=True, exist_ok=True)

# seed 000's reference composition on a 24 x 24 grid of log T in [9.3, 9.8] and log rho in [7.2, 8.8]
T = xr.DataArray(np.logspace(9.3, 9.8, 24), dims="T")
rho = xr.DataArray(np.logspace(7.2, 8.8, 24), dims="rho")
start = {"si28": 0.5, "s32": 0.25, "ar36": 0.1, "ca40": 0.1, "fe54": 0.05}
state = te.nuclear_state(rho, T, start).assign_coords(T=T, rho=rho)

t0 = time.perf_counter()
new = state.emu.step(0.1, out_of_domain="flag")      # dt = 0.1 s, the shipped default NNNs
wall = time.perf_counter() - t0
new.to_netcdf(out_dir / "nuclear_step.nc")
n_ood = int(new["emu_out_of_domain"].sum())
print(f"NNN step of {state['T'].size * state['rho'].size} cells in {wall:.2f} s; {n_ood} flagged out of domain; "
      f"Ye {float(state['ye'].mean()):.5f} -> {float(new['ye'].min()):.5f}..{float(new['ye'].max()):.5f}")

point = new.sel(T=5e9, rho=1e8, method="nearest")
top = point["mass_fraction"].sortby(point["mass_fraction"], ascending=False).isel(isotope=slice(0, 10))
print(f"at T = {float(point['T']):.3g} K, rho = {float(point['rho']):.3g} g/cc: e_nuc = {float(point['e_nuc']):.3e} erg/g, "
      f"eps_nu = {float(point['eps_nu']):.3e} erg/g/s; " + ", ".join(f"{i}={float(v):.3g}" for i, v in
                                                           zip(top["isotope"].values, top.values)))

fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
for a, name, label in ((ax[0], "ye", "Ye after 0.1 s"), (ax[1], "e_nuc", "e_nuc over 0.1 s [erg/g]")):
    da = new[name].transpose("rho", "T")
    m = a.pcolormesh(np.log10(new["T"]), np.log10(new["rho"]), da, shading="nearest")
    fig.colorbar(m, ax=a, label=label)
    a.set_xlabel("log10 T [K]")
    a.set_ylabel("log10 rho [g cm^-3]")
    a.plot(np.log10(float(point["T"])), np.log10(float(point["rho"])), "k+", ms=10)
ax[2].bar(range(len(top)), top.values)
ax[2].set_xticks(range(len(top)), top["isotope"].values, rotation=45)
ax[2].set_yscale("log")
ax[2].set_ylabel("mass fraction after 0.1 s")
ax[2].set_title(f"T = {float(point['T']):.2g} K, rho = {float(point['rho']):.2g} g/cc (+)")
fig.suptitle("Silicon burning, shipped physics-first mesa80 NNNs (errors in docs/nuclear.md)")
fig.tight_layout()
fig.savefig(out_dir / "nuclear_step.png", dpi=110)
print(f"wrote {out_dir / 'nuclear_step.nc'} and {out_dir / 'nuclear_step.png'}")
