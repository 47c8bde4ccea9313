"""The shipped default update against the compiled reference solver: speed and accuracy, same states,
same run, one thread each (issue 26).

States: (a) snapshot-like, from the reference collapse track (n_H 1e-2..1e13 cm^-3, n_H moved by up
to 0.05 dex and T by up to 0.02 dex; ``thermoemu.primordial.evaluate.collapse_track_states``) and
(b) random OS25 Table 1 states of each region (``sample_region``). Steps dt = 1e-3 and 0.1 t_ff (t_ff
per cell). The emulator steps all ``--cells`` cells; the reference (compiled RODAS3, one thread,
default settings) a random subset of ``--reference-cells`` of the same cells (it is far slower on
random states), and its rate is cells per second on that subset. Accuracy on the subset: share of
cells within 5 % of the reference per variable. The emulator can be any model set (``--model``) and
update (``--update``; default: the model set's own).

Run: python benchmarks/bench_physics_first.py [--cells 32768] [--reference-cells 4096] [--model default]
     (writes benchmarks/results/bench_physics_first.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import collapse_track_states
from thermoemu.primordial.models.features import VARIABLES
from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.sampling import sample_region
from thermoemu.solvers.rosenbrock import SolverSettings, integrate


def _states(kind, cells, seed):
    if kind == "snapshot":
        return collapse_track_states(cells, seed=seed)
    return sample_region(int(kind[-1]), cells, np.random.default_rng(seed))


def run(cells=32768, reference_cells=4096, model="default", update=None, kinds=None, fractions=(1e-3, 0.1),
        seed=0):
    torch.set_num_threads(1)
    network = default_network()
    emulator = Emulator(model, out_of_domain="flag")
    emulator = emulator.with_options(update=update or emulator.default_update)
    kinds = kinds or ["snapshot", "region0", "region1", "region2", "region3", "region4"]
    rows = []
    for kind in kinds:
        n_H, x = _states(kind, cells, seed)
        rng = np.random.default_rng(seed + 1)
        sub = rng.choice(n_H.size, size=min(reference_cells, n_H.size), replace=False)
        for f in fractions:
            dt = f * free_fall_time(n_H)
            emulator.step_arrays(n_H[:512], x[:, :512], dt[:512])  # warm-up (numba, torch)
            t0 = time.perf_counter()
            res = emulator.step_arrays(n_H, x, dt)
            t_emu = time.perf_counter() - t0
            settings = SolverSettings(threads=1)
            integrate(network, x[:, sub[:64]], network.cell_parameters(n_H[sub[:64]]), dt[sub[:64]], settings)
            t0 = time.perf_counter()
            ref = integrate(network, x[:, sub], network.cell_parameters(n_H[sub]), dt[sub], settings)
            t_ref = time.perf_counter() - t0
            with np.errstate(all="ignore"):
                within = (np.abs(res.x[:, sub] / ref.x - 1) < 0.05).mean(axis=1)
            emu_rate, ref_rate = n_H.size / t_emu, sub.size / t_ref
            rows.append({"states": kind, "dt_over_t_ff": f, "cells": int(n_H.size), "reference_cells": int(sub.size),
                         "emulator_cells_per_s": round(emu_rate), "reference_cells_per_s": round(ref_rate),
                         "speedup": round(emu_rate / ref_rate, 2),
                         "within_5pct": dict(zip(VARIABLES, np.round(within, 4).tolist())),
                         "out_of_domain_cells": int(res.out_of_domain.sum()),
                         "reference_substeps_median": float(np.median(ref.substeps))})
            print(f"{kind:9s} dt={f:g} t_ff: emulator {emu_rate:9.0f} cells/s, reference {ref_rate:8.0f} cells/s "
                  f"(median {np.median(ref.substeps):.0f} substeps) -> {emu_rate / ref_rate:6.1f}x; within 5 %: "
                  + " ".join(f"{v} {100 * w:.0f}" for v, w in zip(VARIABLES, within)), flush=True)
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "threads": 1, "torch": torch.__version__,
            "model": str(emulator.model_dir), "update": emulator.update, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=32768)
    p.add_argument("--reference-cells", type=int, default=4096)
    p.add_argument("--model", default="default")
    p.add_argument("--update", default=None)
    p.add_argument("--states", default=None, help="comma list of snapshot, region0 .. region4 (default: all)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_physics_first.json"))
    a = p.parse_args()
    result = run(a.cells, a.reference_cells, a.model, a.update, a.states.split(",") if a.states else None)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
