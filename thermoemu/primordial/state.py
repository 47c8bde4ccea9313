"""Build, validate and conserve primordial state grids (``xarray.Dataset``).

A state grid holds, over any cell dims the user has (none, ``cell``, or ``x, y, z``):

========== ================== ======== ===========================================
variable   dims               units    meaning
========== ================== ======== ===========================================
n_H        cell dims          cm^-3    number density of hydrogen nuclei
temperature cell dims         K        gas temperature
abundance  cell dims, species 1        n(i)/n_H for H, H2, e-, H+, H-, H2+
========== ================== ======== ===========================================

Data are plain float64 arrays (numpy or dask) with a CF-style ``units`` attribute, so files
round-trip through netCDF and ``ds.pint.quantify()`` works.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..constants import Y_HE
from ..core.grid import StateError, as_dataarray, check_values
from ..units import CANONICAL_UNITS, UnitsError, to_units, ureg
from .physics.network import CONSERVATION_NAMES, SPECIES, project_abundances

__all__ = ["StateError", "primordial_state", "validate_state", "conservation_error",
           "project_state", "open_state", "write_state", "VALID_RANGES"]

#: Allowed ranges of the state variables (inclusive). The network is built for
#: 1e-3 <= n_H <= 1e18 cm^-3 (the package aims at 1e22 with a Saha table above 1e18); its
#: coefficient tables span 1 K - 1e6 K.
VALID_RANGES = {
    "n_H": (1e-8, 1e22),
    "temperature": (1.0, 1e6),
    "abundance": (0.0, 1.0),
}
#: Default tolerance on conservation residuals (hydrogen nuclei absolute, charge relative).
DEFAULT_TOLERANCE = 1e-6


def _abundance_dataarray(abundance, dims, complete):
    if isinstance(abundance, xr.DataArray):
        if "species" not in abundance.dims:
            raise StateError(f"abundance must have a 'species' dimension; it has dims {abundance.dims}")
        da = to_units(abundance, "1", "abundance")
        names = [str(s) for s in da["species"].values] if "species" in da.coords else None
        if names is None:
            if da.sizes["species"] != len(SPECIES):
                raise StateError(f"abundance has {da.sizes['species']} species and no species "
                                 f"coordinate; expected {len(SPECIES)} in the order {SPECIES}")
            da = da.assign_coords(species=list(SPECIES))
        parts = {str(s): da.sel(species=s, drop=True) for s in da["species"].values}
    elif isinstance(abundance, Mapping):
        parts = {}
        for key, v in abundance.items():
            parts[str(key)] = as_dataarray(v, f"abundance({key})", "1", dims)
    else:
        arr = np.asarray(to_units(abundance, "1", "abundance"), dtype=float)
        if arr.ndim == 0 or arr.shape[-1] != len(SPECIES):
            raise StateError(f"abundance as an array needs a last axis of length {len(SPECIES)} "
                             f"(species {SPECIES}); got shape {arr.shape}")
        cell_dims = None if dims is None else tuple(dims)
        parts = {}
        for i, s in enumerate(SPECIES):
            parts[s] = as_dataarray(arr[..., i], "abundance", "1", cell_dims)
    unknown = sorted(set(parts) - set(SPECIES))
    if unknown:
        raise StateError(f"unknown species {unknown} in abundance; known species are {list(SPECIES)}")
    missing = [s for s in SPECIES if s not in parts]
    if missing:
        derivable = {"H", "e-"}
        if complete and set(missing) <= derivable | {"H-", "H2+"}:
            zero = xr.zeros_like(next(iter(parts.values()))) if parts else xr.DataArray(0.0)
            for s in ("H-", "H2+"):
                parts.setdefault(s, zero)
            y = parts
            if "e-" in missing:
                y["e-"] = y["H+"] + y["H2+"] - y["H-"]
            if "H" in missing:
                y["H"] = 1.0 - 2 * y["H2"] - y["H+"] - y["H-"] - 2 * y["H2+"]
        else:
            hint = (" (pass complete=True to derive H and e- from hydrogen and charge conservation "
                    "and to set absent H-, H2+ to 0)")
            raise StateError(f"abundance is missing species {missing}; need all of {list(SPECIES)}" + hint)
    stacked = xr.concat([parts[s].astype(float) for s in SPECIES], dim="species", coords="minimal",
                        compat="override")
    stacked = stacked.assign_coords(species=list(SPECIES))
    stacked.attrs = {"units": "1", "long_name": "abundance n(i)/n_H"}
    return stacked


def primordial_state(n_H, temperature, abundance, dims=None, *, project=False,
                     tolerance=DEFAULT_TOLERANCE, complete=False):
    """A validated primordial state grid.

    Parameters
    ----------
    n_H : number, array, str, pint.Quantity or xarray.DataArray
        Number density of hydrogen nuclei (default units cm^-3; any number-density units).
    temperature : same kinds
        Gas temperature (default units K; any temperature units, e.g. degC).
    abundance : mapping, array or xarray.DataArray
        ``{species: value}``, an array whose last axis is species in the order
        ``("H", "H2", "e-", "H+", "H-", "H2+")``, or a DataArray with a ``species`` dim.
        Values are n(i)/n_H (dimensionless).
    dims : str or sequence of str, optional
        Names of the cell dims of plain-array inputs (default: ``("cell",)`` for 1-d input); a
        single string names one dim.
    project : bool
        If True, project abundances onto hydrogen and charge conservation (smallest relative
        change) instead of raising when they violate it.
    tolerance : float
        Allowed conservation residual (hydrogen nuclei absolute; charge relative).
    complete : bool
        Derive missing H and e- from conservation; absent H-, H2+ are set to 0.

    Returns
    -------
    xarray.Dataset
        Variables ``n_H``, ``temperature``, ``abundance`` broadcast over the cell dims.

    Raises
    ------
    StateError, UnitsError
        With the variable name, the offending value and the allowed range or units.
    """
    if isinstance(dims, str):
        dims = (dims,)
    n = as_dataarray(n_H, "n_H", "cm^-3", dims)
    T = as_dataarray(temperature, "temperature", "K", dims)
    y = _abundance_dataarray(abundance, dims, complete)
    n, T, y = xr.broadcast(n, T, y, exclude=("species",))
    ds = xr.Dataset({"n_H": n.assign_attrs(units="cm^-3", long_name="number density of hydrogen nuclei"),
                     "temperature": T.assign_attrs(units="K", long_name="gas temperature"),
                     "abundance": y.transpose(*n.dims, "species")})
    return validate_state(ds, tolerance=tolerance, project=project)


def validate_state(ds, *, tolerance=DEFAULT_TOLERANCE, project=False):
    """Check a state grid and return it in canonical form.

    Converts units (from the ``units`` attributes or pint data) to canonical ones, puts species in
    network order, checks values (finite, positive, in :data:`VALID_RANGES`) and conservation.

    Parameters
    ----------
    ds : xarray.Dataset
    tolerance : float
        Allowed conservation residual (hydrogen nuclei absolute, charge relative).
    project : bool
        Project instead of raising on a conservation violation.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    StateError, UnitsError
    """
    if not isinstance(ds, xr.Dataset):
        raise StateError(f"a state grid must be an xarray.Dataset, got {type(ds).__name__}")
    missing = [v for v in ("n_H", "temperature", "abundance") if v not in ds]
    if missing:
        raise StateError(f"state grid is missing variable(s) {missing}; it has {sorted(ds.data_vars)}")
    for name in ("x", "y", "z"):
        if name in ds.data_vars:
            raise StateError(f"a data variable may not be named {name!r}: x, y, z are grid dimensions")
    out = ds.copy()
    for name, units in (("n_H", "cm^-3"), ("temperature", "K"), ("abundance", "1")):
        if "units" not in ds[name].attrs and not isinstance(ds[name].data, ureg.Quantity):
            raise UnitsError(f"{name} has no 'units' attribute; expected units convertible to {units}")
        out[name] = to_units(ds[name], units, name).assign_attrs(units=CANONICAL_UNITS[name])
    y = out["abundance"]
    if "species" not in y.dims:
        raise StateError(f"abundance must have a 'species' dimension; it has dims {y.dims}")
    names = [str(s) for s in y["species"].values] if "species" in y.coords else []
    unknown = sorted(set(names) - set(SPECIES))
    if unknown:
        raise StateError(f"unknown species {unknown} in abundance; known species are {list(SPECIES)}")
    absent = [s for s in SPECIES if s not in names]
    if absent:
        raise StateError(f"abundance is missing species {absent}; need all of {list(SPECIES)}")
    # every variable over the same cell dims (n_H may be uniform, temperature may vary, ...)
    n_H, T, y = xr.broadcast(out["n_H"], out["temperature"], y.sel(species=list(SPECIES)),
                             exclude=("species",))
    cell_dims = list(n_H.dims)
    out["n_H"] = n_H.transpose(*cell_dims).assign_attrs(out["n_H"].attrs)
    out["temperature"] = T.transpose(*cell_dims).assign_attrs(out["temperature"].attrs)
    out["abundance"] = y.transpose(*cell_dims, "species").assign_attrs(
        units="1", long_name="abundance n(i)/n_H")
    check_values(out["n_H"], "n_H", *VALID_RANGES["n_H"])
    check_values(out["temperature"], "temperature", *VALID_RANGES["temperature"])
    for s in SPECIES:
        check_values(out["abundance"].sel(species=s), f"abundance({s})", *VALID_RANGES["abundance"],
                      allow_zero=True)
    err = conservation_error(out)
    for k, law in enumerate(CONSERVATION_NAMES):
        worst = float(np.abs(err.isel(law=k)).max()) if err.size else 0.0
        if worst > tolerance:
            if project:
                out = project_state(out)
                break
            raise StateError(
                f"abundances violate {law} conservation by {worst:.3g} (tolerance {tolerance:g}); "
                f"pass project=True to project them onto the conservation laws")
    out.attrs.setdefault("network", "primordial")
    out.attrs.setdefault("y_He", Y_HE)
    return out


def conservation_error(ds):
    """Conservation residuals of a state grid, dims ``(law, *cell dims)``.

    ``law="hydrogen nuclei"``: ``y(H) + 2y(H2) + y(H+) + y(H-) + 2y(H2+) - 1``;
    ``law="charge"``: ``(y(e-) - y(H+) - y(H2+) + y(H-))`` relative to the charged abundances.
    """
    y = ds["abundance"]
    s = {k: y.sel(species=k, drop=True) for k in SPECIES}
    hydrogen = s["H"] + 2 * s["H2"] + s["H+"] + s["H-"] + 2 * s["H2+"] - 1.0
    charge = s["e-"] - s["H+"] - s["H2+"] + s["H-"]
    charged = abs(s["e-"]) + abs(s["H+"]) + abs(s["H-"]) + abs(s["H2+"])
    charge = xr.where(charged > 0, charge / xr.where(charged > 0, charged, 1.0), charge)
    return xr.concat([hydrogen, charge], dim="law").assign_coords(law=list(CONSERVATION_NAMES))


#: Largest relative change of any abundance that a projection may make.
MAX_PROJECTION_CHANGE = 0.5


def project_state(ds, max_change=MAX_PROJECTION_CHANGE):
    """Project abundances onto hydrogen-nucleus and charge conservation (smallest relative change).

    Parameters
    ----------
    ds : xarray.Dataset
    max_change : float
        Refuse to change any abundance by more than this fraction of itself.

    Raises
    ------
    StateError
        If the projection would make an abundance negative or change it by more than
        ``max_change`` (the input is too far from conserving to be corrected silently).
    """
    y = ds["abundance"]
    dims = y.dims
    arr = np.moveaxis(np.asarray(y.values), dims.index("species"), 0)
    projected = project_abundances(arr)
    if (projected < 0).any():
        k = int(np.argwhere(projected < 0)[0][0])
        raise StateError(f"cannot project abundances onto conservation: abundance({SPECIES[k]}) would "
                         f"become {projected[k][projected[k] < 0].flat[0]:.3g} < 0; the input is too far "
                         f"from conserving hydrogen nuclei and charge")
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(arr > 0, np.abs(projected / arr - 1.0), 0.0)
    if change.max() > max_change:
        k = int(np.argwhere(change == change.max())[0][0])
        raise StateError(f"cannot project abundances onto conservation: abundance({SPECIES[k]}) would "
                         f"change by {100 * change.max():.3g} % (allowed {100 * max_change:g} %); the input "
                         f"is too far from conserving hydrogen nuclei and charge")
    out = ds.copy()
    out["abundance"] = y.copy(data=np.moveaxis(projected, 0, dims.index("species")))
    return out


def write_state(ds, path):
    """Write a state grid to netCDF (netCDF4 engine) with CF ``units`` attributes."""
    ds = validate_state(ds, tolerance=np.inf)
    ds.to_netcdf(path, engine="netcdf4")


def open_state(path, *, tolerance=DEFAULT_TOLERANCE, project=False):
    """Open and validate a state grid written by :func:`write_state` (or any CF-style file)."""
    with xr.open_dataset(path, engine="netcdf4") as f:
        ds = f.load()
    if "species" in ds.coords:
        ds = ds.assign_coords(species=[str(s) for s in ds["species"].values])
    return validate_state(ds, tolerance=tolerance, project=project)


def state_vector(ds):
    """The state of a validated grid as one DataArray over the cell dims and ``variable`` (the six
    abundances, then the temperature [K]): the ``x`` a Stepper takes (one dask chunk along ``variable``)."""
    y = ds["abundance"].rename(species="variable")
    T = ds["temperature"].expand_dims(variable=["temperature"], axis=-1)
    x = xr.concat([y.drop_vars("variable"), T.drop_vars("variable")], dim="variable", coords="minimal",
                  compat="override", join="override")
    x = x.assign_coords(variable=list(SPECIES) + ["temperature"])
    return x.chunk({"variable": -1}) if x.chunks is not None else x


def from_state_vector(x, ds):
    """``(temperature, abundance)`` DataArrays from a stepper's ``x`` (cell dims + ``variable``), with the
    dims in the order of ``ds``."""
    T = x.isel(variable=-1, drop=True).transpose(*ds["temperature"].dims)
    y = (x.isel(variable=slice(0, len(SPECIES))).drop_vars("variable", errors="ignore")
         .rename(variable="species").assign_coords(species=list(SPECIES)).transpose(*ds["abundance"].dims))
    return T, y
