"""Retry steppers for the shipped nuclear NNN set's overshooting cells, side by side (issue 27; docs/nuclear.md).

    python scripts/nnn_retry_variants.py [--cells 300] [--dt 1e-3]

On the first ``--cells`` states of catalogs/built/si-mesa80-test, at each ``--dt``: the cells whose first
step (8 substeps growing by 4) is not usable, stepped with each variant (one thread; the minimum of two
timings), against the catalog's reference burn. Per variant: time per retried cell, steps (ROS2 and the
adaptive Euler step count rejected ones), the share of cells the variant leaves usable (the net answers
the rest), and on those cells the mean sum_i |dX_i|, Eq. 6 (sum_i Z_i/A_i |dX_i|), e_nuc (summed |error|
over summed |e_nuc|) and the share beating persistence; last, the mean sum_i |dX_i| over all retried cells
with persistence's error where the variant is not usable.
"""

import argparse
import time

import numpy as np

from thermoemu.core.catalog import open_catalog
from thermoemu.nuclear.network import load_burner_kernel, load_network
from thermoemu.nuclear.physics_first import _usable
from thermoemu.nuclear.physics_step import physics_step

VARIANTS = (
    ("Euler 32:2 (shipped retry)", dict(substeps=32, ratio=2.0)),
    ("Euler 32:2, screening kept (1e-8)", dict(substeps=32, ratio=2.0, screen_rtol=1e-8)),
    ("Euler 30:2.1", dict(substeps=30, ratio=2.1)),
    ("Euler 24:2.52", dict(substeps=24, ratio=2.52)),
    ("Euler 32:4, LU kept 2 substeps", dict(substeps=32, ratio=4.0, reuse=2)),
    ("Euler 33:8, LU kept 3 substeps", dict(substeps=33, ratio=8.0, reuse=3)),
    ("Euler 32:2, Jacobian every 2nd", dict(substeps=32, ratio=2.0, jac_every=2)),
    ("ROS2 16:4 (fixed)", dict(method="ros2", tol=0.0, substeps=16, ratio=4.0)),
    ("ROS2 20:3.03 (fixed)", dict(method="ros2", tol=0.0, substeps=20, ratio=3.03)),
    ("ROS2 adaptive, tol 3e-2", dict(method="ros2", tol=3e-2)),
    ("ROS2 adaptive, tol 1e-2", dict(method="ros2", tol=1e-2)),
    ("ROS2 adaptive, tol 1e-3", dict(method="ros2", tol=1e-3)),
    ("Euler adaptive, tol 1e-1", dict(method="euler-adaptive", tol=0.1, abort=0.5)),
    ("Euler adaptive, tol 1e-2", dict(method="euler-adaptive", tol=1e-2, abort=0.5)),
)


def _best(fn, repeat=2):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=300)
    p.add_argument("--dt", default="1e-3")
    p.add_argument("--catalog", default="catalogs/built/si-mesa80-test")
    a = p.parse_args(argv)
    net = load_network("mesa80")
    kernel = load_burner_kernel(net)
    z_over_a = net.Z / net.A
    with open_catalog(a.catalog) as lazy:
        cat = lazy.load()
    T, rho, X0 = (cat[v].values[:a.cells] for v in ("temperature", "density", "initial_mass_fraction"))
    for dt in (float(v) for v in a.dt.split(",")):
        k = int(np.flatnonzero(np.isclose(cat["dt"].values, dt))[0])
        X_ref, e_ref = cat["mass_fraction"].values[:a.cells, k], cat["e_nuc"].values[:a.cells, k]
        again = np.flatnonzero(~_usable(physics_step(kernel, rho, T, X0, dt, substeps=8, ratio=4.0)))
        Tr, rr, Xr0, Xr, er = T[again], rho[again], X0[again], X_ref[again], e_ref[again]
        persistence = np.abs(Xr0 - Xr).sum(axis=1)
        print(f"\ndt = {dt:g} s: {again.size} of {len(T)} states retried (persistence: mean sum|dX| "
              f"{persistence.mean():.3g})")
        print("| variant | us per cell | steps | usable | sum abs dX | Eq. 6 | e_nuc | beats persistence | "
              "sum abs dX, all |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, kw in VARIANTS:
            r = physics_step(kernel, rr, Tr, Xr0, dt, **kw)
            t = _best(lambda kw=kw: physics_step(kernel, rr, Tr, Xr0, dt, **kw))
            u = _usable(r)
            d = np.abs(r["mass_fraction"] - Xr)
            dX = d.sum(axis=1)
            eq6 = d @ z_over_a
            e_rel = np.abs(r["e_nuc"] - er)[u].sum() / np.abs(er[u]).sum() if u.any() else np.nan
            print(f"| {name} | {t / again.size * 1e6:.0f} | {np.nanmean(r['steps']):.1f} | {u.mean():.3f} | "
                  f"{dX[u].mean():.3g} | {eq6[u].mean():.3g} | {e_rel:.3g} | {np.mean(dX[u] < persistence[u]):.3f} | "
                  f"{np.where(u, dX, persistence).mean():.3g} |")


if __name__ == "__main__":
    main()
