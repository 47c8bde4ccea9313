"""Same-machine baseline: Grackle's compiled solver (gracklepy) on the states of bench_solver.py.

Two venvs, because gracklepy and thermoemu are kept apart:

  # 1. grackle venv (gracklepy 1.2 manylinux wheel = Grackle 3.4.1, serial build, no OpenMP)
  python3 -m venv /tmp/grackle-venv && /tmp/grackle-venv/bin/pip install gracklepy numpy scipy
  # 2. states + converged thermoemu reference on a 2048-cell subset (thermoemu venv, ~7 min)
  .venv/bin/python benchmarks/grackle/make_states.py
  # 3. this script, pinned to one core (~2.5 min here)
  OMP_NUM_THREADS=1 taskset -c 1 /tmp/grackle-venv/bin/python \
      benchmarks/grackle/bench_grackle.py -o benchmarks/grackle/grackle.json

Inputs: /tmp/grackle-states.npz (n_H, x, t_ff, dt_hydro) and /tmp/grackle-reference.npz (sub and
the thermoemu rtol-1e-7 results), both written by make_states.py.

Grackle setup (see chemistry() below): primordial_chemistry 2, metal_cooling 0, UVbackground 0,
with_radiative_cooling 1, H2_self_shielding 0, three_body_rate 0 (default, ABN02), no dust,
comoving_coordinates 0, a_value 1 (z = 0), other parameters at their defaults (CaseBRecombination 0,
cmb_temperature_floor 1, h2_optical_depth_approximation 0, cie_cooling 0). No data file: with
metal_cooling = UVbackground = 0 and primordial_chemistry > 0 Grackle reads none (none ships with
the wheel either). Units: density_units = m_H (code densities are n in cm^-3), time_units = 1 Myr,
length_units = 1 km/s x 1 Myr (velocity_units = 1 km/s, so code energies are O(0.1-100)).
HydrogenFractionByMass = 1 / (1 + 4 y_He) with y_He = 0.097, all He neutral (HeII = HeIII = 1e-20
code units, Grackle's floor), so Grackle's make_consistent step leaves H and He totals unchanged.
The internal energy is set per cell so that Grackle's calculate_temperature returns our T
(fixed-point iteration through Grackle's H2-dependent gamma).

A "matched" variant (CaseBRecombination 1, three_body_rate 1 = PSS83, h2_optical_depth_approximation
1, cmb_temperature_floor 0) is also compared with the reference, to show how much of the
disagreement is switchable rate choices; its fits still differ from thermoemu's.

Timings: best of 3 wall times of fc.solve_chemistry, state reset before each run, for
  - all 32768 cells in one call ("one row": gracklepy passes a 1-D grid, and Grackle subcycles a row
    until its slowest cell is done, so one stalled cell keeps the whole row iterating);
  - the same cells as 1024 calls of 32 ("rows of 32", how a 32^3 grid is swept; per-cell results are
    the same as in one row to ~1e-9); the call overhead is probed with a tiny dt;
  - "hydro": dt = 1e-3 t_ff(n_H) per cell, piecewise constant over 256 n_H groups of 128 cells (one
    call per group);
  - "near-eq": starting from Grackle's own result after one 0.1 t_ff(1e6) step;
  - max_iterations raised to 1e5, and the matched variant, for dt = 0.1 t_ff(1e6) in rows of 32.
Grackle's default max_iterations (10000) leaves some cells short of dt without an error (it only
writes a report to stderr); those reports are parsed and the cells counted as "unfinished".

Self-convergence: the same dt as 1, 10 and 100 equal calls, all cells. Accuracy: the 2048-cell
subset against the thermoemu reference; |d log10| over T and species above 1e-20 as in
thermoemu.primordial.validation. Both are agreement statistics, not error bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time

import numpy as np

# make Fortran output unbuffered so each call's report lands before the next (read at load time)
os.environ.setdefault("GFORTRAN_UNBUFFERED_PRECONNECTED", "y")

import gracklepy  # noqa: E402
from gracklepy import FluidContainer, chemistry_data  # noqa: E402
from gracklepy.grackle_wrapper import get_grackle_version  # noqa: E402
from gracklepy.utilities.physical_constants import mass_hydrogen_cgs, sec_per_Myr  # noqa: E402

Y_HE = 0.097
X_H = 1.0 / (1.0 + 4.0 * Y_HE)
HE_TINY = 1e-20
SPECIES = ("H", "H2", "e-", "H+", "H-", "H2+", "T")
COMPARE_FLOOR = 1e-20  # as thermoemu.primordial.validation


def chemistry(variant="default", **overrides):
    c = chemistry_data()
    c.use_grackle = 1
    c.primordial_chemistry = 2
    c.metal_cooling = 0
    c.UVbackground = 0
    c.with_radiative_cooling = 1
    c.H2_self_shielding = 0
    c.dust_chemistry = 0
    c.h2_on_dust = 0
    c.HydrogenFractionByMass = X_H
    c.comoving_coordinates = 0
    c.a_units = 1.0
    c.a_value = 1.0
    c.density_units = mass_hydrogen_cgs
    c.time_units = sec_per_Myr
    c.length_units = 1e5 * sec_per_Myr
    c.set_velocity_units()
    if variant == "matched":
        c.CaseBRecombination = 1
        c.three_body_rate = 1
        c.h2_optical_depth_approximation = 1
        c.cmb_temperature_floor = 0
    elif variant != "default":
        raise ValueError(variant)
    for k, v in overrides.items():
        setattr(c, k, v)
    if c.initialize() == 0:
        raise RuntimeError("chemistry_data.initialize failed")
    return c


def settings(c):
    keys = ["primordial_chemistry", "metal_cooling", "UVbackground", "with_radiative_cooling",
            "H2_self_shielding", "three_body_rate", "dust_chemistry", "h2_on_dust", "comoving_coordinates",
            "CaseBRecombination", "cmb_temperature_floor", "h2_optical_depth_approximation", "cie_cooling",
            "photoelectric_heating", "Compton_xray_heating", "max_iterations", "Gamma",
            "HydrogenFractionByMass", "density_units", "length_units", "time_units", "velocity_units",
            "a_value"]
    out = {k: getattr(c, k) for k in keys}
    out["grackle_data_file"] = (c.grackle_data_file or b"").decode() or None
    return out


def make_fc(c, n_H, x):
    """A FluidContainer holding our states (code densities = mass densities / m_H)."""
    fc = FluidContainer(c, n_H.size)
    fc["HI_density"][:] = n_H * x[0]
    fc["H2I_density"][:] = 2.0 * n_H * x[1]
    fc["e_density"][:] = n_H * x[2]  # Grackle's convention: n_e * m_H
    fc["HII_density"][:] = n_H * x[3]
    fc["HM_density"][:] = n_H * x[4]
    fc["H2II_density"][:] = 2.0 * n_H * x[5]
    fc["HeI_density"][:] = 4.0 * Y_HE * n_H
    fc["HeII_density"][:] = HE_TINY
    fc["HeIII_density"][:] = HE_TINY
    fc["density"][:] = sum(fc[f] for f in fc.density_fields if f not in ("density", "e_density"))
    set_temperature(fc, x[6])
    return fc


def set_temperature(fc, T, iterations=50):
    """Internal energy such that Grackle's calculate_temperature gives T (H2 makes gamma depend on T)."""
    fc.calculate_mean_molecular_weight()  # energy is zero here: mu from the species
    mu = fc["mean_molecular_weight"].copy()
    fc["internal_energy"][:] = T / fc.chemistry_data.temperature_units / mu / (fc.chemistry_data.Gamma - 1.0)
    for _ in range(iterations):
        fc.calculate_temperature()
        ratio = T / fc["temperature"]
        fc["internal_energy"][:] *= ratio
        if np.abs(ratio - 1.0).max() < 1e-12:
            break
    fc.calculate_temperature()
    err = np.abs(fc["temperature"] / T - 1.0).max()
    if err > 1e-9:
        raise RuntimeError(f"could not match T: max relative error {err:g}")


def read_state(fc, n_H):
    fc.calculate_temperature()
    return np.stack([fc["HI_density"] / n_H, fc["H2I_density"] / (2 * n_H), fc["e_density"] / n_H,
                     fc["HII_density"] / n_H, fc["HM_density"] / n_H, fc["H2II_density"] / (2 * n_H),
                     fc["temperature"].copy()])


def snapshot(fc):
    return {f: fc[f].copy() for f in fc.input_fields}


def restore(fc, snap):
    for f, v in snap.items():
        fc[f][:] = v


class FortranOutput:
    """Redirect fds 1 and 2 (Grackle's Fortran writes) to files while solving.

    Grackle reports a row that ran out of subcycles (max_iterations) only on stderr, with the
    elapsed time ttot and the still-active mask of every cell of the row; solve_chemistry still
    returns success. mark() after each call records the stderr offset, so per_call holds each
    call's own report.
    """

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        os.dup2(self.out.fileno(), 1)
        os.dup2(self.err.fileno(), 2)
        self.marks = [0]
        return self

    def mark(self):
        self.marks.append(os.lseek(2, 0, os.SEEK_CUR))

    def __exit__(self, *exc):
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.out.seek(0)
        self.err.seek(0)
        self.stdout = self.out.read().decode(errors="replace")
        err = self.err.read()
        self.out.close()
        self.err.close()
        self.per_call = [err[a:b].decode(errors="replace") for a, b in zip(self.marks[:-1], self.marks[1:])]
        return False


def _fortran_float(field):
    """One 1pe8.1 field ("4.4E-03", "1.0-100" for 3-digit exponents, "Infinity", "********")."""
    f = field.strip()
    m = re.fullmatch(r"([-+]?\d\.\d)([-+]\d{3})", f)
    if m:
        f = m.group(1) + "E" + m.group(2)
    try:
        return float(f)
    except ValueError:
        return float("nan")


def unfinished(text, n):
    """Cells of one call that Grackle left unfinished (max_iterations exceeded), and their ttot/dt.

    The report (solve_rate_cool_g.F) is: "dt = ... ttmin = ..." then dtit, ttot, edot of every cell
    of the row in 16 fields of width 8 per line, then the active mask in 16 fields of width 3.
    """
    if "FATAL error (2) in MULTI_COOL" not in text:
        return np.zeros(0, int), np.zeros(0)
    head, body = text.split("ttmin =", 1)
    dt = _fortran_float(re.findall(r"dt =\s*(\S+)", head)[-1])
    lines = body.split("\n")[1:]
    nl = -(-n // 16)
    ttot = [_fortran_float(ln[k:k + 8]) for ln in lines[nl:2 * nl] for k in range(0, len(ln), 8)]
    mask = [ln[k:k + 3].strip() for ln in lines[3 * nl:4 * nl] for k in range(0, len(ln), 3)]
    if len(ttot) != n or len(mask) != n or not set(mask) <= {"T", "F"}:
        raise RuntimeError("could not parse Grackle's max_iterations report")
    idx = np.flatnonzero(np.array(mask) == "T")
    return idx, np.array(ttot)[idx] / dt


def solve(fcs, dts):
    """One solve_chemistry call per (container, dt [s]). Returns wall time, per-call unfinished cells."""
    with FortranOutput() as cap:
        t0 = time.perf_counter()
        for fc, dt in zip(fcs, dts):
            fc.solve_chemistry(dt / fc.chemistry_data.time_units)
            cap.mark()
        wall = time.perf_counter() - t0
    fails = [unfinished(text, fc.n_vals) for text, fc in zip(cap.per_call, fcs)]
    return wall, fails


def timed(fcs, dts, repeats=3):
    snaps = [snapshot(fc) for fc in fcs]
    walls = []
    for _ in range(repeats):
        for fc, s in zip(fcs, snaps):
            restore(fc, s)
        wall, fails = solve(fcs, dts)
        walls.append(wall)
    return walls, fails


def containers(c, n_H, x, dt_cells, row=None):
    """FluidContainers for cells sharing one dt (optionally cut into rows of `row` cells)."""
    idx, dts = [], []
    for v in np.unique(dt_cells):
        cells = np.flatnonzero(dt_cells == v)
        for part in ([cells] if row is None else np.array_split(cells, max(1, cells.size // row))):
            idx.append(part)
            dts.append(float(v))
    return [make_fc(c, n_H[i], x[:, i]) for i in idx], idx, dts


def gather(fcs, idx, n_H, fails=None):
    """Our state vector of all cells, and the mask of cells Grackle left unfinished."""
    N = sum(i.size for i in idx)
    out, bad = np.empty((7, N)), np.zeros(N, bool)
    for k, (fc, i) in enumerate(zip(fcs, idx)):
        out[:, i] = read_state(fc, n_H[i])
        if fails is not None:
            bad[i[fails[k][0]]] = True
    return out, bad


def dlog10(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(np.log10(np.maximum(a, 1e-300)) - np.log10(np.maximum(b, 1e-300)))
    compare = np.maximum(a, b) > COMPARE_FLOOR
    compare[-1] = True
    return np.where(compare, d, 0.0)


def compare(a, b, exclude=None):
    """|d log10| statistics (T, and species above 1e-20) over cells not in `exclude`."""
    keep = np.ones(a.shape[1], bool) if exclude is None else ~exclude
    d = dlog10(a[:, keep], b[:, keep])
    out = {"cells": int(keep.sum()), "excluded_unfinished": int((~keep).sum()),
           "frac_dlogT_le_0.01": float((d[6] <= 0.01).mean()),
           "frac_all_le_0.01": float((d.max(axis=0) <= 0.01).mean())}
    for i, name in ((6, "T"), (1, "H2"), (2, "e-")):
        out[f"median_dlog_{name}"] = float(np.median(d[i]))
        out[f"p99_dlog_{name}"] = float(np.percentile(d[i], 99))
        out[f"max_dlog_{name}"] = float(d[i].max())
    return out


def timing_case(name, c, n_H, x, dt_cells, repeats, row=None, **extra):
    fcs, idx, dts = containers(c, n_H, x, dt_cells, row)
    walls, fails = timed(fcs, dts, repeats)
    result, bad = gather(fcs, idx, n_H, fails)
    n_cells = n_H.size
    reached = np.zeros(n_cells)
    for f, i in zip(fails, idx):
        reached[i[f[0]]] = f[1]
    examples = [{"cell": int(k), "n_H": float(n_H[k]), "T0": float(x[6, k]), "y_e0": float(x[2, k]),
                 "y_H2_0": float(x[1, k]), "ttot_over_dt": float(reached[k])} for k in np.flatnonzero(bad)[:10]]
    best = min(walls)
    row_out = {"case": name, "cells": int(n_H.size), "calls": len(fcs), "walls_s": walls,
               "best_wall_s": best, "cells_per_s": n_cells / best,
               "unfinished_cells": int(bad.sum()), "row_cells": row or "all cells of one dt",
               "unfinished_ttot_over_dt_range": ([float(reached[bad].min()), float(reached[bad].max())]
                                                 if bad.any() else None),
               "unfinished_examples": examples, **extra}
    print(f"{name:52s} {len(fcs):5d} calls  best {best:8.3f} s  {n_cells / best:9.0f} cells/s"
          f"  unfinished {int(bad.sum())}", flush=True)
    return row_out, result, bad


def run(states, reference, repeats=3):
    d = np.load(states)
    n_H, x, t_ff, dt_hydro = d["n_H"], d["x"], float(d["t_ff"]), d["dt_hydro"]
    N = n_H.size
    ref = np.load(reference) if reference and os.path.exists(reference) else None
    c = chemistry("default")
    rows, results, accuracy, selfconv = [], {}, {}, {}

    for frac in (0.1, 1e-3):  # one call on all cells (one 32768-cell row)
        r, results[frac], results[frac, "bad"] = timing_case(
            f"dt = {frac:g} t_ff(1e6), one row", c, n_H, x, np.full(N, frac * t_ff), repeats,
            dt_s=frac * t_ff, start="sampled states")
        rows.append(r)
    for frac in (0.1, 1e-3):  # the same cells as rows of 32, as a 32^3 grid is swept
        r, _, _ = timing_case(f"dt = {frac:g} t_ff(1e6), rows of 32", c, n_H, x, np.full(N, frac * t_ff),
                              repeats, row=32, dt_s=frac * t_ff, start="sampled states")
        rows.append(r)
    c5 = chemistry("default", max_iterations=100000)  # can the stalled cells finish?
    r, _, _ = timing_case("dt = 0.1 t_ff(1e6), rows of 32, max_iterations 1e5", c5, n_H, x,
                          np.full(N, 0.1 * t_ff), repeats, row=32, dt_s=0.1 * t_ff, start="sampled states",
                          max_iterations=100000)
    rows.append(r)
    cm = chemistry("matched")
    for frac in (0.1, 1e-3):  # the matched variant (three_body_rate 1 etc.), rows of 32
        r, _, _ = timing_case(f"matched variant, dt = {frac:g} t_ff(1e6), rows of 32", cm, n_H, x,
                              np.full(N, frac * t_ff), repeats, row=32, dt_s=frac * t_ff,
                              start="sampled states", variant="matched")
        rows.append(r)
    r, results["hydro"], results["hydro", "bad"] = timing_case(
        "hydro dt = 1e-3 t_ff(n_H), 256 groups", c, n_H, x, dt_hydro, repeats,
        dt_s_range=[float(dt_hydro.min()), float(dt_hydro.max())], start="sampled states")
    rows.append(r)

    x_eq = results[0.1]  # near equilibrium: Grackle's own state after 0.1 t_ff(1e6)
    for name, dt_cells, row in (("near-eq, dt = 1e-3 t_ff(1e6), one row", np.full(N, 1e-3 * t_ff), None),
                                ("near-eq, dt = 1e-3 t_ff(1e6), rows of 32", np.full(N, 1e-3 * t_ff), 32),
                                ("near-eq, hydro dt = 1e-3 t_ff(n_H), 256 groups", dt_hydro, None)):
        r, _, _ = timing_case(name, c, n_H, x_eq, dt_cells, repeats, row=row,
                              start="Grackle result after 0.1 t_ff(1e6)")
        rows.append(r)

    # call overhead: a negligible dt (about one subcycle per cell) as 1024 rows of 32 vs one row
    overhead = {}
    for row in (None, 32):
        fcs, idx, dts = containers(c, n_H, x, np.full(N, 1e-12 * t_ff), row)
        overhead["rows_of_32" if row else "one_row"] = min(timed(fcs, dts, repeats)[0])
    print(f"  dt ~ 0 (one subcycle): one row {overhead['one_row']:.4f} s, 1024 rows "
          f"{overhead['rows_of_32']:.4f} s", flush=True)

    for frac in (0.1, 1e-3):  # self-convergence: the same dt as 10 and 100 equal calls
        split, bad = {1: results[frac]}, results[frac, "bad"].copy()
        for n in (10, 100):  # rows of 32: per-cell results do not depend on the row length
            fcs, idx, dts = containers(c, n_H, x, np.full(N, frac * t_ff / n), row=32)
            wall, fails = solve(fcs * n, dts * n)
            split[n] = gather(fcs, idx, n_H)[0]
            for i, f in zip(idx * n, fails):
                bad[i[f[0]]] = True
            print(f"  dt = {frac:g} t_ff(1e6) as {n} calls per cell: {wall:.2f} s", flush=True)
        selfconv[f"dt_{frac:g}tff"] = {"1_vs_10_calls": compare(split[1], split[10], bad),
                                       "10_vs_100_calls": compare(split[10], split[100], bad),
                                       "1_vs_100_calls": compare(split[1], split[100], bad)}

    if ref is not None:  # agreement with the converged thermoemu result on a subset
        sub = ref["sub"]
        cases = {"dt_0.1tff": (np.full(sub.size, 0.1 * t_ff), 0.1),
                 "dt_1e-3tff": (np.full(sub.size, 1e-3 * t_ff), 1e-3),
                 "hydro_1e-3tff_own": (dt_hydro[sub], "hydro")}
        for name, (dt_sub, key) in cases.items():
            fcs, idx, dts = containers(cm, n_H[sub], x[:, sub], dt_sub, row=32)
            _, fails = solve(fcs, dts)
            matched, bad_m = gather(fcs, idx, n_H[sub], fails)
            bad = results[key, "bad"][sub]
            accuracy[name] = {"default": compare(ref[name], results[key][:, sub], bad),
                              "default_incl_unfinished": compare(ref[name], results[key][:, sub]),
                              "matched": compare(ref[name], matched, bad_m),
                              "reference_success": float(ref[name + "_success"].mean())}
            a, m = accuracy[name]["default"], accuracy[name]["matched"]
            print(f"  vs thermoemu {name}: |dlogT|<=0.01 {a['frac_dlogT_le_0.01']:.3f}; median/p99 |dlog| "
                  f"T {a['median_dlog_T']:.3g}/{a['p99_dlog_T']:.3g}, H2 {a['median_dlog_H2']:.3g}/"
                  f"{a['p99_dlog_H2']:.3g}, e- {a['median_dlog_e-']:.3g}/{a['p99_dlog_e-']:.3g}; "
                  f"matched: |dlogT|<=0.01 {m['frac_dlogT_le_0.01']:.3f}, T p99 {m['p99_dlog_T']:.3g}", flush=True)

    return {
        "what": "Grackle solve_chemistry on the 32^3 Region-1 states of benchmarks/bench_solver.py",
        "grackle": get_grackle_version(), "gracklepy": gracklepy.__version__,
        "settings": settings(c), "settings_matched_variant": settings(chemistry("matched")),
        "units_note": "density_units = m_H, time_units = 1 Myr, velocity_units = 1 km/s",
        "data_file": "none (not needed for primordial_chemistry 2 without metal cooling or UV background)",
        "t_ff_1e6_s": t_ff, "cells": int(N), "repeats": repeats,
        "finite_results": bool(np.isfinite(results[0.1]).all() and np.isfinite(results[1e-3]).all()),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "timing": rows, "call_overhead_tiny_dt_s": overhead, "self_convergence": selfconv,
        "agreement_with_thermoemu_rtol1e-7": accuracy or None,
        "agreement_note": "agreement between two networks with different rate fits and thermodynamics, "
                          "not a convergence test; 'unfinished' cells (Grackle hit max_iterations and "
                          "left them short of dt) are excluded except in default_incl_unfinished",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--states", default="/tmp/grackle-states.npz")
    p.add_argument("--reference", default="/tmp/grackle-reference.npz")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("-o", "--output", default="benchmarks/grackle/grackle.json")
    a = p.parse_args(argv)
    out = run(a.states, a.reference, a.repeats)
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
