"""The emulator's predicted changes over tau and tau / q against the solver's, along the reference collapse.

    python scripts/probe_changes.py [--model default] [--q 30] [--densities 0.1,10,100,1e3,1e5,1e9,1e13,1e14,1e15]

For each density, the state of the reference collapse (dt = 0.1 t_ff) there; tau from the
region's DGM net (capped at dt_max); then, per variable, the relative change (x(t) - x0) / x0 at
t = tau and t = tau / q from the DeepONet and from the reference solver, and their ratio
r = change(tau / q) / change(tau), the number ``update="shaped"`` reads
(:mod:`thermoemu.primordial.update_rules`; a straight path has r = 1/q). Prints one line per variable;
docs/emulator.md quotes it.
"""

import argparse

import numpy as np


def main(argv=None):
    from thermoemu.primordial.emulator import Emulator, _clamp_trace
    from thermoemu.primordial.models.features import VARIABLES
    from thermoemu.primordial.onezone import collapse, reference_at_own_times
    from thermoemu.primordial.physics.network import default_network, free_fall_time
    from thermoemu.primordial.sampling import region_of
    from thermoemu.solvers.rosenbrock import SolverSettings
    from thermoemu.primordial.update_rules import SHAPE_PROBE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--q", type=float, default=SHAPE_PROBE, help="probe at tau / q (default: the rule's q)")
    p.add_argument("--densities", default="0.1,10,100,1e3,1e5,1e9,1e13,1e14,1e15")
    a = p.parse_args(argv)
    network, settings = default_network(), SolverSettings()
    densities = [float(v) for v in a.densities.split(",")]
    track = collapse(step_fraction=0.1, n_end=max(densities) * 1.5, network=network, settings=settings)
    n_all = track.n_H.values
    x_all = np.concatenate([track.abundance.values.T, track.temperature.values[None]])
    em = Emulator(a.model)
    for target in densities:
        i = int(np.argmin(np.abs(np.log(n_all / target))))
        n, x = n_all[i:i + 1], x_all[:, i:i + 1]
        m = em.regions[int(region_of(n)[0])]
        t_ff = free_fall_time(n)
        xin = _clamp_trace(m, x)
        tau, _ = em.timescales_arrays(n, x)  # (1, 7), capped at dt_max, as the update uses it
        emu = {t: 10.0 ** m.predict_log(n, xin, tau / t)[0] for t in (1.0, a.q)}
        ref = {t: reference_at_own_times(network, settings, n, x, tau.T / t)[0][:, 0] for t in (1.0, a.q)}
        print(f"n_H = {n[0]:.3g} cm^-3 (region {int(region_of(n)[0])})")
        for k, v in enumerate(VARIABLES):
            x0 = x[k, 0]
            ce = {t: (emu[t][k] - x0) / x0 for t in emu}
            cr = {t: (ref[t][k] - x0) / x0 for t in ref}
            print(f"  {v:12s} tau/t_ff {tau[0, k] / t_ff[0]:9.3g}  change(tau) emulator {ce[1.0]:+.4f} solver "
                  f"{cr[1.0]:+.4f}  change(tau/{a.q:g}) emulator {ce[a.q]:+.4f} solver {cr[a.q]:+.4f}  r emulator "
                  f"{ce[a.q] / ce[1.0]:+.3f} solver {cr[a.q] / cr[1.0]:+.3f}")


if __name__ == "__main__":
    main()
