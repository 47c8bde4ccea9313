"""Measure the Saha table (issue 5): accuracy against the direct solve, E_tot conservation, and the
collapse from 1e18 to 1e22 cm^-3 with the table against the ground truth (direct Saha adiabat).

    python scripts/validate_saha.py --out results/saha --fractions 0.1,0.01 [--reuse]

Writes ``summary.json``, the tracks (netCDF) and ``saha_collapse.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from thermoemu.primordial.onezone import collapse
from thermoemu.primordial.saha_table import check_table, load_saha_table

LANDMARKS = (1e18, 1e19, 1e20, 1e21, 1e22)


def landmarks(ds):
    """T, y(H2), y(H+) at the steps nearest to 1e18 .. 1e22 cm^-3."""
    n = ds["n_H"].values
    rows = []
    for target in LANDMARKS:
        i = int(np.argmin(np.abs(np.log(n / target))))
        rows.append({"n_H": float(n[i]), "T": round(float(ds["temperature"][i]), 1),
                     "y_H2": float(ds["abundance"][i, 1]), "y_H+": float(ds["abundance"][i, 3])})
    return rows


def _plain(value):
    """numpy scalars as Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/saha")
    p.add_argument("--fractions", default="0.1,0.01", help="collapse steps in units of t_ff")
    p.add_argument("--points", type=int, default=1000, help="off-grid points for the table check")
    p.add_argument("--reuse", action="store_true", help="reuse tracks already written under --out")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    t0 = time.perf_counter()
    table = load_saha_table(progress=True)
    summary = {"table": {"spec": {k: _plain(v) if not isinstance(v, str) else v
                                  for k, v in table.spec.as_dict().items()}, "load_or_build_s": round(time.perf_counter() - t0, 1),
                         "build_wall_time_s": table.dataset.attrs.get("build_wall_time_s")}}
    summary["table_check"] = check_table(table, points=a.points)
    print("table check:", json.dumps(summary["table_check"], indent=1))

    tracks = {}
    summary["collapse"] = []
    for f in [float(v) for v in a.fractions.split(",")]:
        for method in ("table", "saha"):
            path = out / f"collapse_{method}_dt{f:g}.nc"
            t0 = time.perf_counter()
            if a.reuse and path.exists():
                ds = xr.open_dataset(path).load()
            else:
                ds = collapse(step_fraction=f, high_density=method, progress=True)
                ds.to_netcdf(path)
            wall = time.perf_counter() - t0
            tracks[(f, method)] = ds
            print(f"dt = {f:g} t_ff, {method}: {wall:.1f} s, switch dT = {ds.attrs['saha_switch_dT_K']:+.2f} K")
        tab, ref = tracks[(f, "table")], tracks[(f, "saha")]
        hi = tab["n_H"].values >= 1e18
        dlogT = np.abs(np.log10(tab["temperature"].values[hi]) - np.log10(ref["temperature"].values[hi]))
        dE = np.abs(tab["total_energy"].values[hi] / ref["total_energy"].values[hi] - 1)
        summary["collapse"].append({
            "step_fraction": f, "steps_above_1e18": int(hi.sum()),
            "max_dlogT_table_vs_saha_dex": float(dlogT.max()),
            "max_rel_dT_table_vs_saha": float(np.max(np.abs(10 ** dlogT - 1))),
            "max_rel_dE_tot_table_vs_saha": float(dE.max()),
            "switch_dT_K": tab.attrs["saha_switch_dT_K"],
            "switch_T_network_K": float(tab["temperature"].values[hi][0]),
            "table_outside_steps": int((tab["regime"].values == 3).sum()),
            "landmarks_table": landmarks(tab), "landmarks_saha": landmarks(ref)})
        print(json.dumps(summary["collapse"][-1], indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=_plain))

    from thermoemu.primordial.plotting import plot_saha_collapse
    plot_saha_collapse(tracks, out / "saha_collapse.png")
    print(f"wrote {out / 'summary.json'} and {out / 'saha_collapse.png'}")


if __name__ == "__main__":
    main()
