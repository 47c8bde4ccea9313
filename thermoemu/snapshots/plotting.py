"""A slice through a snapshot before and after a step: temperature and H2 abundance."""

from __future__ import annotations

import numpy as np

from ..core.plotting import pyplot

__all__ = ["plot_slice"]


def plot_slice(before, after, path=None, *, axis="z", title=None):
    """Mid-plane slices of T [K] and y(H2) of two primordial state grids on (x, y, z) cubes, with the change.

    Parameters
    ----------
    before, after : xarray.Dataset
        State grids (``temperature``, ``abundance``) over the same cube.
    path : path, optional
        Write the figure (PNG/PDF).
    axis : {"x", "y", "z"}
        The slice is normal to this axis, through the middle.
    """
    plt = pyplot()
    mid = before.sizes[axis] // 2
    cut = {axis: mid}
    panels = [("temperature", lambda d: d["temperature"], "log10 T [K]"),
              ("H2", lambda d: d["abundance"].sel(species="H2"), "log10 y(H2)")]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.4), constrained_layout=True)
    for row, (name, get, label) in enumerate(panels):
        a = np.log10(get(before).isel(cut).values)
        b = np.log10(get(after).isel(cut).values)
        lo, hi = np.nanmin([a, b]), np.nanmax([a, b])
        for col, (img, head) in enumerate(((a, "before"), (b, "after"))):
            im = axes[row, col].imshow(img.T, origin="lower", vmin=lo, vmax=hi, cmap="inferno")
            axes[row, col].set_title(f"{label}, {head}")
            fig.colorbar(im, ax=axes[row, col], shrink=0.85)
        change = b - a
        lim = np.nanmax(np.abs(change)) or 1.0
        im = axes[row, 2].imshow(change.T, origin="lower", vmin=-lim, vmax=lim, cmap="RdBu_r")
        axes[row, 2].set_title(f"change in {label} [dex]")
        fig.colorbar(im, ax=axes[row, 2], shrink=0.85)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"slice {axis} = {mid} of {before.sizes[axis]}")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
