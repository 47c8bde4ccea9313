"""thermoemu: stiff astrophysical thermochemistry for simulations.

Public API (this release): primordial state grids, the primordial reference network with its
batched stiff solver, the one-zone free-fall collapse to 1e22 cm^-3, the Saha-equilibrium table
above 1e18 cm^-3, training catalogs, and the emulator (``ds.emu.step(dt)``, :class:`Emulator`);
nuclear state grids, the pynucastro burner and NNN model sets (``ds.emu.step(dt)`` on a nuclear
grid, :class:`NuclearEmulator`; pynucastro comes with the ``nuclear`` extra).
"""

from . import accessor as _accessor  # registers ds.emu
from .catalog import build_catalog, open_catalog
from .emulator import Emulator, OutOfDomainError
from .catalog_spec import load_spec
from .networks.primordial.network import PrimordialNetwork, PrimordialOptions, SPECIES
from .nuclear_emulator import NuclearEmulator
from .nuclear_state import burn_state, nuclear_state, validate_nuclear_state
from .onezone import collapse
from .networks.primordial.saha import saha_abundances, saha_state, total_energy
from .reference import free_fall_time, integrate_state
from .saha_table import SahaTable, SahaTableSpec, load_saha_table
from .solvers.rosenbrock import SolverSettings
from .state import StateError, open_state, primordial_state, project_state, validate_state, write_state
from .units import UnitsError, ureg

__version__ = "0.1.0"

__all__ = ["Emulator", "OutOfDomainError", "build_catalog", "load_spec", "open_catalog", "PrimordialNetwork", "PrimordialOptions", "SPECIES", "SolverSettings", "StateError",
           "UnitsError", "collapse", "free_fall_time", "integrate_state", "open_state",
           "primordial_state", "project_state", "ureg", "validate_state", "write_state", "__version__",
           "SahaTable", "SahaTableSpec", "load_saha_table", "saha_abundances", "saha_state", "total_energy",
           "NuclearEmulator", "burn_state", "nuclear_state", "validate_nuclear_state"]
