"""Plots of collapse trajectories (matplotlib, non-interactive backend)."""

from __future__ import annotations

import numpy as np

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
    axes[-1].set_xlabel("n_H [cm^-3]")
    fig.suptitle(f"one-zone collapse, dt = {ds.attrs.get('step_fraction_of_t_ff', '?')} t_ff")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
