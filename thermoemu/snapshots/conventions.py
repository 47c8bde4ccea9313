"""Snapshot conventions: recognize how a snapshot names its chemistry, and convert it to a state grid and back.

A convention is a small object with ``name``, ``detect(ds)``, ``to_state(ds)`` and ``from_state(state, ds)``:

========== =============================================================== ==============================
name       recognized by                                                   state grid
========== =============================================================== ==============================
grackle    gracklepy ``FluidContainer`` names: ``HI_density``, ``HII_density``, primordial, via
           ``HM_density``, ``H2I_density``, ``H2II_density``, ``e_density`` and :mod:`.grackle` (code units
           ``internal_energy`` or ``temperature``                         from the attributes)
thermoemu  a thermoemu state grid: ``n_H``, ``temperature``, ``abundance``    itself
           (primordial) or ``density``, ``temperature``, ``mass_fraction``
           (nuclear)
========== =============================================================== ==============================

yt datasets come in through :func:`thermoemu.snapshots.yt.from_yt`, which gives Grackle-named fields.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.grid import StateError
from ..core.protocols import chemistry_of
from . import grackle

__all__ = ["CONVENTIONS", "detect_convention", "Grackle", "ThermoemuGrid"]


class Grackle:
    """Grackle-named fields in code units (``density_units``, ... in the attributes; CGS if absent)."""

    name = "grackle"

    def detect(self, ds):
        return grackle.is_grackle(ds)

    def to_state(self, ds):
        return grackle.fields_to_state(ds)

    def from_state(self, state, ds):
        return grackle.state_to_fields(state, ds)

    def time_units(self, ds):
        """Seconds per code time unit (a dt field without a ``units`` attribute is in these)."""
        return grackle.GrackleUnits.from_attrs(ds.attrs).time_units


class ThermoemuGrid:
    """A thermoemu state grid, of any registered chemistry."""

    name = "thermoemu"

    def detect(self, ds):
        try:
            chemistry_of(ds)
        except StateError:
            return False
        return True

    def to_state(self, ds):
        return ds

    def from_state(self, state, ds):
        return state

    def time_units(self, ds):
        return 1.0


#: The conventions, in the order they are tried.
CONVENTIONS = (Grackle(), ThermoemuGrid())


def detect_convention(ds, name=None):
    """The convention of ``ds`` (or the one named); a clear error naming what each convention needs otherwise."""
    if name is not None:
        for c in CONVENTIONS:
            if c.name == name:
                return c
        raise ValueError(f"convention = {name!r}; known: {', '.join(c.name for c in CONVENTIONS)}")
    for c in CONVENTIONS:
        if c.detect(ds):
            return c
    have = sorted(map(str, ds.data_vars))
    raise StateError(f"no known snapshot convention matches the fields {have}: Grackle needs HI_density, HII_density, "
                     "HM_density, H2I_density, H2II_density, e_density and internal_energy (or temperature); a "
                     "thermoemu state grid needs n_H, temperature, abundance (primordial) or density, temperature, "
                     "mass_fraction (nuclear)")


def as_dataset(fields, *, dims=None, attrs=None):
    """A Dataset from a mapping of arrays (a simulation's fields in memory): ``{name: array}``; arrays of
    more than one dimension need ``dims`` (e.g. ``("x", "y", "z")``), 1-d ones get ``cell``."""
    data = {}
    for name, value in fields.items():
        arr = np.asarray(value)
        if arr.ndim == 0:
            data[name] = ((), arr)
        elif dims is None and arr.ndim == 1:
            data[name] = (("cell",), arr)
        elif dims is not None and len(dims) == arr.ndim:
            data[name] = (tuple(dims), arr)
        else:
            raise StateError(f"field {name!r} has shape {arr.shape}; pass dims naming its {arr.ndim} dimensions")
    return xr.Dataset(data, attrs=dict(attrs or {}))
