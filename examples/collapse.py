"""The one-zone free-fall collapse of a first-star cloud, with the cooling breakdown plotted.

Run: python examples/collapse.py   (about 25 s at dt = 0.1 t_ff)
"""

import numpy as np

import thermoemu as te
from thermoemu.primordial.plotting import plot_collapse

track = te.collapse(step_fraction=0.1, progress=True)
plot_collapse(track, "collapse_example.png")
dense = track.where(track.n_H > 10, drop=True)
i = int(np.argmin(dense.temperature.values))
print(f"T_min = {float(dense.temperature[i]):.0f} K at n_H = {float(dense.n_H[i]):.3g} cm^-3")
for n in (1e9, 1e12, 1e15, 1e18):
    s = track.isel(step=int(np.argmin(abs(np.log10(track.n_H.values / n)))))
    main = str(s.cooling.process.values[int(np.argmax(s.cooling.values))])
    print(f"n_H = {n:.0e}: T = {float(s.temperature):6.0f} K, 2 y(H2) = {2 * float(s.abundance.sel(species='H2')):.3f}, "
          f"main coolant {main}")
