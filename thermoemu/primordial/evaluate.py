"""Evaluation of a model set against the reference: OS25 Table 2, Fig. 6c/d and Fig. 7.

* :func:`accuracy_table` - fractions of single-step predictions with relative error (OS25 eq. 19)
  below 5 % and 10 %, per variable and region, on each catalog's held-out *test* split, beside
  the values OS25 report (their Table 2).
* :func:`fixed_density_test` - OS25 section 3.2.2 / Fig. 6c-d: n_H = 1e3 cm^-3, T0 = 300 K,
  dt0 = 4e10 s split into 1000 equal substeps, plain iteration against the timescale-based update.
* :func:`collapse_comparison` - OS25 Fig. 7: the one-zone collapse with the emulator (both
  updates) against the reference at several dt / t_ff.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..solvers.rosenbrock import SolverSettings, integrate
from .emulator import UPDATES, Emulator
from .models.features import VARIABLES, log_state
from .models.training import load_catalog_arrays, relative_error_fractions
from .onezone import collapse, emulator_stepper
from .physics.network import default_network, free_fall_time, project_abundances
from .sampling import region_of

__all__ = ["SEED_TABLE2", "accuracy_table", "fixed_density_test", "collapse_comparison", "max_log_deviation"]

#: OS25 Table 2: percent of predictions with relative error < 5 % and < 10 %, per region (0-4),
#: in the order T, H, H2, e-, H+, H-, H2+ (rows) and (5 %, 10 %) pairs per region (columns).
_SEED_ROWS = {
    "temperature": [97, 99, 98, 100, 99, 100, 100, 100, 100, 100],
    "H": [100, 100, 99, 100, 99, 100, 97, 99, 92, 98],
    "H2": [94, 97, 84, 91, 91, 96, 94, 99, 95, 100],
    "e-": [97, 99, 91, 97, 87, 95, 91, 97, 72, 87],
    "H+": [96, 99, 90, 97, 84, 94, 91, 97, 74, 88],
    "H-": [66, 86, 64, 87, 72, 90, 77, 93, 68, 86],
    "H2+": [52, 74, 48, 74, 49, 74, 49, 75, 53, 78],
}
SEED_TABLE2 = xr.DataArray(
    np.array([[_SEED_ROWS[v][2 * r: 2 * r + 2] for r in range(5)] for v in VARIABLES], dtype=float) / 100.0,
    dims=("variable", "region", "threshold"),
    coords={"variable": list(VARIABLES), "region": np.arange(5), "threshold": [0.05, 0.10]},
    name="fraction_below", attrs={"source": "Ono & Sugimura (2025), Table 2"})


def accuracy_table(emulator: Emulator, catalogs, *, split="test", max_samples=None):
    """Single-step accuracy on held-out catalog samples (OS25 Table 2).

    Parameters
    ----------
    emulator : Emulator
    catalogs : dict of int -> path
        Built catalog per region.
    split : str
        Catalog split to evaluate (default ``"test"``, never used in training).
    max_samples : int, optional

    Returns
    -------
    xarray.Dataset
        ``fraction_below`` (variable, region, threshold) of the model set, ``seed`` (OS25) and
        ``median_abs_dex`` (variable, region), the median |log10 pred - log10 true|.
    """
    fractions = np.full((7, 5, 2), np.nan)
    median = np.full((7, 5), np.nan)
    count = np.zeros(5, dtype=int)
    for r, path in sorted(catalogs.items()):
        if r not in emulator.regions:
            continue
        d = load_catalog_arrays(path, split)
        if max_samples:
            d = type(d)(**{k: (None if v is None else (v[..., :max_samples] if k in ("x0", "x1") else v[:max_samples]))
                           for k, v in d.__dict__.items()})
        log_pred = emulator.regions[r].predict_log(d.n_H, d.x0, d.dt)
        log_true = log_state(d.x1)
        fractions[:, r, :] = relative_error_fractions(log_true, log_pred).T
        median[:, r] = np.median(np.abs(log_pred - log_true), axis=0)
        count[r] = len(d)
    coords = {"variable": list(VARIABLES), "region": np.arange(5), "threshold": [0.05, 0.10]}
    return xr.Dataset(
        {"fraction_below": (("variable", "region", "threshold"), fractions,
                            {"long_name": "fraction of test samples with relative error below threshold"}),
         "seed": SEED_TABLE2,
         "median_abs_dex": (("variable", "region"), median, {"units": "dex"}),
         "samples": ("region", count)},
        coords=coords, attrs={"split": split, "model": str(emulator.model_dir)})


def collapse_track_states(n_states=2000, *, log_n_range=(-2.0, 13.0), n_noise_dex=0.05, t_noise_dex=0.02, seed=0):
    """Snapshot-like states: points of the reference collapse track (dt = 0.1 t_ff), perturbed.

    log10 n_H is drawn uniformly in ``log_n_range``; temperature and abundances are the track's at
    that density, then n_H is moved by up to ``n_noise_dex`` and T by up to ``t_noise_dex``
    (uniform), and the abundances are projected onto conservation. No catalog is involved.

    Returns
    -------
    n_H : ndarray (N,)
        [cm^-3]
    x : ndarray (7, N)
        Abundances (network order) and temperature [K].
    """
    track = collapse(step_fraction=0.1, n_end=10.0 ** (log_n_range[1] + 0.2))
    log_n = np.log10(track["n_H"].values)
    log_T = np.log10(track["temperature"].values)
    y = track["abundance"].transpose("species", "step").values
    rng = np.random.default_rng(seed)
    ln = rng.uniform(*log_n_range, n_states)
    T = 10.0 ** (np.interp(ln, log_n, log_T) + rng.uniform(-t_noise_dex, t_noise_dex, n_states))
    ab = np.stack([10.0 ** np.interp(ln, log_n, np.log10(np.maximum(y[i], 1e-40))) for i in range(6)])
    ab = np.maximum(project_abundances(ab), 0.0)
    n_H = 10.0 ** (ln + rng.uniform(-n_noise_dex, n_noise_dex, n_states))
    return n_H, np.vstack([ab, T])


def track_step_accuracy(stepper, fractions=(1e-3, 1e-2, 1e-1), *, n_states=2000, seed=0, threshold=0.05,
                        reference=None):
    """Single steps from snapshot-like states (:func:`collapse_track_states`) against the reference.

    Parameters
    ----------
    stepper : Stepper
        What is tested (an :class:`Emulator`, or any object with ``step_arrays``).
    fractions : sequence of float
        dt as multiples of the free-fall time at each cell's n_H.
    n_states, seed : int
    threshold : float
        Relative error counted as a hit.
    reference : Stepper, optional
        Default: :class:`~thermoemu.primordial.reference.ReferenceStepper` with default settings.

    Returns
    -------
    xarray.Dataset
        ``fraction_within`` (dt_over_t_ff, variable): share of steps with |x / x_ref - 1| < threshold,
        and ``median_abs_dex`` (dt_over_t_ff, variable).
    """
    from .reference import ReferenceStepper

    reference = reference or ReferenceStepper()
    n_H, x0 = collapse_track_states(n_states, seed=seed)
    t_ff = free_fall_time(n_H)
    within = np.empty((len(fractions), 7))
    median = np.empty((len(fractions), 7))
    for k, f in enumerate(fractions):
        dt = f * t_ff
        x_ref = reference.step_arrays({"n_H": n_H}, x0, dt).x
        x = stepper.step_arrays({"n_H": n_H}, x0, dt).x
        with np.errstate(all="ignore"):
            within[k] = (np.abs(x / x_ref - 1.0) < threshold).mean(axis=1)
            median[k] = np.median(np.abs(log_state(x) - log_state(x_ref)), axis=0)
    coords = {"dt_over_t_ff": list(fractions), "variable": list(VARIABLES)}
    return xr.Dataset({"fraction_within": (("dt_over_t_ff", "variable"), within, {"threshold": threshold}),
                       "median_abs_dex": (("dt_over_t_ff", "variable"), median, {"units": "dex"})},
                      coords=coords, attrs={"states": n_states, "seed": seed,
                                            "stepper": getattr(stepper, "label", type(stepper).__name__)})


def _reference_state_at(n_target):
    """Abundances of the reference collapse (dt = 0.1 t_ff) where it passes n_H = n_target."""
    ds = collapse(step_fraction=0.1, n_end=n_target)
    return ds["abundance"].values[-1]


def emulator_updates(emulator: Emulator):
    """The update rules a model set is compared with: eq. 8 and plain for DeepONet sets, plain (its
    only rule) for physics-first ones."""
    return ("plain",) if emulator.physics_first else ("timescale", "plain")


def fixed_density_test(emulator: Emulator, *, n_H=1e3, temperature=300.0, dt0=4.0e10, substeps=1000,
                       abundance=None, settings=None, updates=None):
    """OS25 Fig. 6c/d: 1000 substeps of dt0/1000 at fixed density, with each update rule of the model set.

    Parameters
    ----------
    emulator : Emulator
    n_H : float
        [cm^-3]
    temperature : float
        Initial temperature [K].
    dt0 : float
        Total time [s] (OS25: 4.0e10 s).
    substeps : int
    abundance : array (6,), optional
        Initial abundances; default: the reference collapse's abundances at this n_H.
    settings : SolverSettings, optional
        Reference solver settings.
    updates : sequence of str, optional
        Default: :func:`emulator_updates`.

    Returns
    -------
    xarray.Dataset
        ``temperature`` (method, iteration) for methods ``reference`` and each update,
        ``time`` (iteration) [s], and attributes ``final_T_relative_error_{update}``.
    """
    y0 = np.asarray(_reference_state_at(n_H) if abundance is None else abundance, dtype=float)
    x0 = np.concatenate([y0, [temperature]])[:, None]
    n = np.array([float(n_H)])
    h = np.array([dt0 / substeps])
    network = default_network()
    settings = settings or SolverSettings(rtol=1e-6)
    updates = tuple(emulator_updates(emulator) if updates is None else updates)
    traj = {m: np.empty(substeps + 1) for m in ("reference", *updates)}
    abund = {m: np.empty((substeps + 1, 6)) for m in traj}
    wall = {}
    for method in traj:
        x = x0.copy()
        traj[method][0], abund[method][0] = x[6, 0], x[:6, 0]
        t0 = time.perf_counter()
        em = emulator.with_options(update=method, out_of_domain="flag") if method != "reference" else None
        for i in range(substeps):
            if em is None:
                x = integrate(network, x, network.cell_parameters(n), h, settings).x
            else:
                res = em.step_arrays(n, x, h)
                x = res.x
            traj[method][i + 1], abund[method][i + 1] = x[6, 0], x[:6, 0]
        wall[method] = time.perf_counter() - t0
    out = xr.Dataset(
        {"temperature": (("method", "iteration"), np.array([traj[m] for m in traj]), {"units": "K"}),
         "abundance": (("method", "iteration", "species"), np.array([abund[m] for m in traj]), {"units": "1"}),
         "time": ("iteration", h[0] * np.arange(substeps + 1), {"units": "s"})},
        coords={"method": list(traj), "iteration": np.arange(substeps + 1), "species": list(VARIABLES[:6])},
        attrs={"n_H": n_H, "dt0_s": dt0, "substeps": substeps})
    for m in updates:
        out.attrs[f"final_T_relative_error_{m}"] = float(traj[m][-1] / traj["reference"][-1] - 1.0)
        out.attrs[f"wall_s_{m}"] = wall[m]
    out.attrs["wall_s_reference"] = wall["reference"]
    return out


def _log_deviation(track, reference, variable):
    """(log10 n_H grid, |log10 track - log10 reference|) on 2000 points of the common n_H range."""
    ln_ref = np.log10(reference["n_H"].values)
    ln = np.log10(track["n_H"].values)
    lo, hi = max(ln_ref[0], ln[0]), min(ln_ref[-1], ln[-1])
    grid = np.linspace(lo, hi, 2000)
    a = np.interp(grid, ln, np.log10(track[variable].values))
    b = np.interp(grid, ln_ref, np.log10(reference[variable].values))
    return grid, np.abs(a - b)


def max_log_deviation(track, reference, variable="temperature"):
    """max |log10 track - log10 reference| over the reference's n_H range (interpolated in log n_H)."""
    return float(np.max(_log_deviation(track, reference, variable)[1]))


def max_log_deviation_by_region(track, reference, variable="temperature"):
    """The same maximum per density region (OS25 Table 1 edges 1e4, 1e8, 1e12, 1e15 cm^-3).

    Returns
    -------
    dict
        region number -> max |d log10| [dex], for the regions the common n_H range reaches.
    """
    grid, dev = _log_deviation(track, reference, variable)
    regions = region_of(10.0 ** grid)
    return {int(r): float(dev[regions == r].max()) for r in np.unique(regions)}


def collapse_comparison(emulator: Emulator, fractions=(1e-1, 1e-2, 1e-3), *, n_end=1e18, progress=False,
                        updates=None):
    """OS25 Fig. 7: collapse tracks of the reference and of the emulator (by default its own update rules) per dt/t_ff.

    Parameters
    ----------
    updates : sequence of str, optional
        The emulator's update rules to run (see :data:`thermoemu.primordial.emulator.UPDATES`);
        default :func:`emulator_updates`.

    Returns
    -------
    dict
        ``{fraction: {"reference": ds, "timescale": ds, "plain": ds}}`` (one entry per update) plus,
        per fraction and update, ``max_dlogT`` (dex; also per density region in ``max_dlogT_by_region``) and
        ``wall_s`` in ``summary``.
    """
    updates = tuple(dict.fromkeys(emulator_updates(emulator) if updates is None else updates))  # each once, in order
    bad = [u for u in updates if u not in UPDATES]
    if bad or not updates:
        raise ValueError(f"updates = {list(updates)!r}; allowed: {', '.join(UPDATES)} (at least one)")
    tracks, summary = {}, []
    for f in fractions:
        tracks[f] = {}
        for method in ("reference", *updates):
            t0 = time.perf_counter()
            stepper = None if method == "reference" else emulator_stepper(emulator.with_options(update=method))
            ds = collapse(step_fraction=f, n_end=n_end, stepper=stepper, progress=progress)
            ds.attrs["wall_time_s"] = time.perf_counter() - t0
            tracks[f][method] = ds
        for method in updates:
            ds = tracks[f][method]
            summary.append({"step_fraction": f, "update": method,
                            "max_dlogT": max_log_deviation(ds, tracks[f]["reference"]),
                            "max_dlogT_by_region": max_log_deviation_by_region(ds, tracks[f]["reference"]),
                            "reference_fallback_steps": int(np.isin(ds["substeps"].values[1:], (2, 4)).sum()),
                            "steps": int(ds.sizes["step"] - 1),
                            "wall_s": round(ds.attrs["wall_time_s"], 2),
                            "reference_wall_s": round(tracks[f]["reference"].attrs["wall_time_s"], 2)})
    return tracks, summary


def write_outputs(out_dir, *, table=None, fixed=None, tracks=None, summary=None):
    """Write what :func:`accuracy_table` etc. returned as netCDF / JSON and plots under ``out_dir``."""
    import json

    from .plotting import plot_accuracy_table, plot_collapse_comparison, plot_fixed_density
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if table is not None:
        table.to_netcdf(out / "table2.nc")
        (out / "table2.md").write_text(format_table2(table))
        plot_accuracy_table(table, out / "table2.png")
        written += ["table2.nc", "table2.md", "table2.png"]
    if fixed is not None:
        fixed.to_netcdf(out / "fixed_density.nc")
        plot_fixed_density(fixed, out / "fixed_density.png")
        written += ["fixed_density.nc", "fixed_density.png"]
    if tracks is not None:
        plot_collapse_comparison(tracks, out / "collapse_emulator.png")
        (out / "collapse_emulator.json").write_text(json.dumps(summary, indent=1))
        written += ["collapse_emulator.png", "collapse_emulator.json"]
    return [out / w for w in written]


def format_table2(table):
    """Markdown: ours / OS25 per variable, region and threshold (percent)."""
    head = "| variable | " + " | ".join(f"R{r} <5% | R{r} <10%" for r in range(5)) + " |"
    lines = [head, "|---" * 11 + "|"]
    for v in VARIABLES:
        cells = []
        for r in range(5):
            for k in range(2):
                ours = table["fraction_below"].sel(variable=v, region=r).values[k]
                seed = table["seed"].sel(variable=v, region=r).values[k]
                cells.append("-" if np.isnan(ours) else f"{100 * ours:.0f} / {100 * seed:.0f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines.append("\nEach cell: ours / OS25 (percent of test samples with relative error below the threshold).")
    return "\n".join(lines) + "\n"
