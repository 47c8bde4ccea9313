"""Fused multi-output DeepONet against seven per-variable DeepONets (OS25), same sizes, same catalog.

    python scripts/compare_predictors.py [--region 1] [--max-minutes 8] [--threads 1]

Trains the per-variable set (no DGM) for one region into results/models-deeponet-r{region} with the
layer sizes of the shipped fused models and the same training settings, then compares, on the
catalog's test split, the OS25 Table 2 fractions, and the single-step inference speed on a 32^3
batch (cells/s, one torch thread). Writes results/compare_predictors-r{region}.json.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import accuracy_table
from thermoemu.primordial.models import NetConfig, TrainSettings, train_region
from thermoemu.primordial.physics.network import free_fall_time
from thermoemu.primordial.sampling import sample_region

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--region", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    r = a.region
    torch.set_num_threads(a.threads)
    catalog = ROOT / "catalogs" / "built" / f"popiii-r{r}"
    out = ROOT / "results" / f"models-deeponet-r{r}"
    t0 = time.perf_counter()
    train_region(f"popiii-r{r}", catalog, out, predictor=NetConfig(kind="deeponet", layers=6, width=96, latent=48),
                 timescale=None, settings=TrainSettings(max_minutes=a.max_minutes, threads=a.threads),
                 checkpoint_dir=ROOT / "results" / "train-checkpoints")
    train_s = time.perf_counter() - t0
    rows = {}
    n_H, x = sample_region(r, 32 ** 3, np.random.default_rng(0))
    dt = 0.1 * free_fall_time(n_H)
    for label, model in (("fused", "default"), ("per-variable", out)):
        em = Emulator(model)
        table = accuracy_table(em, {r: catalog})
        m = em.regions[r]
        m.predict_log(n_H[:1000], x[:, :1000], dt[:1000])
        t1 = time.perf_counter()
        m.predict_log(n_H, x, dt)
        rate = n_H.size / (time.perf_counter() - t1)
        rows[label] = {"fraction_below_5pct": dict(zip(table["variable"].values.tolist(),
                                                       table["fraction_below"].sel(region=r, threshold=0.05).values.round(4).tolist())),
                       "fraction_below_10pct": dict(zip(table["variable"].values.tolist(),
                                                        table["fraction_below"].sel(region=r, threshold=0.10).values.round(4).tolist())),
                       "median_abs_dex": dict(zip(table["variable"].values.tolist(),
                                                  table["median_abs_dex"].sel(region=r).values.round(5).tolist())),
                       "predict_cells_per_s": round(rate), "parameters": sum(
                           q.numel() for net in m.predictors for q in net.parameters())}
    rows["per-variable"]["train_s"] = round(train_s, 1)
    path = ROOT / "results" / f"compare_predictors-r{r}.json"
    path.write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
