"""The collapse (OS25 Fig. 7) with two changes to the shipped physics-first set, to find what the
0.04 dex goal needs in regions 3 and 4 (docs/emulator.md, issue 26):

1. region 4: the network's backward-Euler step (``update_rules.backward_euler_step``: Newton, the
   reference solver's step where Newton fails) with the trace closure, no net, instead of the
   linearly implicit physics step plus net;
2. region 3 in addition: no net correction on gentle steps (one substep).

    python scripts/collapse_variants_physics_first.py [--fractions 0.1,0.01,0.001]
"""

import argparse

import numpy as np

from thermoemu.primordial.closures import close_trace_species
from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import collapse_comparison
from thermoemu.primordial.models.features import log_state
from thermoemu.primordial.update_rules import backward_euler_step


def backward_euler_region(em, region):
    def predict(n_H, x0, t):
        t = np.asarray(t, dtype=float)
        dt = t[:, 0] if t.ndim == 2 else np.broadcast_to(t, np.shape(n_H))
        x1 = backward_euler_step(em.network, np.asarray(n_H), np.asarray(x0, dtype=float), dt)[0]
        return log_state(close_trace_species(em.network, n_H, x1, x0, dt))
    em.regions[region].predict_log = predict


def no_net_on_gentle_steps(em, region):
    m = em.regions[region]
    correction = m.residual_correction

    def corrected(n_H, x0, dt, x_base, substeps):
        out = correction(n_H, x0, dt, x_base, substeps)
        out[np.asarray(substeps) == 1] = 0.0
        return out
    m.residual_correction = corrected


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", default="0.1,0.01,0.001")
    a = p.parse_args()
    fractions = [float(f) for f in a.fractions.split(",")]
    for label, changes in (("region 4 backward Euler", (backward_euler_region,)),
                           ("region 4 backward Euler + region 3 no net on gentle steps",
                            (backward_euler_region, no_net_on_gentle_steps))):
        em = Emulator("default")
        backward_euler_region(em, 4)
        if no_net_on_gentle_steps in changes:
            no_net_on_gentle_steps(em, 3)
        _, rows = collapse_comparison(em, fractions)
        for r in rows:
            by_region = ", ".join(f"{v:.4f}" for _, v in sorted(r["max_dlogT_by_region"].items()))
            print(f"{label}: dt = {r['step_fraction']:g} t_ff: max |dlog T| = {r['max_dlogT']:.4f} "
                  f"(regions 0-4: {by_region})", flush=True)


if __name__ == "__main__":
    main()
