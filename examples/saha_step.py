"""High density: cells above 1e18 cm^-3 go to Saha equilibrium at conserved total energy (OS25 App. B).

Run: python examples/saha_step.py   (builds the Saha table into ~/.cache/thermoemu on first use, ~1.5 min)
"""

import numpy as np

import thermoemu as te

# three dense cells, out of equilibrium (abundances of a cooler gas), and one at 1e12 for contrast
n_H = np.array([1e12, 1e19, 1e20, 1e21])
T = np.array([1200.0, 4000.0, 6000.0, 12000.0])
y = np.array([te.saha_abundances(1e19, 3000.0)] * 4)
state = te.primordial_state(n_H, T, y, dims="cell", project=True)

out = te.integrate_state(state, "1e4 s")   # the network below 1e18, the Saha table above
E_in = te.total_energy(state["temperature"].values, state["abundance"].values.T)
E_out = te.total_energy(out["temperature"].values, out["abundance"].values.T)
for i in range(4):
    print(f"n_H = {n_H[i]:.0e}: T {T[i]:7.0f} -> {float(out['temperature'][i]):7.0f} K, "
          f"y(H2) {y[i, 1]:.3f} -> {float(out['abundance'][i, 1]):.3f}, "
          f"Saha: {bool(out['saha_equilibrium'][i])}, E_tot change {E_out[i] / E_in[i] - 1:+.1e}")

# the same through the emulator accessor (status 6 = Saha table)
print("emu_status:", state.emu.step("1e4 s")["emu_status"].values)
