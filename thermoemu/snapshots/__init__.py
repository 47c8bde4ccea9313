"""Simulation snapshots <-> state grids, and ``thermoemu apply`` (docs/snapshots.md).

- :mod:`.grackle`: Grackle's field conventions (code units, ``e_density``, internal energy, helium).
- :mod:`.yt`: any yt dataset or data object -> Grackle-named fields, and back (the ``[yt]`` extra).
- :mod:`.conventions`: which convention a snapshot uses.
- :mod:`.apply`: the streamed, resumable ``thermoemu apply``.
- :mod:`.examples`: snapshot-like cubes of a collapsing core.
"""

from .apply import ApplyError, apply_snapshot, open_snapshot, step_fields
from .grackle import GrackleUnits, fields_from_state, fields_to_state, state_to_fields

__all__ = ["ApplyError", "apply_snapshot", "open_snapshot", "step_fields", "GrackleUnits", "fields_from_state",
           "fields_to_state", "state_to_fields", "from_yt", "to_yt"]


def __getattr__(name):  # yt is optional: imported on first use
    if name in ("from_yt", "to_yt"):
        from . import yt
        return getattr(yt, name)
    raise AttributeError(f"module 'thermoemu.snapshots' has no attribute {name!r}")
