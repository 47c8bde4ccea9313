"""Where an emulator's collapse error comes from: the eq. 8 rate of change along the reference track.

    python scripts/collapse_error_budget.py [--model default] [--region 0] [--every 40] [--out results/error-budget.json]

Takes states of the reference collapse (dt = 0.01 t_ff) inside one density region and compares, per
variable, four estimates of the relative rate of change d ln x / dt (in units of 1 / t_ff):

* ``tangent``: the reference solver over 1e-4 t_ff (what the collapse at short dt follows);
* ``chord_exact``: the reference solver's chord (x(tau) - x0) / tau over the reference tau_eps,
  what eq. 8 gives with a perfect emulator; ``tangent`` against it is the update rule's own error;
* ``chord_dgm_tau``: the same chord over the DGM net's tau_eps (the DGM's share);
* ``eq8``: the emulator's chord, its DeepONet at the DGM's tau_eps (the predictor's share on top).

Writes a JSON table and prints it; docs/emulator.md quotes the region-0 rows.
"""

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None):
    from thermoemu.primordial.emulator import Emulator, _clamp_trace
    from thermoemu.primordial.models.features import VARIABLES
    from thermoemu.primordial.onezone import collapse, reference_at_own_times
    from thermoemu.primordial.physics.network import default_network, free_fall_time
    from thermoemu.primordial.sampling import region_of
    from thermoemu.solvers.rosenbrock import SolverSettings, integrate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--region", type=int, default=0)
    p.add_argument("--every", type=int, default=40, help="take every k-th step of the reference track")
    p.add_argument("--out", default="results/error-budget.json")
    a = p.parse_args(argv)
    network, settings = default_network(), SolverSettings()
    ref = collapse(step_fraction=0.01, n_end=1e18, network=network, settings=settings)
    n_all = ref["n_H"].values
    sel = np.flatnonzero(region_of(n_all) == a.region)[::a.every]
    n = n_all[sel]
    x = np.vstack([ref["abundance"].values[sel].T, ref["temperature"].values[sel][None]])
    t_ff = free_fall_time(n)
    model = Emulator(a.model).regions[a.region]
    dt_max = model.dt_max_over_t_ff * t_ff
    cell = network.cell_parameters(n)
    h = 1e-4 * t_ff
    tangent = (integrate(network, x, cell, h, settings).x - x) / h
    tau_exact = np.minimum(integrate(network, x, cell, h, settings, timescale_eps=model.eps,
                                     timescale_horizon=dt_max).tau, dt_max[None])
    xin = _clamp_trace(model, x)
    tau_dgm = np.minimum(model.timescales(n, xin, t_ff), dt_max[:, None]).T

    chord_exact = (reference_at_own_times(network, settings, n, x, tau_exact)[0] - x) / tau_exact
    chord_dgm = (reference_at_own_times(network, settings, n, x, tau_dgm)[0] - x) / tau_dgm
    eq8 = ((10.0 ** model.predict_log(n, xin, tau_dgm.T)).T - x) / tau_dgm
    rows = []
    for k in range(len(n)):
        row = {"log10_n_H": round(float(np.log10(n[k])), 3)}
        for i, v in enumerate(VARIABLES):
            s = t_ff[k] / x[i, k]
            row[v] = {"tau_exact_over_t_ff": float(tau_exact[i, k] / t_ff[k]),
                      "tau_dgm_over_t_ff": float(tau_dgm[i, k] / t_ff[k]),
                      "tangent": float(tangent[i, k] * s), "chord_exact": float(chord_exact[i, k] * s),
                      "chord_dgm_tau": float(chord_dgm[i, k] * s), "eq8": float(eq8[i, k] * s)}
        rows.append(row)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    for v in ("H2", "e-", "temperature"):
        print(f"{v}: d ln x / dt [1/t_ff]   tangent  chord_exact  chord_dgm_tau  eq8")
        for row in rows:
            r = row[v]
            print(f"  log n_H {row['log10_n_H']:6.2f}  {r['tangent']:+8.3f}  {r['chord_exact']:+8.3f}  "
                  f"{r['chord_dgm_tau']:+8.3f}  {r['eq8']:+8.3f}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
