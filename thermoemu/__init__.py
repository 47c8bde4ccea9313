"""thermoemu: stiff astrophysical thermochemistry for simulations.

Public API (this release): primordial state grids, the primordial reference network with its
batched stiff solver, the one-zone free-fall collapse to 1e22 cm^-3, the Saha-equilibrium table
above 1e18 cm^-3, training catalogs, and the emulator (``ds.emu.step(dt)``, :class:`Emulator`);
nuclear state grids, the pynucastro burner and NNN model sets (``ds.emu.step(dt)`` on a nuclear
grid, :class:`NuclearEmulator`; pynucastro comes with the ``nuclear`` extra).

The package is one core and two wings (docs/architecture.md): :mod:`thermoemu.core` knows no
physics, :mod:`thermoemu.solvers` integrates any network, and :mod:`thermoemu.primordial` and
:mod:`thermoemu.nuclear` each register a chemistry that the accessor and the CLI find.
"""

# The order matters: the primordial wing registers first, so its commands lead `thermoemu --help`.
# isort: off
from ._version import __version__
from .units import UnitsError, ureg
from .core.catalog import build_catalog, open_catalog
from .core.emulator import OutOfDomainError
from .core.grid import StateError
from .core.spec import load_spec
from .solvers.rosenbrock import SolverSettings
from .primordial import chemistry as _primordial_chemistry  # noqa: F401 - registers the primordial wing
from .primordial.emulator import Emulator
from .primordial.onezone import collapse
from .primordial.physics.network import SPECIES, PrimordialNetwork, PrimordialOptions, free_fall_time
from .primordial.physics.saha import saha_abundances, saha_state, total_energy
from .primordial.reference import integrate_state
from .primordial.saha_table import SahaTable, SahaTableSpec, load_saha_table
from .primordial.state import open_state, primordial_state, project_state, validate_state, write_state
from .nuclear import chemistry as _nuclear_chemistry  # noqa: F401 - registers the nuclear wing
from .nuclear.emulator import NuclearEmulator
from .nuclear.state import burn_state, nuclear_state, validate_nuclear_state
from . import accessor as _accessor  # noqa: F401 - registers ds.emu
# isort: on

__all__ = ["Emulator", "OutOfDomainError", "build_catalog", "load_spec", "open_catalog", "PrimordialNetwork",
           "PrimordialOptions", "SPECIES", "SolverSettings", "StateError", "UnitsError", "collapse",
           "free_fall_time", "integrate_state", "open_state", "primordial_state", "project_state", "ureg",
           "validate_state", "write_state", "__version__", "SahaTable", "SahaTableSpec", "load_saha_table",
           "saha_abundances", "saha_state", "total_energy", "NuclearEmulator", "burn_state", "nuclear_state",
           "validate_nuclear_state"]
