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

__all__ = ["evaluate_nuclear", "format_nuclear_table", "plot_nuclear_evaluation", "GOALS"]

#: Issue 6 goals: NNN Ye error <= 0.5% and >= 3x better than the small net; e_nuc >= 2x better.
GOALS = {"ye_max": 0.005, "ye_improvement": 3.0, "e_nuc_improvement": 2.0}


def _errors(X_pred, e_pred, nu_pred, X_true, e_true, nu_true, z_over_a):
    dX = np.abs(X_pred - X_true)
    ye_pred, ye_true = X_pred @ z_over_a, X_true @ z_over_a
    return {
        "delta_X": dX.mean(axis=0),
        "ye_eq6": float((dX @ z_over_a).mean() / ye_true.mean()),
        "ye_direct": float(np.abs(ye_pred - ye_true).mean() / ye_true.mean()),
        "e_nuc": float(np.abs(e_pred - e_true).mean() / np.abs(e_true).mean()),
        "eps_nu": float(np.abs(nu_pred - nu_true).mean() / np.abs(nu_true).mean()),
    }


def evaluate_nuclear(model_dir, test_catalog, *, small_network="small22", progress=False):
    """NNN and small-net errors against the catalog's mesa80 targets, per dt (``model_dir``: a folder, or
    ``"default"`` for the shipped mesa80 NNNs).

    Returns
    -------
    xarray.Dataset
        ``error`` (dt, model, metric) with models ``nnn`` and the small net's name and metrics
        ``ye_eq6``, ``ye_direct``, ``e_nuc``, ``eps_nu`` (normalized mean absolute errors);
        ``improvement`` (dt, metric) = small net / NNN; ``delta_X`` (dt, model, isotope). (The dim is
        not called ``method``: ``.sel(method=...)`` would be xarray's keyword.)
    """
    from pynucastro import Nucleus

    with open_catalog(test_catalog) as lazy:  # closed here, not left to the GC
        cat = lazy.load()
    ok = cat["success"].values.astype(bool)
    cat = cat.isel(sample=np.flatnonzero(ok))
    isotopes = [str(i) for i in cat["isotope"].values]
    models, manifest = load_nnn_set(resolve_model(model_dir, default_nnn_dir()))
    if manifest["isotopes"] != isotopes:
        raise ValueError(f"{model_dir} was trained on network {manifest['network']!r} with other isotopes "
                         f"than the test catalog {test_catalog}")
    small = load_network(small_network)
    union = isotopes + [i for i in small.isotopes if i not in isotopes]
    z_over_a = np.array([Nucleus(i).Z / Nucleus(i).A for i in union])
    X0 = cat["initial_mass_fraction"].values
    foreign = [i for i, name in enumerate(isotopes) if name not in small.isotopes and (X0[:, i] > 0).any()]
    if foreign:
        raise ValueError(f"the test catalog starts from isotopes {[isotopes[i] for i in foreign]} that "
                         f"{small_network} lacks; build it with composition isotopes: small_net")
    X0_small = np.zeros((len(X0), len(small.isotopes)))
    for j, name in enumerate(small.isotopes):
        if name in isotopes:
            X0_small[:, j] = X0[:, isotopes.index(name)]
    dts = cat["dt"].values
    small_run = burn_times(small, cat["density"].values, cat["temperature"].values, X0_small, dts, progress=progress)
    if not small_run.success.all():
        raise RuntimeError(f"{small_network} failed on {int((~small_run.success).sum())} test states")

    def to_union(X, names):
        out = np.zeros((len(X), len(union)))
        for j, name in enumerate(names):
            out[:, union.index(name)] = X[:, j]
        return out

    rows, dX_rows, used = [], [], []
    for dt, model in sorted(models.items()):
        k = np.flatnonzero(np.isclose(dts, dt, rtol=1e-9))
        if k.size == 0:
            continue
        k = int(k[0])
        used.append(dt)
        X_true = to_union(cat["mass_fraction"].values[:, k], isotopes)
        e_true, nu_true = cat["e_nuc"].values[:, k], cat["eps_nu"].values[:, k]
        X_nnn, e_nnn, nu_nnn = model.predict(cat["temperature"].values, cat["density"].values, X0)
        nnn = _errors(to_union(X_nnn, isotopes), e_nnn, nu_nnn, X_true, e_true, nu_true, z_over_a)
        sm = _errors(to_union(small_run.mass_fraction[:, k], small.isotopes), small_run.e_nuc[:, k],
                     small_run.eps_nu[:, k], X_true, e_true, nu_true, z_over_a)
        rows.append([[nnn[m] for m in METRICS], [sm[m] for m in METRICS]])
        dX_rows.append([nnn["delta_X"], sm["delta_X"]])
    if not used:
        raise ValueError(f"no dt of {model_dir} ({sorted(models)}) is in the test catalog ({dts.tolist()})")
    err = np.array(rows)
    ds = xr.Dataset(
        {"error": (("dt", "model", "metric"), err,
                   {"long_name": "mean absolute error normalized by the mean target (seed 000 Eqs. 6-8, Fig. 4)"}),
         "improvement": (("dt", "metric"), err[:, 1] / err[:, 0],
                          {"long_name": "small-net error / NNN error (seed 000 Fig. 5)"}),
         "delta_X": (("dt", "model", "isotope"), np.array(dX_rows),
                     {"long_name": "mean absolute error of X_i (seed 000 Eq. 4)"})},
        coords={"dt": ("dt", np.array(used), {"units": "s"}), "model": ["nnn", small_network],
                "metric": list(METRICS), "isotope": union},
        attrs={"test_catalog": str(test_catalog), "model": str(model_dir), "test_states": int(len(X0)),
               "network": manifest["network"]})
    return ds


METRICS = ("ye_eq6", "ye_direct", "e_nuc", "eps_nu")


def format_nuclear_table(ds):
    """Markdown table: normalized errors of the NNN and the small net, and the improvement, per dt."""
    small = str(ds["model"].values[1])
    head = ("| dt [s] | Ye (Eq. 6) NNN | Ye (Eq. 6) " + small + " | x | e_nuc NNN | e_nuc " + small
            + " | x | eps_nu NNN | eps_nu " + small + " | x | Ye direct NNN | Ye direct " + small + " |")
    lines = [head, "|---" * 12 + "|"]
    for i, dt in enumerate(ds["dt"].values):
        e = ds["error"].values[i]
        imp = ds["improvement"].values[i]
        m = {k: j for j, k in enumerate(ds["metric"].values)}
        cells = [f"{dt:g}"]
        for key in ("ye_eq6", "e_nuc", "eps_nu"):
            cells += [f"{100 * e[0, m[key]]:.3g}%", f"{100 * e[1, m[key]]:.3g}%", f"{imp[m[key]]:.2g}"]
        cells += [f"{100 * e[0, m['ye_direct']]:.3g}%", f"{100 * e[1, m['ye_direct']]:.3g}%"]
        lines.append("| " + " | ".join(cells) + " |")
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
        ax.loglog(dt, e.isel(model=1), "b-o", ms=3, label=str(ds["model"].values[1]))
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
    fig.suptitle(f"NNN and small net against {ds.attrs.get('network', 'mesa80')} ({ds.attrs.get('test_states')} test states)")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
