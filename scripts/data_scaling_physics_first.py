"""Table 2 cells at or above seed 003 against training samples, OS25 design against physics-first (region 1).

    python scripts/data_scaling_physics_first.py [--catalog catalogs/built/popiii-r1-1000000]
        [--model "os25-deeponet 1e5=results/os25-deeponet-1e5" ...]

Every model is evaluated on the same test split (by default the 1e6-sample region-1 catalog's, ~5e4
samples; the 1e5 catalogs' test samples are among them, so no model has trained on any). Models:

* OS25 design, 9e4 samples: the first shipped set (git ed00aab, region 1; restore with
  ``git show ed00aab:thermoemu/data/models/default/region1.safetensors``, see docs/emulator.md);
* OS25 design, 9e5 samples: ``os25-deeponet`` (shipped);
* physics-first, 9e4 samples: ``scripts/train_default_models.py --design physics-first --regions 1
  --samples 100000 --out results/pf-scaling-r1-1e5``;
* physics-first, 9e5 samples: ``default`` (shipped).

Writes docs/figures/data_scaling_r1.png and results/data-scaling-r1.json.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from thermoemu.core.plotting import pyplot
from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import accuracy_table
from thermoemu.primordial.models.features import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = [("OS25 design", 9e4, "results/os25-deeponet-1e5"), ("OS25 design", 9e5, "os25-deeponet"),
                  ("physics-first", 9e4, "results/pf-scaling-r1-1e5"), ("physics-first", 9e5, "default")]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", default=str(ROOT / "catalogs" / "built" / "popiii-r1-1000000"))
    p.add_argument("--out", default=str(ROOT / "results" / "data-scaling-r1.json"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "data_scaling_r1.png"))
    a = p.parse_args()
    rows = []
    for design, samples, model in DEFAULT_MODELS:
        table = accuracy_table(Emulator(model), {1: a.catalog})
        ours = table["fraction_below"].sel(region=1).values
        seed = table["seed"].sel(region=1).values
        rows.append({"design": design, "train_samples": samples, "model": model,
                     "cells_met": int((ours >= seed - 1e-12).sum()), "test_samples": int(table["samples"].values[1]),
                     "below_5pct": dict(zip(VARIABLES, ours[:, 0].round(4).tolist())),
                     "below_10pct": dict(zip(VARIABLES, ours[:, 1].round(4).tolist()))})
        print(f"{design:14s} {samples:8.0e} {model:32s} cells met {rows[-1]['cells_met']:2d} / 14; below 5 %: "
              + " ".join(f"{v} {100 * x:.0f}" for v, x in zip(VARIABLES, ours[:, 0])), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for design, style in (("OS25 design", dict(color="tab:orange", marker="s")),
                          ("physics-first", dict(color="tab:blue", marker="o"))):
        sel = [r for r in rows if r["design"] == design]
        axes[0].plot([r["train_samples"] for r in sel], [r["cells_met"] for r in sel], label=design, **style)
        for v, ls in (("H-", "-"), ("temperature", "--")):
            axes[1].plot([r["train_samples"] for r in sel], [100 * r["below_5pct"][v] for r in sel], ls=ls,
                         label=f"{design}: {v}", **style)
    seed = accuracy_table(Emulator("default"), {1: a.catalog})["seed"].sel(region=1, threshold=0.05)
    for v, ls in (("H-", "-"), ("temperature", "--")):
        axes[1].axhline(100 * float(seed.sel(variable=v)), color="k", ls=ls, lw=0.8, label=f"seed 003: {v}")
    axes[0].set(xscale="log", xlabel="training samples", ylabel="Table 2 cells at or above seed 003 (of 14)",
                ylim=(-0.5, 14.5), title="region 1")
    axes[1].set(xscale="log", xlabel="training samples", ylabel="% of test samples within 5 %", title="region 1")
    axes[0].legend()
    axes[1].legend(fontsize=7)
    Path(a.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.figure, dpi=120)
    print(f"wrote {a.out} and {a.figure}")


if __name__ == "__main__":
    main()
