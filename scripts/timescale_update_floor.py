"""The error floor of the timescale-based update (OS25 eq. 8): the collapse with a perfect emulator.

    python scripts/timescale_update_floor.py [--fractions 0.1,0.01,0.001] [--eps 0.1] [--update timescale,shaped]
        [--out results/timescale-floor]

For each outer step dt (in units of t_ff) and each eps, runs the one-zone collapse to 1e18 cm^-3
twice: with the reference solver (the ground truth of ``thermoemu collapse --emulator``), and with
eq. 8 applied to exact ingredients, tau_eps and x(tau) from the reference solver
(:func:`thermoemu.primordial.onezone.timescale_update_reference_stepper`). Their max |d log10 T| is what the
update rule itself costs (``--update shaped``: the chord shaped by a second point, see
:mod:`thermoemu.primordial.update_rules`); a trained emulator adds its own prediction errors on top. Writes
``floor.json`` (whole track and per density region) and ``floor.png`` under ``--out``; docs/emulator.md
quotes them.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    from thermoemu.primordial.evaluate import _log_deviation, max_log_deviation, max_log_deviation_by_region
    from thermoemu.primordial.onezone import collapse, timescale_update_reference_stepper
    from thermoemu.primordial.physics.network import default_network
    from thermoemu.solvers.rosenbrock import SolverSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fractions", default="0.1,0.01,0.001", help="outer steps in units of t_ff")
    p.add_argument("--eps", default="0.1", help="relative changes defining tau_eps (OS25: 0.1)")
    p.add_argument("--update", default="timescale", help="rules: timescale (eq. 8), shaped, or both")
    p.add_argument("--n-end", type=float, default=1e18, help="final n_H [cm^-3] (the emulator's range)")
    p.add_argument("--out", default="results/timescale-floor")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    network, settings = default_network(), SolverSettings()
    rows, curves = [], {}
    for f in (float(v) for v in a.fractions.split(",")):
        t0 = time.perf_counter()
        ref = collapse(step_fraction=f, n_end=a.n_end, network=network, settings=settings)
        t_ref = time.perf_counter() - t0
        for eps, update in ((float(v), u) for v in a.eps.split(",") for u in a.update.split(",")):
            t0 = time.perf_counter()
            track = collapse(step_fraction=f, n_end=a.n_end, network=network, settings=settings,
                             stepper=timescale_update_reference_stepper(network, settings, eps=eps, update=update))
            row = {"step_fraction": f, "eps": eps, "update": update, "max_dlogT": max_log_deviation(track, ref),
                   "max_dlogT_by_region": max_log_deviation_by_region(track, ref),
                   "max_dlogH2": max_log_deviation(track.assign(H2=track.abundance.sel(species="H2")),
                                                   ref.assign(H2=ref.abundance.sel(species="H2")), "H2"),
                   "wall_s": round(time.perf_counter() - t0, 1), "reference_wall_s": round(t_ref, 1)}
            rows.append(row)
            grid, dev = _log_deviation(track, ref, "temperature")
            signed = (np.interp(grid, np.log10(track.n_H.values), np.log10(track.temperature.values))
                      - np.interp(grid, np.log10(ref.n_H.values), np.log10(ref.temperature.values)))
            curves[(f, eps, update)] = (grid, signed)
            print(json.dumps(row), flush=True)
    (out / "floor.json").write_text(json.dumps(rows, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for (f, eps, update), (grid, signed) in curves.items():
        ax.plot(grid, signed, label=f"dt = {f:g} t_ff, eps = {eps:g}, {update}")
    ax.axhline(0.04, color="k", ls=":", lw=0.8)
    ax.axhline(-0.04, color="k", ls=":", lw=0.8, label="goal +-0.04 dex")
    ax.set_xlabel("log10 n_H [cm^-3]")
    ax.set_ylabel("log10 T (update rule, exact) - log10 T (reference)")
    ax.set_title("Timescale-based update with a perfect emulator")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "floor.png", dpi=120)
    print(f"wrote {out / 'floor.json'} and {out / 'floor.png'}")


if __name__ == "__main__":
    main()
