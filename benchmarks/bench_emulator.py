"""Emulator throughput against the batched reference solver on the same states, in the same run.

A 32^3 cube of random states of one region (OS25 Table 1; ``--region``, default 1); steps dt =
dt_max = 10^0.5 t_ff and dt = 1e-3 t_ff (t_ff per cell). The emulator (plain DeepONet, the
timescale-based update, which adds the DGM net and the evaluation at tau, the shaped update,
which adds one more DeepONet evaluation at tau / 30, and the tangent update, which adds the
network's right-hand side, Jacobian and a 7 x 7 solve per cell, and in region 4 the network's
backward-Euler step by Newton) runs on the whole cube; the reference solver
on a random subset of the same cells (``--reference-cells``), since it is orders of magnitude
slower. Rates are cells per second on ``--threads`` torch threads (one core by default).
The median |d log10 T| of the emulator against the reference on the subset is reported too.

Run: python benchmarks/bench_emulator.py [--cube 32] [--reference-cells 2048] [--threads 1] [--model default]
     [--region 1]   (writes benchmarks/results/bench_emulator.json, or bench_emulator_r{region}.json)
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
from thermoemu.primordial.physics.network import default_network, free_fall_time
from thermoemu.primordial.sampling import sample_region
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.primordial.update_rules import backward_euler_step


def run(cube=32, reference_cells=2048, threads=1, model="default", region=1, seed=0):
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    n_H, x = sample_region(region, cube ** 3, rng)
    sub = rng.choice(n_H.size, size=min(reference_cells, n_H.size), replace=False)
    network = default_network()
    em = Emulator(model)
    rows = []
    for label, factor in (("dt_max", 10 ** 0.5), ("1e-3 t_ff", 1e-3)):
        dt = factor * free_fall_time(n_H)
        timings = {}
        results = {}
        for update in ("plain", "timescale", "shaped", "tangent"):
            e = em.with_options(update=update, out_of_domain="flag")
            e.step_arrays(n_H[:1000], x[:, :1000], dt[:1000])  # warm-up
            t0 = time.perf_counter()
            results[update] = e.step_arrays(n_H, x, dt)
            timings[update] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = integrate(network, x[:, sub], network.cell_parameters(n_H[sub]), dt[sub], SolverSettings())
        t_ref = time.perf_counter() - t0
        dlog = np.abs(np.log10(results["timescale"].x[6, sub] / ref.x[6]))
        rows.append({
            "dt": label, "cells": int(n_H.size), "reference_cells": int(sub.size),
            "emulator_plain_cells_per_s": n_H.size / timings["plain"],
            "emulator_timescale_cells_per_s": n_H.size / timings["timescale"],
            "emulator_shaped_cells_per_s": n_H.size / timings["shaped"],
            "emulator_tangent_cells_per_s": n_H.size / timings["tangent"],
            "speedup_tangent_vs_reference": (n_H.size / timings["tangent"]) / (sub.size / t_ref),
            "reference_cells_per_s": sub.size / t_ref,
            "speedup_timescale_vs_reference": (n_H.size / timings["timescale"]) / (sub.size / t_ref),
            "timescale_overhead_vs_plain": timings["timescale"] / timings["plain"] - 1.0,
            "shaped_overhead_vs_plain": timings["shaped"] / timings["plain"] - 1.0,
            "tangent_overhead_vs_plain": timings["tangent"] / timings["plain"] - 1.0,
            "median_abs_dlog10_T_timescale": float(np.median(dlog)),
            "median_abs_dlog10_T_tangent": float(np.median(np.abs(np.log10(results["tangent"].x[6, sub] / ref.x[6])))),
            "out_of_domain_cells": int(results["timescale"].out_of_domain.sum()),
        })
        if region == 4 and factor < 1:  # the tangent rule's backward-Euler steps: where they were taken
            # (Newton converged, changes <= eps; elsewhere the reference solver's); at dt_max none is used
            rows[-1]["newton_converged_fraction"] = float(backward_euler_step(
                network, n_H[sub], x[:, sub], dt[sub], max_change=0.1)[1].mean())
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": threads,
            "torch": torch.__version__, "model": str(em.model_dir), "region": region, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cube", type=int, default=32)
    p.add_argument("--reference-cells", type=int, default=2048)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="os25-deeponet")
    p.add_argument("--region", type=int, default=1, choices=range(5))
    p.add_argument("--out", default=None)
    a = p.parse_args()
    name = "bench_emulator.json" if a.region == 1 else f"bench_emulator_r{a.region}.json"
    a.out = a.out or str(Path(__file__).parent / "results" / name)
    res = run(a.cube, a.reference_cells, a.threads, a.model, region=a.region)
    for r in res["rows"]:
        print(f"dt = {r['dt']:9s}: emulator {r['emulator_timescale_cells_per_s']:9.0f} cells/s (timescale), "
              f"{r['emulator_plain_cells_per_s']:9.0f} (plain; eq. 8 overhead {100 * r['timescale_overhead_vs_plain']:.0f} %, "
              f"shaped {100 * r['shaped_overhead_vs_plain']:.0f} %, tangent {100 * r['tangent_overhead_vs_plain']:.0f} %); "
              f"reference {r['reference_cells_per_s']:7.0f} cells/s; speed-up {r['speedup_timescale_vs_reference']:.0f}x; "
              f"median |dlog T| {r['median_abs_dlog10_T_timescale']:.4f} (tangent {r['median_abs_dlog10_T_tangent']:.4f})")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
