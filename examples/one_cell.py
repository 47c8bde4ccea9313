"""One cell in a notebook: build a state, integrate it, look at the result.

Run: python examples/one_cell.py
"""

import thermoemu as te

# OS25 Fig. 2 fixed-density test: n_H = 1e12 cm^-3, T0 = 23 K; H and e- follow from conservation
state = te.primordial_state(
    n_H=te.ureg.Quantity(1e12, "cm^-3"),
    temperature=23.0,
    abundance={"H2": 5.7e-5, "H+": 6.6e-6, "H-": 4e-14, "H2+": 1e-16},
    complete=True,
)
for dt in ("2.7e6 s", "1.2e7 s", "1e9 s", "4.4e9 s"):
    out = te.integrate_state(state, dt)
    print(f"dt = {dt:>8}: T = {float(out.temperature):7.1f} K, y(H2) = {float(out.abundance.sel(species='H2')):.3g}, "
          f"substeps = {int(out.substeps)}")
