"""How the tangent rule's backward-Euler steps (region 4) compare with the reference solver.

    python scripts/backward_euler_check.py [--tracks results/collapse-be] [--random 2000]

For the states of the reference collapse tracks written by ``thermoemu collapse --emulator default
--compare 0.1,0.01,0.001 -o DIR`` above 1e15 cm^-3 (each step's start, after the compression of the
step before), and for ``--random`` random region-4 states (OS25 Table 1 box): the fraction of cells
where :func:`thermoemu.primordial.update_rules.backward_euler_step` took Newton's step (converged, every
change <= eps = 0.1), and its |d log10 T| against the reference solver's step over the same dt
(those cells; the others are the reference's step by construction). Random states: also by the
largest relative change of the step, with Newton's step taken whatever the change. docs/emulator.md
quotes the output.
"""

import argparse
from pathlib import Path

import numpy as np


def compare(network, settings, n_H, x, dt):
    from thermoemu.solvers.rosenbrock import integrate
    from thermoemu.primordial.update_rules import backward_euler_step

    ref = integrate(network, x, network.cell_parameters(n_H), dt, settings).x
    x1, newton = backward_euler_step(network, n_H, x, dt, max_change=0.1, settings=settings)
    raw, converged = backward_euler_step(network, n_H, x, dt, settings=settings)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(np.log10(x1[6] / ref[6]))
        dev_raw = np.abs(np.log10(raw[6] / ref[6]))
        change = np.abs(raw / x - 1.0)
    change[:6][x[:6] < 1e-6] = 0.0
    return newton, dev, converged, dev_raw, change.max(axis=0)


def main(argv=None):
    import xarray as xr

    from thermoemu.primordial.physics.network import default_network, free_fall_time
    from thermoemu.primordial.sampling import sample_region
    from thermoemu.solvers.rosenbrock import SolverSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", default="results/collapse-be")
    p.add_argument("--random", type=int, default=2000)
    a = p.parse_args(argv)
    network, settings = default_network(), SolverSettings()
    for path in sorted(Path(a.tracks).glob("collapse_reference_dt*.nc")):
        fraction = float(path.stem.split("dt")[-1])
        with xr.open_dataset(path) as track:
            keep = (track.n_H.values > 1e15) & (track.regime.values == 0)
            n_H = track.n_H.values[keep]
            x = np.concatenate([track.abundance.values[keep].T, track.temperature.values[keep][None]])
        newton, dev, _, _, _ = compare(network, settings, n_H, x, fraction * free_fall_time(n_H))
        print(f"track dt = {fraction:g} t_ff: {n_H.size} states above 1e15 cm^-3; Newton's step taken in "
              f"{newton.mean():.1%}; its max |d log10 T| vs the solver {dev[newton].max():.1e}")
    if a.random:
        n_H, x = sample_region(4, a.random, np.random.default_rng(1))
        newton, dev, converged, dev_raw, change = compare(network, settings, n_H, x, 1e-3 * free_fall_time(n_H))
        print(f"random region-4 states, dt = 1e-3 t_ff: Newton converged in {converged.mean():.1%}, its step taken "
              f"(changes <= 0.1) in {newton.mean():.1%}")
        for lo, hi in ((0.0, 0.1), (0.1, 0.3), (0.3, np.inf)):
            m = converged & (change >= lo) & (change < hi)
            if m.any():
                print(f"  largest change in [{lo:g}, {hi:g}): {m.sum()} cells, |d log10 T| median {np.median(dev_raw[m]):.1e}, "
                      f"max {dev_raw[m].max():.1e}")


if __name__ == "__main__":
    main()
