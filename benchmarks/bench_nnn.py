"""Cost per cell of an NNN step against the pynucastro mesa80 burn, on the same states, in the same run.

States: sampled as the mesa80 test catalog samples them (thermoemu/data/catalogs/si-mesa80-test.yaml, shard 0; log T
in [9.2, 9.9], log rho in [7, 9], compositions over the small-net isotopes), dt = 0.1 s. Timed, on one
core (torch and numba single-threaded):

* the shipped NNN (4 x 256; thermoemu/data/models/nnn-mesa80) over ``--nnn-cells`` states (the
  test states repeated): ``NNN.predict``, the array path ``ds.emu.step`` runs;
* a seed-size NNN (seed 000: 1024, then 8 layers of 2048; random weights, the cost does not depend
  on them) over the same cells;
* ``--model`` (a second NNN set, e.g. the hybrid one of issue 27) over the same cells, if given;
* with ``--physics-variants``, the shipped physics-first set again under other step settings (issue 27's
  speed work: "old" = the settings shipped before 2026-12-08's second subsection, no abort and screening
  evaluated at every substep; the kernels are today's either way), each over the same cells;
* the mesa80 burn (the compiled burner, thermoemu/nuclear/implicit.py, the default since issue 27;
  rtol 1e-6, atol 1e-20, the catalog's settings) over ``--burn-cells`` states;
* the small22 burn over the same states (what stellar-evolution codes run today).

Writes benchmarks/results/nnn-dt<dt>.json. Seed 000 reports their NNN 20-34x faster than bbq with mesa80.

Run: python benchmarks/bench_nnn.py [--nnn-cells 4096] [--burn-cells 32] [--dt 0.1] [--model PATH] [--catalog PATH]
     [--physics-variants old,abort,screen] [--repeat 3]
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

from thermoemu.core.catalog import open_catalog
from thermoemu.core.emulator import resolve_model
from thermoemu.core.spec import load_spec
from thermoemu.nuclear.nnn import NNN, NNNConfig, load_nnn_set
from thermoemu.nuclear.network import load_network
from thermoemu.nuclear.burner import burn
from thermoemu.nuclear.catalog import sample_nuclear_inputs
from thermoemu.nuclear.emulator import default_nnn_dir

ROOT = Path(__file__).resolve().parent.parent


def _best(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


#: Step settings timed with --physics-variants (attributes of PhysicsFirstNNN).
PHYSICS_VARIANTS = {
    "old": {"abort": 0.0, "screen_rtol": 0.0},          # the settings of the set shipped before (32:2 retry)
    "abort": {"abort": 1e-6, "screen_rtol": 0.0},       # the first step given up once it goes negative
    "screen": {"abort": 0.0, "screen_rtol": 1e-8},      # screening factors kept while n_e moves < 1e-8
    "new": {"abort": 1e-6, "screen_rtol": 1e-8},        # both
}


def run(nnn_cells=4096, burn_cells=32, dt=0.1, model=None, catalog=None, physics_variants=(), repeat=3):
    torch.set_num_threads(1)
    mesa80 = load_network("mesa80")      # first use compiles (~6.5 CPU-min), later loads take seconds
    small22 = load_network("small22")
    isotopes = list(mesa80.isotopes)
    if catalog is None:
        T0, rho0, X0, _ = sample_nuclear_inputs(load_spec("si-mesa80-test"), 0, 256, mesa80)
    else:  # the test split of a built catalog, e.g. states along trajectories
        with open_catalog(catalog, split="test") as lazy:
            cat = lazy.load()
        T0, rho0, X0 = (cat[v].values[:256] for v in ("temperature", "density", "initial_mass_fraction"))
    reps = int(np.ceil(nnn_cells / len(T0)))
    T, rho, X = (np.tile(a, (reps,) + (1,) * (a.ndim - 1))[:nnn_cells] for a in (T0, rho0, X0))

    models, manifest = load_nnn_set(default_nnn_dir())
    if manifest["isotopes"] != isotopes:
        raise RuntimeError("the shipped NNN set and the test catalog list different isotopes")
    shipped = models[dt]
    seed_size = NNN(NNNConfig(len(isotopes), layers=9, first_width=1024, width=2048)).eval()
    net = getattr(shipped, "net", shipped)  # a physics-first set wraps its net
    seed_size.shift.copy_(net.shift)
    seed_size.scale.copy_(net.scale)
    shipped.predict(T[:8], rho[:8], X[:8])  # compile / load the physics step outside the timing
    t_shipped = _best(lambda: shipped.predict(T, rho, X), repeat)
    t_variants = {}
    for name in physics_variants:
        saved = {k: getattr(shipped, k) for k in PHYSICS_VARIANTS[name]}
        for k, v in PHYSICS_VARIANTS[name].items():
            setattr(shipped, k, v)
        t_variants[name] = _best(lambda: shipped.predict(T, rho, X), repeat)
        for k, v in saved.items():
            setattr(shipped, k, v)
    t_seed = _best(lambda: seed_size.predict(T, rho, X), repeat=2)
    t_model = None
    if model is not None:
        other = load_nnn_set(resolve_model(model, default_nnn_dir()))[0][dt]
        other.predict(T[:8], rho[:8], X[:8])
        t_model = _best(lambda: other.predict(T, rho, X))

    n = min(burn_cells, len(T0))
    burn(mesa80, rho0[:1], T0[:1], X0[:1], dt)            # compile / load outside the timing
    t0 = time.perf_counter()
    ref = burn(mesa80, rho0[:n], T0[:n], X0[:n], dt)
    t_mesa80 = time.perf_counter() - t0
    idx = [isotopes.index(i) if i in isotopes else None for i in small22.isotopes]
    X22 = np.stack([X0[:n, j] if j is not None else np.zeros(n) for j in idx], axis=1)
    burn(small22, rho0[:1], T0[:1], X22[:1], dt)
    t0 = time.perf_counter()
    burn(small22, rho0[:n], T0[:n], X22[:n], dt)
    t_small22 = time.perf_counter() - t0

    per = {"nnn_shipped": t_shipped / nnn_cells, "nnn_seed_size": t_seed / nnn_cells,
           "mesa80_burn": t_mesa80 / n, "small22_burn": t_small22 / n}
    if t_model is not None:
        per["nnn_model"] = t_model / nnn_cells
    for name, t in t_variants.items():
        per[f"nnn_shipped_{name}"] = t / nnn_cells
    result = {
        "machine": platform.processor() or platform.machine(), "cores_used": 1, "dt_s": dt,
        "model": None if model is None else str(model), "states": catalog or "si-mesa80-test draws (shard 0)",
        "nnn_cells": nnn_cells, "burn_cells": n, "mesa80_failed": int((~ref.success).sum()),
        "physics_variants": {name: PHYSICS_VARIANTS[name] for name in physics_variants},
        "seconds_per_cell": per,
        "cells_per_second": {k: 1.0 / v for k, v in per.items()},
        "speedup_vs_mesa80": {k: per["mesa80_burn"] / v for k, v in per.items() if k != "mesa80_burn"},
    }
    out = ROOT / "benchmarks" / "results" / f"nnn-dt{dt:g}{'-' + Path(catalog).name if catalog else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    for k, v in per.items():
        ratio = "" if k == "mesa80_burn" else f"{per['mesa80_burn'] / v:10.4g}x mesa80"
        print(f"{k:20s} {v * 1e6:12.1f} us/cell  {1 / v:12.4g} cells/s  {ratio}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nnn-cells", type=int, default=4096)
    p.add_argument("--burn-cells", type=int, default=32)
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--model", default=None, help="a second NNN set to time (holding --dt)")
    p.add_argument("--catalog", default=None, help="take the states from this built catalog's test split")
    p.add_argument("--physics-variants", default="",
                   help="comma-separated step settings to time the shipped set under too: "
                        f"{', '.join(PHYSICS_VARIANTS)}")
    p.add_argument("--repeat", type=int, default=3, help="timings per NNN (the minimum is kept)")
    a = p.parse_args()
    run(a.nnn_cells, a.burn_cells, a.dt, a.model, a.catalog, [v for v in a.physics_variants.split(",") if v], a.repeat)
