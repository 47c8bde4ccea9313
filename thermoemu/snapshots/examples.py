"""Snapshot-like test data: a collapsing primordial core on a cube, from the reference collapse track.

Each cell takes the state of the reference one-zone collapse (OS25 section 2.1) at its density, on a
density profile falling from ``n_center`` at the cube's centre to ``n_edge`` at its corners, perturbed
by log-normal noise (n_H by +-``n_noise_dex``, T by +-``t_noise_dex``, uniform in log): the states a
simulation of a collapsing minihalo hands the chemistry, not random draws from Table 1.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from ..primordial.onezone import collapse
from ..primordial.physics.network import project_abundances
from ..primordial.state import primordial_state
from .grackle import GrackleUnits, fields_from_state

__all__ = ["collapse_track", "collapse_cube", "grackle_cube"]


@functools.lru_cache(maxsize=4)
def collapse_track(n_end=1e13, step_fraction=0.1):
    """log10 n_H, log10 T and abundances (6, steps) along the reference collapse (cached per process)."""
    track = collapse(step_fraction=step_fraction, n_end=n_end)
    return (np.log10(track["n_H"].values), np.log10(track["temperature"].values),
            track["abundance"].transpose("species", "step").values)


def collapse_cube(n=16, *, n_center=1e12, n_edge=1e-1, n_noise_dex=0.05, t_noise_dex=0.02, seed=0):
    """A primordial state grid on an ``n``^3 cube (dims x, y, z) of snapshot-like states (module docstring)."""
    if n < 2:
        raise ValueError(f"n = {n!r}; a cube needs n >= 2 cells per side")
    log_n, log_T, y = collapse_track()
    rng = np.random.default_rng(seed)
    c = (np.arange(n) + 0.5) / n - 0.5
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2) / np.sqrt(0.75)
    log_nH = np.log10(n_center) + (np.log10(n_edge) - np.log10(n_center)) * r ** 0.5
    log_nH = log_nH + rng.uniform(-n_noise_dex, n_noise_dex, log_nH.shape)
    flat = log_nH.ravel()
    T = 10.0 ** (np.interp(flat, log_n, log_T) + rng.uniform(-t_noise_dex, t_noise_dex, flat.shape))
    abundance = np.stack([10.0 ** np.interp(flat, log_n, np.log10(np.maximum(y[i], 1e-40))) for i in range(6)])
    abundance = np.maximum(project_abundances(abundance), 0.0)
    dims = ("x", "y", "z")
    coords = {d: c for d in dims}
    ds = primordial_state(xr.DataArray(10.0 ** log_nH, dims=dims, coords=coords),
                          xr.DataArray(T.reshape(log_nH.shape), dims=dims, coords=coords),
                          xr.DataArray(np.moveaxis(abundance.reshape((6,) + log_nH.shape), 0, -1),
                                       dims=dims + ("species",), coords=coords), project=True)
    return ds


def grackle_cube(n=16, *, units=None, seed=0, **kwargs):
    """:func:`collapse_cube` as Grackle fields in code units (default: a proton mass per cm^3 and 1 km/s)."""
    units = units or GrackleUnits(density_units=1.6726e-24, length_units=3.0857e18, time_units=3.0857e13)
    state = collapse_cube(n, seed=seed, **kwargs)
    fields = fields_from_state(state, units)
    return fields.assign_coords({d: state[d] for d in ("x", "y", "z")})
