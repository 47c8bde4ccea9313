"""The one pint registry of thermoemu and the canonical units of state variables.

We use pint's application registry, which pint-xarray also uses, so quantities made by the user,
by ``ds.pint.quantify()`` and by thermoemu are compatible.
"""

from __future__ import annotations

import numpy as np
import pint
import pint_xarray  # noqa: F401  (registers the .pint accessor)
import xarray as xr

ureg = pint.get_application_registry()

#: Canonical units (CF-style strings written to the ``units`` attribute).
CANONICAL_UNITS = {
    "n_H": "cm^-3",
    "temperature": "K",
    "abundance": "1",
    "time": "s",
    "dt": "s",
    "density": "g cm^-3",
    "mass_fraction": "1",
}


class UnitsError(ValueError):
    """A value has units of the wrong dimensionality or unparseable units."""


def parse_quantity(value, default_units):
    """A pint Quantity from a number, array, string ("1e10 s") or Quantity.

    Plain numbers and arrays are taken to be in ``default_units``.
    """
    if isinstance(value, str):
        try:
            value = ureg.Quantity(value)
        except Exception as exc:  # pint raises several types
            raise UnitsError(f"cannot parse {value!r} as a quantity: {exc}") from None
        if value.unitless:
            value = ureg.Quantity(float(value.magnitude), default_units)
    if isinstance(value, ureg.Quantity):
        return value
    return ureg.Quantity(np.asarray(value, dtype=float), default_units)


def to_units(value, units, name):
    """Magnitude of ``value`` in ``units`` (plain numbers are assumed to be in ``units``).

    Parameters
    ----------
    value : number, array, str, pint.Quantity or xarray.DataArray
        A DataArray is converted using its ``units`` attribute (or its pint units).
    units : str
        Target units, e.g. ``"cm^-3"``.
    name : str
        Variable name for error messages.

    Raises
    ------
    UnitsError
        If the units cannot be converted (wrong dimensionality) or parsed.
    """
    if isinstance(value, xr.DataArray):
        data = value.data
        if isinstance(data, ureg.Quantity):
            return value.copy(data=_convert(data, units, name).magnitude)
        attrs = {k: v for k, v in value.attrs.items() if k != "units"}
        attr = value.attrs.get("units")
        if attr is None:
            return value.astype(float).assign_attrs(attrs)
        unit = _parse_unit(attr, name)
        zero = _convert(ureg.Quantity(0.0, unit), units, name).magnitude
        scale = _convert(ureg.Quantity(1.0, unit), units, name).magnitude - zero
        # affine conversion (handles offset units such as degC), dask-friendly
        out = value.astype(float) * scale + zero if (scale != 1.0 or zero != 0.0) else value.astype(float)
        return out.assign_attrs(attrs)
    q = parse_quantity(value, units)
    return _convert(q, units, name).magnitude


def _parse_unit(text, name):
    try:
        return ureg.Unit(text) if text not in ("1", "") else ureg.dimensionless
    except Exception as exc:
        raise UnitsError(f"{name}: cannot parse units {text!r}: {exc}") from None


def _convert(q, units, name):
    try:
        return q.to(units)
    except pint.DimensionalityError:
        raise UnitsError(
            f"{name} has units {q.units:~P} ({q.dimensionality}); expected units convertible to "
            f"{units} ({ureg.Quantity(1.0, units).dimensionality})"
        ) from None
