"""Plots of collapse trajectories (matplotlib, non-interactive backend)."""

from __future__ import annotations

import numpy as np

from ..core.plotting import pyplot

SPECIES_COLORS = {"H": "tab:blue", "H2": "tab:orange", "e-": "tab:green", "H+": "tab:red",
                  "H-": "tab:purple", "H2+": "tab:brown"}
REGION_EDGES = (1e4, 1e8, 1e12, 1e15)


def plot_collapse(ds, path=None, *, label="reference", cooling=True):
    """Temperature, abundances (and cooling rates) against n_H, log axes, like OS25 Fig. 4.

    Parameters
    ----------
    ds : xarray.Dataset
        A trajectory from :func:`thermoemu.collapse`.
    path : str or path-like, optional
        Write the figure there (PNG, PDF, ...).
    cooling : bool
        Add a third panel with cooling and heating rates per unit volume.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = 3 if cooling and "cooling" in ds else 2
    fig, axes = plt.subplots(panels, 1, figsize=(7, 3.2 * panels), sharex=True, constrained_layout=True)
    n = ds["n_H"].values
    ax = axes[0]
    ax.loglog(n, ds["temperature"].values, color="k", label=label)
    ax.set_ylabel("temperature [K]")
    ax.legend(loc="upper left")
    ax = axes[1]
    for s in ds["species"].values:
        ax.loglog(n, ds["abundance"].sel(species=s).values, color=SPECIES_COLORS.get(str(s)), label=str(s))
    ax.set_ylabel("abundance n(i)/n_H")
    ax.set_ylim(1e-22, 2)
    ax.legend(ncol=3, fontsize="small", loc="lower left")
    if panels == 3:
        ax = axes[2]
        for p in ds["process"].values:
            ax.loglog(n, ds["cooling"].sel(process=p).values / n, label=str(p).replace("_", " "))
        ax.loglog(n, ds["compressional_heating"].values / n, "k--", label="compressional heating")
        heat = ds["chemical_heating"].values / n
        ax.loglog(n, np.where(heat > 0, heat, np.nan), "k:", label="net chemical heating")
        ax.set_ylabel("rate per H [erg s^-1]")
        top = np.nanmax(ds["compressional_heating"].values / n)
        ax.set_ylim(top * 1e-12, top * 30)
        ax.legend(ncol=2, fontsize="x-small", loc="upper left")
    for ax in axes:
        for edge in REGION_EDGES:
            ax.axvline(edge, color="tab:blue", ls=":", lw=0.8)
        if n.max() > 1e18:
            ax.axvline(1e18, color="tab:red", ls="--", lw=0.8)  # Saha equilibrium above
    axes[-1].set_xlabel("n_H [cm^-3]")
    fig.suptitle(f"one-zone collapse, dt = {ds.attrs.get('step_fraction_of_t_ff', '?')} t_ff")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


_UPDATE_STYLES = {"reference": dict(color="k", lw=1.6), "timescale": dict(color="tab:orange", ls="--"),
                  "plain": dict(color="tab:blue", ls=":"), "shaped": dict(color="tab:green", ls="-."),
                  "tangent": dict(color="tab:red", ls="-")}


def plot_collapse_comparison(tracks, path=None):
    """OS25 Fig. 7: temperature against n_H, reference (solid), timescale-based (dashed) and plain
    (dotted) emulator, one panel per dt / t_ff.

    Parameters
    ----------
    tracks : dict
        ``{fraction: {"reference": ds, "timescale": ds, "plain": ds}}`` from
        :func:`thermoemu.primordial.evaluate.collapse_comparison`.
    """
    plt = pyplot()
    fractions = sorted(tracks, reverse=True)
    fig, axes = plt.subplots(len(fractions), 1, figsize=(7, 2.8 * len(fractions)), sharex=True,
                             constrained_layout=True, squeeze=False)
    styles = _UPDATE_STYLES
    for ax, f in zip(axes[:, 0], fractions):
        for method, ds in tracks[f].items():
            ax.loglog(ds["n_H"].values, ds["temperature"].values, label=method if method == "reference"
                      else f"emulator, {method} update", **styles[method])
        for edge in REGION_EDGES:
            ax.axvline(edge, color="tab:blue", ls=":", lw=0.6, alpha=0.6)
        ax.set_ylabel("temperature [K]")
        ax.set_title(f"dt = {f:g} t_ff", fontsize=10)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("n_H [cm^-3]")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_fixed_density(ds, path=None):
    """OS25 Fig. 6d: temperature against iteration at fixed density, reference / timescale / plain."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    it = ds["iteration"].values
    styles = _UPDATE_STYLES
    for m in ds["method"].values:
        ax.plot(it, ds["temperature"].sel({"method": m}).values, label=str(m), **styles[str(m)])
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("temperature [K]")
    ax.set_title(f"n_H = {ds.attrs['n_H']:g} cm^-3, {ds.attrs['substeps']} substeps of "
                 f"{ds.attrs['dt0_s'] / ds.attrs['substeps']:.3g} s", fontsize=10)
    ax.legend()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_accuracy_table(table, path=None):
    """OS25 Table 2 as bars: fraction below 5 % per variable and region, ours against OS25."""
    plt = pyplot()
    variables = list(table["variable"].values)
    regions = [int(r) for r in table["region"].values]
    fig, axes = plt.subplots(1, len(regions), figsize=(3.0 * len(regions), 3.6), sharey=True,
                             constrained_layout=True)
    x = np.arange(len(variables))
    for ax, r in zip(np.atleast_1d(axes), regions):
        ours = table["fraction_below"].sel(region=r, threshold=0.05).values
        seed = table["seed"].sel(region=r, threshold=0.05).values
        ax.bar(x - 0.2, ours, 0.4, label="thermoemu")
        ax.bar(x + 0.2, seed, 0.4, label="OS25", color="0.6")
        ax.set_xticks(x, variables, rotation=60, fontsize=8)
        ax.set_title(f"region {r}", fontsize=10)
        ax.set_ylim(0, 1.02)
    np.atleast_1d(axes)[0].set_ylabel("fraction with relative error < 5 %")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_saha_collapse(tracks, path=None, n_min=1e16):
    """Collapse above 1e18 cm^-3: the Saha table against the direct Saha adiabat (ground truth).

    Parameters
    ----------
    tracks : dict
        ``{(fraction, method): ds}`` with method ``"table"`` or ``"saha"`` (trajectories of
        :func:`thermoemu.collapse` with ``high_density=method``).
    path : path-like, optional
    n_min : float
        Left edge of the plot [cm^-3].
    """
    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(7, 9), sharex=True, constrained_layout=True)
    styles = {"table": "-", "saha": "--"}
    fractions = sorted({f for f, _ in tracks}, reverse=True)
    colors = dict(zip(fractions, ["tab:blue", "tab:orange", "tab:green", "tab:red"]))
    for (f, method), ds in sorted(tracks.items()):
        n = ds["n_H"].values
        sel = n >= n_min
        label = f"dt = {f:g} t_ff, {'table' if method == 'table' else 'direct Saha (ground truth)'}"
        axes[0].loglog(n[sel], ds["temperature"].values[sel], styles[method], color=colors[f], label=label)
        for s_name, marker in (("H2", None), ("H+", None)):
            axes[1].loglog(n[sel], ds["abundance"].sel(species=s_name).values[sel], styles[method],
                           color=colors[f], label=f"y({s_name}), {label}" if f == fractions[0] else None)
        ref = tracks.get((f, "saha"))
        if method == "table" and ref is not None:
            hi = n >= 1e18
            axes[2].semilogx(n[hi], 100 * (ds["temperature"].values[hi] / ref["temperature"].values[hi] - 1),
                             color=colors[f], label=f"dt = {f:g} t_ff")
    axes[0].set_ylabel("temperature [K]")
    axes[0].legend(fontsize="small")
    axes[1].set_ylabel("abundance")
    axes[1].set_ylim(1e-14, 1)
    axes[1].legend(fontsize="x-small")
    axes[2].set_ylabel("T table / T direct - 1 [%]")
    axes[2].axhline(0, color="k", lw=0.5)
    axes[2].legend(fontsize="small")
    for ax in axes:
        ax.axvline(1e18, color="tab:red", ls=":", lw=0.8)
    axes[-1].set_xlabel("n_H [cm^-3]")
    fig.suptitle("collapse in Saha equilibrium above 1e18 cm^-3 (OS25 Appendix B)")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
