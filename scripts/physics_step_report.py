"""The nuclear physics step alone, and who answers in the shipped physics-first set (docs/nuclear.md).

    python scripts/physics_step_report.py [--substeps 1,4,8]

On the test split of catalogs/built/si-mesa80-trajectory and on catalogs/built/si-mesa80-test (build
them first, docs/nuclear.md "Physics-first NNNs"), at dt = 1e-3, 0.1 and 10 s:

* the physics step alone (``physics_step``) with each number of substeps: its cost per cell (one
  thread; the states tiled to ~1000 cells) and the fraction of states where its composition and its Ye
  are closer to the reference than "nothing changes", by how far the reference composition moves
  (sum_i |X_ref - X0| below 0.01, 0.01-0.1, above 0.1);
* the shipped set (``model="default"``): the fraction of cells the step answers, and how often each
  part beats persistence on its own cells.
"""

import argparse
import time

import numpy as np

from thermoemu.core.catalog import open_catalog
from thermoemu.nuclear.emulator import default_nnn_dir
from thermoemu.nuclear.network import load_burner_kernel, load_network
from thermoemu.nuclear.nnn import load_nnn_set
from thermoemu.nuclear.physics_step import physics_step

CATALOGS = (("trajectory (test split)", "catalogs/built/si-mesa80-trajectory", "test"),
            ("seed's test set", "catalogs/built/si-mesa80-test", None))
BINS = ((0.0, 0.01), (0.01, 0.1), (0.1, np.inf))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--substeps", default="1,4,8")
    a = p.parse_args(argv)
    network = load_network("mesa80")
    kernel = load_burner_kernel(network)
    z_over_a = network.Z / network.A
    models, _ = load_nnn_set(default_nnn_dir())
    for label, path, split in CATALOGS:
        with open_catalog(path, split=split) as lazy:
            cat = lazy.load()
        T, rho, X0 = cat["temperature"].values, cat["density"].values, cat["initial_mass_fraction"].values
        reps = max(1, 1000 // len(T))
        physics_step(kernel, rho[:2], T[:2], X0[:2], 1e-3, substeps=1)  # compiled outside the timing
        print(f"\n{label}: {len(T)} states")
        for dt in (1e-3, 0.1, 10.0):
            k = int(np.flatnonzero(np.isclose(cat["dt"].values, dt))[0])
            X_ref, ye_ref = cat["mass_fraction"].values[:, k], cat["ye"].values[:, k]
            moved = np.abs(X0 - X_ref).sum(axis=1)
            ye_moved = np.abs(X0 @ z_over_a - ye_ref)
            for substeps in (int(v) for v in a.substeps.split(",")):
                t0 = time.perf_counter()
                physics_step(kernel, np.tile(rho, reps), np.tile(T, reps), np.tile(X0, (reps, 1)), dt, substeps=substeps)
                cost = (time.perf_counter() - t0) / (reps * len(T)) * 1e6
                X = physics_step(kernel, rho, T, X0, dt, substeps=substeps)["mass_fraction"]
                beats_X = np.abs(X - X_ref).sum(axis=1) < moved
                beats_ye = np.abs(X @ z_over_a - ye_ref) < ye_moved
                cells = []
                for lo, hi in BINS:
                    s = (moved >= lo) & (moved < hi)
                    cells.append(f"{lo:g}-{hi:g} ({s.sum()}): {100 * beats_X[s].mean():.1f} / {100 * beats_ye[s].mean():.1f} %"
                                 if s.any() else f"{lo:g}-{hi:g} (0)")
                print(f"  dt {dt:g} s, {substeps} substeps: {cost:.0f} us/cell; beats persistence (X / Ye) by "
                      f"composition moved: " + "; ".join(cells), flush=True)
            X, _, _, net = models[dt].predict(T, rho, X0, return_source=True)
            beats_X = np.abs(X - X_ref).sum(axis=1) < moved
            beats_ye = np.abs(X @ z_over_a - ye_ref) < ye_moved
            parts = [f"{100 * beats_X[m].mean():.1f} / {100 * beats_ye[m].mean():.1f} %" if m.any() else "n/a"
                     for m in (~net, net)]
            print(f"  dt {dt:g} s, shipped set: the step answers {100 * (~net).mean():.1f} % of cells, beating "
                  f"persistence (X / Ye) on {parts[0]} of them; the net on {parts[1]} of its cells", flush=True)


if __name__ == "__main__":
    main()
