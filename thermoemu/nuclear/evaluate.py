"""Evaluation of NNNs and of the small net against mesa80 (Grichener et al. 2025, section 3).

On a test catalog whose initial compositions hold only isotopes both networks share
(``thermoemu/data/catalogs/si-mesa80-test.yaml``), per dt:

* Eq. 4: ``Delta X_i = < |X_i,pred - X_i,target| >`` over test states;
* Eq. 6: ``Delta Ye = < sum_i Z_i/A_i |X_i,pred - X_i,target| >``;
* Eqs. 7-8: ``Delta e_nuc = < |e_nuc,pred - e_nuc,target| >``, the same for eps_nu;

normalized, as in their Fig. 4, by the mean target value (<Ye>, <|e_nuc|>, <eps_nu>), for the NNN
and for ``small22`` burned from the same states (its missing isotopes count as X = 0, and its
isotopes mesa80 lacks as errors against 0); the improvement factor (their Fig. 5) is the small
net's error over the NNN's. The direct |Ye_pred - Ye_target| is reported too.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.catalog import open_catalog
from ..core.emulator import resolve_model
from ..core.plotting import pyplot
from .burner import burn_times
from .emulator import default_nnn_dir
from .network import load_network
from .nnn import load_nnn_set

__all__ = ["evaluate_nuclear", "format_nuclear_table", "format_persistence_table", "plot_nuclear_evaluation",
           "GOALS", "goals_met", "PERSISTENCE", "YE_CHANGE_MIN"]

#: Issue 27 goals: Ye (Eq. 6) <= 0.5 %; >= 10x better than the small net on Ye and e_nuc; better than
#: persistence on composition, Ye and e_nuc in >= 99 % of test states; the error of the change in Ye
#: (over states whose Ye changes by more than YE_CHANGE_MIN) at most 5 % in the median and 30 % at the 99th
#: percentile.
GOALS = {"ye_max": 0.005, "ye_improvement": 10.0, "e_nuc_improvement": 10.0, "beats_persistence": 0.99,
         "ye_change_median": 0.05, "ye_change_p99": 0.30}
#: The model name of the "nothing changes" baseline: X(dt) = X0, e_nuc = 0, eps_nu = its rate at X0.
PERSISTENCE = "persistence"
#: States whose |Ye_ref - Ye0| exceeds this enter the change-in-Ye statistics.
YE_CHANGE_MIN = 1e-7
METRICS = ("ye_eq6", "ye_direct", "e_nuc", "eps_nu")
QUANTITIES = ("composition", "ye", "e_nuc")


def _errors(X_pred, e_pred, nu_pred, X_true, e_true, nu_true, z_over_a):
    dX = np.abs(X_pred - X_true)
    ye_pred, ye_true = X_pred @ z_over_a, X_true @ z_over_a
    return {
        "delta_X": dX.mean(axis=0),
        "ye_eq6": float((dX @ z_over_a).mean() / ye_true.mean()),
        "ye_direct": float(np.abs(ye_pred - ye_true).mean() / ye_true.mean()),
        "e_nuc": float(np.abs(e_pred - e_true).mean() / np.abs(e_true).mean()),
        "eps_nu": float(np.abs(nu_pred - nu_true).mean() / np.abs(nu_true).mean()),
        # per state: what the persistence comparison and the change in Ye are measured on
        "state": np.stack([dX.sum(axis=1), np.abs(ye_pred - ye_true), np.abs(e_pred - e_true)]),
    }


def evaluate_nuclear(model_dir, test_catalog, *, compare=None, small_network="small22", split=None, progress=False):
    """NNN, small-net and persistence errors against the catalog's mesa80 targets, per dt.

    Parameters
    ----------
    model_dir : path or "default"
        The NNN set under test (``"default"``: the shipped mesa80 NNNs).
    test_catalog : path
        A built nuclear test catalog (e.g. of ``si-mesa80-test``).
    compare : path or "default", optional
        A second NNN set evaluated on the same states (model ``"compare"``), e.g. the shipped one.
    small_network : str or None
        The small network burned from the same states (seed 000: small22); None: none (states holding
        isotopes no small net has, such as trajectory states).
    split : {"train", "validation", "test"}, optional
        Score only this split of the catalog (a training catalog's held-out states); default: all of it
        (a test catalog).

    Returns
    -------
    xarray.Dataset
        ``error`` (dt, model, metric): normalized mean absolute errors ``ye_eq6``, ``ye_direct``, ``e_nuc``,
        ``eps_nu`` of the models ``nnn`` [, ``compare``], the small net and ``persistence``;
        ``improvement`` (dt, metric) = small net / NNN; ``delta_X`` (dt, model, isotope);
        ``beats_persistence`` (dt, model, quantity): fraction of states where the model's error of the
        composition (sum_i |dX_i|), Ye or e_nuc is below persistence's; ``worse_than_persistence``: the
        fraction where it exceeds persistence's by more than the model's own median error;
        ``ye_change_error`` (dt, model, stat): median and 99th percentile over states with
        |Ye_ref - Ye0| > YE_CHANGE_MIN of |Ye_model - Ye_ref| / |Ye_ref - Ye0|; ``ye_change_states`` (dt).
        (The model dim is not called ``method``: ``.sel(method=...)`` would be xarray's keyword.)
    """
    from pynucastro import Nucleus

    from .implicit import kernel_rhs_cells
    from .network import load_burner_kernel

    with open_catalog(test_catalog, split=split) as lazy:  # closed here, not left to the GC
        cat = lazy.load()
    ok = cat["success"].values.astype(bool)
    if not ok.any():
        raise ValueError(f"{test_catalog} has no successful states" + (f" in its {split} split" if split else ""))
    cat = cat.isel(sample=np.flatnonzero(ok))
    isotopes = [str(i) for i in cat["isotope"].values]
    models, manifest = load_nnn_set(resolve_model(model_dir, default_nnn_dir()))
    sets = [("nnn", models)]
    if compare is not None:
        other, other_manifest = load_nnn_set(resolve_model(compare, default_nnn_dir()))
        if other_manifest["isotopes"] != isotopes:
            raise ValueError(f"compare = {compare} holds NNNs of other isotopes than the test catalog {test_catalog}")
        sets.append(("compare", other))
    if manifest["isotopes"] != isotopes:
        raise ValueError(f"{model_dir} was trained on network {manifest['network']!r} with other isotopes "
                         f"than the test catalog {test_catalog}")
    X0 = cat["initial_mass_fraction"].values
    T, rho = cat["temperature"].values, cat["density"].values
    dts = cat["dt"].values
    small_failed = 0
    if small_network is None:  # e.g. trajectory states, which hold isotopes no small net has
        union = list(isotopes)
    else:
        small = load_network(small_network)
        union = isotopes + [i for i in small.isotopes if i not in isotopes]
        foreign = [i for i, name in enumerate(isotopes) if name not in small.isotopes and (X0[:, i] > 0).any()]
        if foreign:
            raise ValueError(f"the test catalog starts from isotopes {[isotopes[i] for i in foreign]} that "
                             f"{small_network} lacks; build it with composition isotopes: small_net, or pass "
                             f"small_network=None (--small-net none)")
        X0_small = np.zeros((len(X0), len(small.isotopes)))
        for j, name in enumerate(small.isotopes):
            if name in isotopes:
                X0_small[:, j] = X0[:, isotopes.index(name)]
        small_run = burn_times(small, rho, T, X0_small, dts, progress=progress)
        small_failed = int((~small_run.success).sum())
        if small_failed > max(1, len(X0) // 100):
            raise RuntimeError(f"{small_network} failed on {small_failed} of {len(X0)} test states")
        if small_failed:  # every model is scored on the same states: drop the few the small net could not burn
            keep = np.flatnonzero(small_run.success)
            cat, X0, X0_small, T, rho = cat.isel(sample=keep), X0[keep], X0_small[keep], T[keep], rho[keep]
            small_run = type(small_run)(*(getattr(small_run, f)[keep] if np.ndim(getattr(small_run, f)) else
                                          getattr(small_run, f) for f in small_run.__dataclass_fields__))
    z_over_a = np.array([Nucleus(i).Z / Nucleus(i).A for i in union])
    reference = load_network(manifest["network"], screening=bool(
        next(iter(manifest["models"].values())).get("screening", True)))
    rate0, rate_ok = kernel_rhs_cells(load_burner_kernel(reference), X0 / reference.A, rho, T)
    nu_persistence = rate0[:, -1]
    if not rate_ok.all():
        raise RuntimeError(f"{int((~rate_ok).sum())} test states lie outside {reference.name}'s weak-rate tables")

    def to_union(X, names):
        out = np.zeros((len(X), len(union)))
        for j, name in enumerate(names):
            out[:, union.index(name)] = X[:, j]
        return out

    names = [name for name, _ in sets] + ([small_network] if small_network else []) + [PERSISTENCE]
    X0_union = to_union(X0, isotopes)
    ye0, used = X0_union @ z_over_a, []
    rows, dX_rows, beats, worse, change, counts = [], [], [], [], [], []
    for dt in sorted(models):
        k = np.flatnonzero(np.isclose(dts, dt, rtol=1e-9))
        if k.size == 0:
            continue
        k = int(k[0])
        used.append(dt)
        X_true = to_union(cat["mass_fraction"].values[:, k], isotopes)
        e_true, nu_true = cat["e_nuc"].values[:, k], cat["eps_nu"].values[:, k]
        results = []
        for _, held in sets:
            if dt in held:
                X_m, e_m, nu_m = held[dt].predict(T, rho, X0)
                results.append(_errors(to_union(X_m, isotopes), e_m, nu_m, X_true, e_true, nu_true, z_over_a))
            else:
                results.append(None)
        if small_network is not None:
            results.append(_errors(to_union(small_run.mass_fraction[:, k], small.isotopes), small_run.e_nuc[:, k],
                                   small_run.eps_nu[:, k], X_true, e_true, nu_true, z_over_a))
        results.append(_errors(X0_union, np.zeros(len(X0)), nu_persistence, X_true, e_true, nu_true, z_over_a))
        base = results[-1]["state"]
        true_change = np.abs(X_true @ z_over_a - ye0)
        moving = true_change > YE_CHANGE_MIN
        nan_row = np.full(len(METRICS), np.nan)
        rows.append([[r[m] for m in METRICS] if r else nan_row for r in results])
        dX_rows.append([r["delta_X"] if r else np.full(len(union), np.nan) for r in results])
        beats.append([(r["state"] < base).mean(axis=1) if r else np.full(3, np.nan) for r in results])
        worse.append([(r["state"] > base + np.median(r["state"], axis=1, keepdims=True)).mean(axis=1) if r
                      else np.full(3, np.nan) for r in results])
        change.append([np.percentile(r["state"][1, moving] / true_change[moving], [50, 99])
                       if r and moving.any() else np.full(2, np.nan) for r in results])
        counts.append(int(moving.sum()))
    if not used:
        raise ValueError(f"no dt of {model_dir} ({sorted(models)}) is in the test catalog ({dts.tolist()})")
    err = np.array(rows)
    improvement = err[:, names.index(small_network)] / err[:, 0] if small_network else np.full(err[:, 0].shape, np.nan)
    ds = xr.Dataset(
        {"error": (("dt", "model", "metric"), err,
                   {"long_name": "mean absolute error normalized by the mean target (seed 000 Eqs. 6-8, Fig. 4)"}),
         "improvement": (("dt", "metric"), improvement,
                          {"long_name": "small-net error / NNN error (seed 000 Fig. 5)"}),
         "delta_X": (("dt", "model", "isotope"), np.array(dX_rows),
                     {"long_name": "mean absolute error of X_i (seed 000 Eq. 4)"}),
         "beats_persistence": (("dt", "model", "quantity"), np.array(beats),
                               {"long_name": "fraction of test states where the error is below persistence's"}),
         "worse_than_persistence": (("dt", "model", "quantity"), np.array(worse),
                                    {"long_name": "fraction of test states where the error exceeds persistence's "
                                                  "by more than the model's own median error"}),
         "ye_change_error": (("dt", "model", "stat"), np.array(change),
                             {"long_name": "|Ye_model - Ye_ref| / |Ye_ref - Ye0| over states with "
                                           f"|Ye_ref - Ye0| > {YE_CHANGE_MIN:g}"}),
         "ye_change_states": ("dt", np.array(counts), {"long_name": f"test states with |Ye_ref - Ye0| > {YE_CHANGE_MIN:g}"})},
        coords={"dt": ("dt", np.array(used), {"units": "s"}), "model": names,
                "metric": list(METRICS), "isotope": union, "quantity": list(QUANTITIES), "stat": ["median", "p99"]},
        attrs={"test_catalog": str(test_catalog), "model": str(model_dir), "test_states": int(len(X0)),
               "network": manifest["network"], "compare": "" if compare is None else str(compare),
               "small_network": small_network or "", "small_network_failed_states_dropped": small_failed,
               "split": split or "all"})
    return ds


def goals_met(ds, model="nnn"):
    """{goal: bool, or None where it cannot be judged (no small net)} of :data:`GOALS` for one model of an :func:`evaluate_nuclear` result, over all its dt."""
    e = ds["error"].sel(model=model)
    small = _small_name(ds)
    ratio = ds["error"].sel(model=small) / e if small else xr.full_like(e, np.nan)
    change = ds["ye_change_error"].sel(model=model)
    return {"ye_max": bool((e.sel(metric="ye_eq6") <= GOALS["ye_max"]).all()),
            "ye_improvement": bool((ratio.sel(metric="ye_eq6") >= GOALS["ye_improvement"]).all()) if small else None,
            "e_nuc_improvement": bool((ratio.sel(metric="e_nuc") >= GOALS["e_nuc_improvement"]).all()) if small else None,
            "beats_persistence": bool((ds["beats_persistence"].sel(model=model) >= GOALS["beats_persistence"]).all()),
            "never_much_worse": bool((ds["worse_than_persistence"].sel(model=model) == 0).all()),
            "ye_change_median": bool((change.sel(stat="median") <= GOALS["ye_change_median"]).all()),
            "ye_change_p99": bool((change.sel(stat="p99") <= GOALS["ye_change_p99"]).all())}


def _small_name(ds):
    """The small net's model name, or None when the evaluation ran without one."""
    name = ds.attrs.get("small_network")
    return name if name in ds["model"].values else None


def format_nuclear_table(ds):
    """Markdown table: normalized errors of the NNN and the small net, and the improvement, per dt."""
    small = _small_name(ds)
    if small is None:
        return "(evaluated without a small net)"
    i_small = [str(m) for m in ds["model"].values].index(small)
    head = ("| dt [s] | Ye (Eq. 6) NNN | Ye (Eq. 6) " + small + " | x | e_nuc NNN | e_nuc " + small
            + " | x | eps_nu NNN | eps_nu " + small + " | x | Ye direct NNN | Ye direct " + small + " |")
    lines = [head, "|---" * 12 + "|"]
    for i, dt in enumerate(ds["dt"].values):
        e = ds["error"].values[i]
        imp = ds["improvement"].values[i]
        m = {k: j for j, k in enumerate(ds["metric"].values)}
        cells = [f"{dt:g}"]
        for key in ("ye_eq6", "e_nuc", "eps_nu"):
            cells += [f"{100 * e[0, m[key]]:.3g}%", f"{100 * e[i_small, m[key]]:.3g}%", f"{imp[m[key]]:.2g}"]
        cells += [f"{100 * e[0, m['ye_direct']]:.3g}%", f"{100 * e[i_small, m['ye_direct']]:.3g}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_persistence_table(ds):
    """Markdown table per dt and model: Eqs. 6-8 errors, the fraction of states better than persistence
    (composition / Ye / e_nuc), the fraction worse by more than the model's median error, and the error of
    the change in Ye (median / 99th percentile)."""
    lines = ["| dt [s] | model | Ye (Eq. 6) | e_nuc | eps_nu | beats persistence: X / Ye / e_nuc "
             "| much worse: X / Ye / e_nuc | change in Ye: median / p99 |", "|---" * 8 + "|"]
    pct = lambda v: "n/a" if not np.isfinite(v) else f"{100 * v:.3g}%"  # noqa: E731
    for dt in ds["dt"].values:
        for model in ds["model"].values:
            e = ds["error"].sel(dt=dt, model=model)
            if not np.isfinite(e.values).any():
                continue
            b = ds["beats_persistence"].sel(dt=dt, model=model).values
            w = ds["worse_than_persistence"].sel(dt=dt, model=model).values
            c = ds["ye_change_error"].sel(dt=dt, model=model).values
            lines.append(f"| {dt:g} | {model} | {pct(float(e.sel(metric='ye_eq6')))} | {pct(float(e.sel(metric='e_nuc')))} | "
                         f"{pct(float(e.sel(metric='eps_nu')))} | " + " / ".join(pct(v) for v in b) + " | "
                         + " / ".join(pct(v) for v in w) + " | " + " / ".join(pct(v) for v in c) + " |")
    return "\n".join(lines)


def plot_nuclear_evaluation(ds, path=None):
    """Seed 000 Figs. 4 and 5: normalized errors per dt (NNN markers, small net line) and improvement."""
    plt = pyplot()
    metrics = [("ye_eq6", "Ye (Eq. 6)"), ("e_nuc", "e_nuc"), ("eps_nu", "eps_nu")]
    fig, axes = plt.subplots(len(metrics), 2, figsize=(10, 8), sharex=True, constrained_layout=True)
    dt = ds["dt"].values
    for r, (key, label) in enumerate(metrics):
        e = ds["error"].sel(metric=key)
        ax = axes[r, 0]
        ax.loglog(dt, e.sel(model="nnn"), "gx", ms=9, label="NNN")
        if "compare" in ds["model"].values:
            ax.loglog(dt, e.sel(model="compare"), "m+", ms=9, label=f"compare ({ds.attrs.get('compare')})")
        if _small_name(ds):
            ax.loglog(dt, e.sel(model=_small_name(ds)), "b-o", ms=3, label=_small_name(ds))
        ax.loglog(dt, e.sel(model=PERSISTENCE), "k--", lw=1, label="persistence (X = X0)")
        ax.set_ylabel(f"normalized error, {label}")
        ax.legend(fontsize="small")
        ax = axes[r, 1]
        improvement = ds["improvement"].sel(metric=key).values
        if (np.isfinite(improvement) & (improvement > 0)).any():
            ax.loglog(dt, improvement, "k-o", ms=3)
        else:  # e.g. both errors zero (a model tested against itself): no log axis to draw on
            ax.semilogx(dt, np.nan_to_num(improvement, nan=0.0, posinf=0.0), "k-o", ms=3)
            ax.text(0.5, 0.5, "no finite positive improvement", transform=ax.transAxes, ha="center")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_ylabel(f"improvement ({label})")
    for ax in axes[-1]:
        ax.set_xlabel("dt [s]")
    fig.suptitle(f"NNN, small net and persistence against {ds.attrs.get('network', 'mesa80')} ({ds.attrs.get('test_states')} test states)")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
