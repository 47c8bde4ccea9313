"""State grids for nuclear networks: ``density`` [g cm^-3], ``temperature`` [K], ``mass_fraction``
(dim ``isotope``), and the electron fraction ``ye`` they imply.

Isotope names are the lower-case names of pynucastro's built networks (``"si28"``, ``"fe54"``,
``"p"``, ``"n"``, ``"h2"``); the usual aliases ``"d"``, ``"t"`` and ``"h1"`` are accepted and renamed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.grid import StateError, as_dataarray, check_values, first_index, flag_attrs
from ..units import to_units, ureg
from .burner import BURN_STATUS, burn
from .network import NuclearNetwork, load_network, nucleus_charge_mass

__all__ = ["nuclear_state", "validate_nuclear_state", "burn_state", "NUCLEAR_RANGES", "SUM_TOLERANCE"]

#: Allowed ranges (inclusive); the networks' weak-rate tables span log T 7..11, log rho Ye 1..11.
NUCLEAR_RANGES = {"density": (1.0, 1e11), "temperature": (1e7, 1e11)}
#: Other names of light nuclei, and the name the built networks use (MESA's net files say "d").
ISOTOPE_ALIASES = {"d": "h2", "t": "h3", "h1": "p", "n1": "n"}
#: |sum_i X_i - 1| allowed before a state is refused (or normalized with ``normalize=True``).
SUM_TOLERANCE = 1e-6


def canonical_isotope(name):
    """The network name of an isotope: lower case, aliases of :data:`ISOTOPE_ALIASES` replaced."""
    name = str(name).strip().lower()
    return ISOTOPE_ALIASES.get(name, name)


def _canonical_isotopes(X):
    """``X`` with canonical isotope names; refuses an isotope named twice (aliases included)."""
    names = [canonical_isotope(i) for i in X["isotope"].values]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise StateError(f"mass_fraction names isotope(s) {repeated} more than once (aliases count: "
                         f"{', '.join(f'{a}={b}' for a, b in ISOTOPE_ALIASES.items())})")
    return X.assign_coords(isotope=names)


def nuclear_state(density, temperature, mass_fraction, dims=None, *, network=None, normalize=False):
    """Build a nuclear state grid.

    Parameters
    ----------
    density : scalar, array, pint.Quantity or xarray.DataArray
        Mass density [g cm^-3 unless units are given].
    temperature : same
        [K]
    mass_fraction : dict, or xarray.DataArray with an ``isotope`` dim
        ``{"si28": 0.5, ...}`` (values scalars or arrays over the cell dims). With ``network``
        (``"mesa80"``, ``"small22"`` or a loaded network) the isotopes are completed with zeros
        to the network's list and must belong to it.
    dims : str or tuple of str, optional
        Names of the cell dims of array inputs (default ``"cell"`` for 1-d).
    normalize : bool
        Divide by the sum instead of refusing a sum off 1 by more than 1e-6.

    Returns
    -------
    xarray.Dataset
        ``density``, ``temperature``, ``mass_fraction`` (cell dims + ``isotope``) and ``ye``.
    """
    if isinstance(dims, str):
        dims = (dims,)
    rho = as_dataarray(density, "density", "g cm^-3", dims)
    T = as_dataarray(temperature, "temperature", "K", dims)
    if isinstance(mass_fraction, xr.DataArray):
        if "isotope" not in mass_fraction.dims:
            raise StateError(f"mass_fraction needs an 'isotope' dim; it has dims {mass_fraction.dims}")
        X = mass_fraction.astype(float)
    elif isinstance(mass_fraction, dict):
        if not mass_fraction:
            raise StateError("mass_fraction is empty")
        parts = [as_dataarray(v, f"mass_fraction({k})", "1", dims) for k, v in mass_fraction.items()]
        X = xr.concat(parts, dim="isotope").assign_coords(isotope=[str(k) for k in mass_fraction])
    else:
        raise StateError(f"mass_fraction must be a dict or a DataArray with an 'isotope' dim, "
                         f"got {type(mass_fraction).__name__}")
    X = _canonical_isotopes(X)
    if network is not None:
        isotopes = _network_isotopes(network)
        unknown = sorted(set(X["isotope"].values.tolist()) - set(isotopes))
        if unknown:
            raise StateError(f"mass_fraction has isotopes {unknown} that network {network!r} does not hold")
        X = X.reindex(isotope=list(isotopes), fill_value=0.0)
    ds = xr.Dataset({"density": rho, "temperature": T, "mass_fraction": X.assign_attrs(units="1")})
    return validate_nuclear_state(ds, normalize=normalize)


def _network_isotopes(network):
    if isinstance(network, str):
        network = load_network(network)
    return tuple(network.isotopes)


def validate_nuclear_state(ds, *, normalize=False):
    """Check ranges, non-negativity, known isotopes and sum X = 1; add ``ye``. Returns a new Dataset."""
    for name in ("density", "temperature", "mass_fraction"):
        if name not in ds:
            raise StateError(f"nuclear state is missing {name!r}")
    out = ds.copy()
    for name, units in (("density", "g cm^-3"), ("temperature", "K"), ("mass_fraction", "1")):
        # pint data or a units attribute are converted (a bare array is taken in these units)
        if isinstance(out[name].data, ureg.Quantity) or "units" in out[name].attrs:
            out[name] = to_units(out[name], units, name).assign_attrs(units=units)
    for name, (lo, hi) in NUCLEAR_RANGES.items():
        check_values(out[name], name, lo, hi)
    X = _canonical_isotopes(out["mass_fraction"])
    out = out.assign_coords(isotope=X["isotope"].values)
    check_values(X, "mass_fraction", 0.0, 1.0, allow_zero=True)
    Z, A = nucleus_charge_mass(X["isotope"].values.tolist())
    total = X.sum("isotope")
    off = np.abs(np.asarray(total.values) - 1.0)
    if off.size and off.max() > SUM_TOLERANCE:
        if not normalize:
            where = first_index(total, off > SUM_TOLERANCE)
            raise StateError(f"mass fractions sum to {float(np.asarray(total.values)[off > SUM_TOLERANCE].flat[0]):.8g} "
                             f"at {where}; they must sum to 1 within {SUM_TOLERANCE:g} (pass normalize=True to "
                             f"divide by the sum)")
        X = X / total
    z = xr.DataArray(Z, dims="isotope")
    a = xr.DataArray(A, dims="isotope")
    out["mass_fraction"] = X.assign_attrs(units="1", long_name="mass fraction")
    out["ye"] = (X * z / a).sum("isotope").assign_attrs(units="1", long_name="electron fraction Ye")
    out["density"].attrs.update(units="g cm^-3")
    out["temperature"].attrs.update(units="K")
    return out


def burn_state(ds, dt, *, network="mesa80", screening=True, progress=False):
    """Burn every cell of a nuclear state grid at constant T and rho over ``dt`` [s].

    Returns the end state with ``mass_fraction``, ``ye``, ``e_nuc`` [erg g^-1], ``eps_nu``
    [erg g^-1 s^-1], ``success`` and ``status`` per cell (numpy-backed).
    """

    net = network if isinstance(network, NuclearNetwork) else load_network(network, screening=screening)
    ds = validate_nuclear_state(ds)
    unknown = sorted(set(ds["isotope"].values.tolist()) - set(net.isotopes))
    if unknown:
        raise StateError(f"mass_fraction has isotopes {unknown} that network {net.name} does not hold")
    dt_s = float(to_units(dt, "s", "dt"))
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise StateError(f"dt = {dt_s:g} s is not allowed; dt must be finite and > 0 s")
    X = ds["mass_fraction"].reindex(isotope=list(net.isotopes), fill_value=0.0)
    X = xr.broadcast(X, ds["density"], ds["temperature"])[0]  # a composition shared by all cells
    cell_dims = [d for d in X.dims if d != "isotope"]
    Xf = X.transpose(*cell_dims, "isotope").values.reshape(-1, len(net.isotopes))
    shape = tuple(ds.sizes[d] for d in cell_dims)
    rho = np.broadcast_to(ds["density"].values, shape).ravel()
    T = np.broadcast_to(ds["temperature"].values, shape).ravel()
    res = burn(net, rho, T, Xf, dt_s, progress=progress)
    out = ds.copy()
    out = out.drop_vars("mass_fraction").assign_coords(isotope=list(net.isotopes))
    out["mass_fraction"] = xr.DataArray(res.mass_fraction.reshape(shape + (len(net.isotopes),)),
                                        dims=cell_dims + ["isotope"], attrs={"units": "1", "long_name": "mass fraction"})
    for name, values, attrs in (
            ("ye", res.ye, {"units": "1", "long_name": "electron fraction at the end of the step"}),
            ("e_nuc", res.e_nuc, {"units": "erg g^-1", "long_name": "nuclear energy released over the step "
                                  "(mass change minus weak neutrino losses)"}),
            ("eps_nu", res.eps_nu, {"units": "erg g^-1 s^-1", "long_name": "weak-neutrino loss rate at the end"}),
            ("success", res.success, {"long_name": "burn succeeded"}),
            ("status", res.status, flag_attrs(BURN_STATUS, "burn status"))):
        out[name] = xr.DataArray(values.reshape(shape), dims=cell_dims, attrs=attrs)
    out.attrs.update(network=net.name, screening="chugunov_2007" if net.screening else "none", dt_s=dt_s,
                     wall_time_s=res.wall_s)
    return out
