"""The primordial physics step alone under several substep schedules, on the test splits of the region catalogs.

For each region and schedule (K substeps, the last U of them equal: ``physics_step(..., K, uniform=U)``; U = 1
is the geometric schedule of the sets before 2026-12-08) it prints the share of test samples within 5 % of
the reference per variable, and the time per cell (one thread). What docs/emulator.md quotes when it
chooses each region's schedule.

    python scripts/physics_schedule_scan.py [--regions 0,1,2,3,4] [--schedules 8:1,16:8,32:1,32:8,32:16]
"""

import argparse
import time

import numpy as np

from thermoemu.primordial.evaluate import load_catalog_arrays
from thermoemu.primordial.models.features import VARIABLES, log_state
from thermoemu.primordial.physics.network import default_network
from thermoemu.primordial.physics_step import physics_step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", default="0,1,2,3,4")
    p.add_argument("--schedules", default="8:1,16:8,32:1,32:8,32:16", help="K:U pairs, comma separated")
    p.add_argument("--catalog-name", default="catalogs/built/popiii-r{region}")
    a = p.parse_args()
    network = default_network()
    print("region | K:U | us per cell | " + " | ".join(VARIABLES))
    for r in (int(v) for v in a.regions.split(",")):
        d = load_catalog_arrays(a.catalog_name.format(region=r), "test")
        truth = log_state(d.x1)
        for schedule in a.schedules.split(","):
            k, u = (int(v) for v in schedule.split(":"))
            with np.errstate(all="ignore"):
                physics_step(network, d.n_H[:64], d.x0[:, :64], d.dt[:64], k, uniform=u)  # compile / warm
                t0 = time.perf_counter()
                x = physics_step(network, d.n_H, d.x0, d.dt, k, uniform=u)
                wall = time.perf_counter() - t0
            within = (np.abs(10.0 ** (log_state(x) - truth) - 1) < 0.05).mean(axis=0)
            print(f"{r} | {k}:{u} | {wall / len(d.dt) * 1e6:.1f} | " + " | ".join(f"{100 * w:.1f}" for w in within),
                  flush=True)


if __name__ == "__main__":
    main()
