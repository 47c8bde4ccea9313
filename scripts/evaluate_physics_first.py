"""Issue 26's figures: the physics-first default models against the OS25-design set and seed 003.

    python scripts/evaluate_physics_first.py [--new default] [--old os25-deeponet] [--collapse 0.1,0.01,0.001]

1. OS25 Table 2 on the test splits of catalogs/built/popiii-r{0..4} (1e5-sample catalogs; their test
   samples are also test samples of the 1e6 catalogs, never trained on by either set): new, old, seed.
2. Single steps from snapshot-like states (2000 states along the reference collapse track, perturbed;
   ``track_step_accuracy``) at dt = 1e-3, 1e-2, 1e-1 t_ff: share within 5 % of the reference.
3. The fixed-density test (OS25 Fig. 6c/d: 1000 substeps at n_H = 1e3, T0 = 300 K).
4. The collapse (OS25 Fig. 7) to 1e18 cm^-3 at the given dt / t_ff: max |d log10 T|.

Writes results/physics-first/{summary.json, report.md}.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import (
    accuracy_table,
    collapse_comparison,
    fixed_density_test,
    track_step_accuracy,
)
from thermoemu.primordial.models.features import VARIABLES

ROOT = Path(__file__).resolve().parent.parent


def table2_rows(tables, names):
    lines = ["| variable | " + " | ".join(f"R{r} <5% | R{r} <10%" for r in range(5)) + " |", "|---" * 11 + "|"]
    seed = tables[names[0]]["seed"]
    for v in VARIABLES:
        cells = []
        for r in range(5):
            for k in range(2):
                vals = [tables[n]["fraction_below"].sel(variable=v, region=r).values[k] for n in names]
                cells.append(" / ".join("-" if np.isnan(x) else f"{100 * x:.0f}" for x in vals)
                             + f" / {100 * seed.sel(variable=v, region=r).values[k]:.0f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_table2(tables, path):
    """Bars per region: % of test samples below 5 %, new / old / seed."""
    from thermoemu.core.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6), sharey=True, constrained_layout=True)
    x = np.arange(len(VARIABLES))
    for r, ax in enumerate(axes):
        for k, (name, color) in enumerate((("new", "tab:blue"), ("old", "tab:orange"))):
            ax.bar(x - 0.27 + 0.27 * k, 100 * tables[name]["fraction_below"].sel(region=r, threshold=0.05).values, 0.27,
                   label={"new": "physics-first (default)", "old": "OS25 design (os25-deeponet)"}[name], color=color)
        ax.bar(x + 0.27, 100 * tables["new"]["seed"].sel(region=r, threshold=0.05).values, 0.27, label="seed 003",
               color="0.6")
        ax.set_xticks(x, VARIABLES, rotation=60, fontsize=8)
        ax.set_title(f"region {r}")
    axes[0].set_ylabel("% of test samples within 5 %")
    axes[0].legend(fontsize=7, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def cells_met(table):
    ours, seed = table["fraction_below"].values, table["seed"].values
    ok = np.isfinite(ours)
    met = (ours >= seed - 1e-12) & ok
    trace = met[4:6].all(axis=(0, 2))  # H-, H2+ at or above the seed in both thresholds, per region
    return int(met.sum()), int(ok.sum()), trace.tolist()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new", default="default")
    p.add_argument("--old", default="os25-deeponet")
    p.add_argument("--catalog-name", default="popiii-r{region}")
    p.add_argument("--collapse", default="0.1,0.01,0.001")
    p.add_argument("--collapse-sets", default="new,old", help="which sets run the collapse (it takes minutes)")
    p.add_argument("--out", default=str(ROOT / "results" / "physics-first"))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = {"new": Emulator(a.new), "old": Emulator(a.old)}
    catalogs = {r: ROOT / "catalogs" / "built" / a.catalog_name.format(region=r) for r in range(5)}
    catalogs = {r: c for r, c in catalogs.items() if (c / "index.json").is_file()}
    summary = {"new": str(sets["new"].model_dir), "old": str(sets["old"].model_dir)}
    t0 = time.perf_counter()
    tables = {k: accuracy_table(e, catalogs) for k, e in sets.items()}
    _plot_table2(tables, ROOT / "docs" / "figures" / "physics_first_table2.png")
    summary["table2"] = {k: {"cells_met": cells_met(t)[0], "cells": cells_met(t)[1], "trace_met_by_region": cells_met(t)[2],
                             "fraction_below": t["fraction_below"].values.round(4).tolist(),
                             "samples": t["samples"].values.tolist()} for k, t in tables.items()}
    report = [f"# Physics-first models: {summary['new']} against {summary['old']}\n",
              "## OS25 Table 2 (new / old / seed, % of test samples below 5 % and 10 %)\n",
              table2_rows(tables, ["new", "old"]), "",
              *(f"- {k}: {v['cells_met']} of {v['cells']} cells at or above the seed; H- and H2+ at or above it "
                f"in regions {[r for r, ok in enumerate(v['trace_met_by_region']) if ok]}"
                for k, v in summary["table2"].items()),
              f"- test samples per region: {summary['table2']['new']['samples']}", ""]
    print("\n".join(report), flush=True)
    report.append("## Single steps from snapshot-like states (% within 5 % of the reference)\n")
    report.append("| set | dt / t_ff | " + " | ".join(VARIABLES) + " |")
    report.append("|---" * (len(VARIABLES) + 2) + "|")
    summary["track_steps"] = {}
    for k, e in sets.items():
        acc = track_step_accuracy(e.with_options(out_of_domain="reference"))
        summary["track_steps"][k] = acc["fraction_within"].values.round(4).tolist()
        for i, f in enumerate(acc["dt_over_t_ff"].values):
            report.append(f"| {k} | {f:g} | " + " | ".join(f"{100 * w:.1f}" for w in acc["fraction_within"].values[i])
                          + " |")
    print("\n".join(report[-8:]), flush=True)
    fixed = {k: fixed_density_test(e) for k, e in sets.items()}
    summary["fixed_density"] = {k: {m[len("final_T_relative_error_"):]: v for m, v in f.attrs.items()
                                    if m.startswith("final_T_relative_error_")} for k, f in fixed.items()}
    report += ["", "## Fixed-density test (1000 substeps, n_H = 1e3, T0 = 300 K): final T relative error\n",
               *(f"- {k}: " + ", ".join(f"{m} {100 * v:+.3f} %" for m, v in d.items())
                 for k, d in summary["fixed_density"].items())]
    print("\n".join(report[-3:]), flush=True)
    if a.collapse:
        fractions = [float(f) for f in a.collapse.split(",")]
        summary["collapse"] = {}
        for k, e in sets.items():
            if k in a.collapse_sets.split(","):
                _, rows = collapse_comparison(e, fractions)
                summary["collapse"][k] = rows
        report += ["", "## Collapse to 1e18 cm^-3 (OS25 Fig. 7): max |d log10 T| [dex]\n",
                   "| set | update | dt / t_ff | max dlogT (regions 0-4) | steps | wall s (reference) |",
                   "|---|---|---|---|---|---|"]
        for k, rows in summary["collapse"].items():
            for r in rows:
                by_region = ", ".join(f"{v:.4f}" for _, v in sorted(r["max_dlogT_by_region"].items()))
                report.append(f"| {k} | {r['update']} | {r['step_fraction']:g} | {r['max_dlogT']:.4f} ({by_region}) | "
                              f"{r['steps']} | {r['wall_s']} ({r['reference_wall_s']}) |")
        print("\n".join(report[-8:]), flush=True)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    (out / "report.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'report.md'}")


if __name__ == "__main__":
    main()
