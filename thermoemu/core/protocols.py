"""The two seams of thermoemu: what a network and a stepper are, and what a chemistry (a wing) offers.

Arrays in the hot loops are laid out variable-first, ``x.shape == (n_vars, n_cells)``, so that each
variable is one contiguous vector over cells.

- :class:`Network`: a reaction network the batched solvers integrate (the primordial network; the
  nuclear networks are integrated by their own burner and need only ``name`` and ``variables``).
- :class:`Stepper`: anything that advances cells by ``dt`` and says per cell whether it succeeded:
  the reference integrator, an emulator, the Saha table, the nuclear burner, the NNNs.
  ``ds.emu.step``, the one-zone collapse, the out-of-domain fallback and the evaluations all take
  one, so each is written once and any two can be compared.
- :class:`Chemistry`: one per wing (``primordial``, ``nuclear``), in the spirit of xarray's backend
  entrypoints: it recognizes and validates its state grids, gives steppers, builds catalog shards
  and checks catalog specs. Wings register theirs with :func:`register_chemistry`; core finds a
  grid's chemistry with :func:`chemistry_of` and never imports a wing.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from .grid import StateError

__all__ = ["Network", "Stepper", "StepResult", "Chemistry", "CatalogChemistry", "register_chemistry", "chemistries",
           "get_chemistry", "chemistry_of", "ENTRY_POINT_GROUP"]


class Network(Protocol):
    """Protocol of a reaction network integrated by :mod:`thermoemu.solvers`."""

    #: Short name, recorded in files and artifacts.
    name: str
    #: Version string of the physics (rates and cooling), recorded with results.
    rate_set_version: str
    #: Names of the state variables, in the order of the first axis of ``x``.
    variables: tuple[str, ...]

    def cell_parameters(self, n_H):
        """Per-cell constants for the integration (e.g. density-only factors)."""

    def rhs(self, x, cell):
        """Time derivative ``dx/dt`` [units of x per second], shape ``(n_vars, n_cells)``."""

    def jacobian(self, x, cell, f=None):
        """``d(dx/dt)/dx``, shape ``(n_vars, n_vars, n_cells)``."""

    def rhs_and_jacobian(self, x, cell):
        """Both at once, sharing work: ``(dx/dt, d(dx/dt)/dx)``."""

    def take_cells(self, cell, idx):
        """The cell parameters of a subset of cells."""

    def project(self, x):
        """Enforce the network's conservation laws on ``x`` in place; returns ``x``."""


@dataclasses.dataclass
class StepResult:
    """What a :class:`Stepper` returns, per cell (N cells).

    Attributes
    ----------
    x : ndarray (n_vars, N)
        The new state, variable-first (NaN where ``success`` is False).
    success : ndarray of bool (N,)
    out_of_domain : ndarray of bool (N,)
        Outside the domain the stepper is valid on (always False for reference solvers).
    status : ndarray of int8 (N,)
        A code of the stepper's :attr:`Stepper.status` table (CF flag_values / flag_meanings).
    extra : dict of str -> ndarray (N,)
        Further per-cell results: ``substeps`` (solvers), ``e_nuc`` [erg g^-1], ``eps_nu``
        [erg g^-1 s^-1] and ``ye`` (nuclear steppers), ...
    """

    x: np.ndarray
    success: np.ndarray
    out_of_domain: np.ndarray
    status: np.ndarray
    extra: dict = dataclasses.field(default_factory=dict)

    def reason(self, k):
        """The status code of cell ``k`` as an int (look it up in the stepper's ``status`` table)."""
        return int(self.status[k])


@runtime_checkable
class Stepper(Protocol):
    """Anything that advances cells by dt (see the module docstring)."""

    #: The kind of chemistry it steps (``"primordial"``, ``"nuclear"``).
    chemistry: str
    #: Names of the rows of ``x``.
    variables: tuple[str, ...]
    #: Status code -> meaning (the CF flag table of ``emu_status`` / ``status``).
    status: Mapping[int, str]
    #: A short description, recorded in outputs.
    label: str

    def step_arrays(self, cells, x, dt) -> StepResult:
        """Advance every cell by ``dt``.

        Parameters
        ----------
        cells : mapping of str -> ndarray (N,)
            Per-cell parameters held fixed over the step (primordial: ``n_H`` [cm^-3]; nuclear:
            ``temperature`` [K] and ``density`` [g cm^-3]).
        x : ndarray (n_vars, N)
            The state, rows in the order of :attr:`variables`.
        dt : float or ndarray (N,)
            [s], >= 0.
        """


class Chemistry(Protocol):
    """What a wing offers the core, the accessor, the CLI and the snapshot adapters."""

    #: Registry key; also ``network.kind`` in catalog specs.
    kind: str
    #: Data variables that a state grid of this chemistry holds.
    state_variables: tuple[str, ...]
    #: Per-step outputs that add up over steps (``ds.emu.evolve`` sums them).
    summed_outputs: tuple[str, ...]

    def owns(self, ds) -> bool:
        """Whether ``ds`` is a state grid of this chemistry (by its variables)."""

    def validate_state(self, ds):
        """The grid checked and in canonical form (raises StateError / UnitsError)."""

    def stepper(self, model="default", **options) -> Stepper:
        """The emulator of ``model`` (``"default"``: the shipped one) with these options."""

    def reference(self, **options) -> Stepper:
        """The reference solver as a stepper."""

    def step(self, ds, dt, stepper, **options):
        """Apply a stepper to a grid (the accessor's ``step``): the new grid with its flags."""

    def validate_spec(self, raw: dict) -> None:
        """Check this chemistry's parts of a catalog spec mapping in place (raises SpecError)."""

    def shard(self, spec, shard: int, count: int, out: str) -> dict:
        """Build one catalog shard into folder ``out``; returns its index entry."""

    def provenance(self, spec) -> dict:
        """Index fields that name the network, rate set and solver of a catalog."""

    def add_commands(self, subparsers) -> None:
        """Add the wing's subcommands to the ``thermoemu`` command line (argparse subparsers)."""


class CatalogChemistry:
    """A base for chemistries whose catalog parts live in one module (``catalog_module``, with
    ``validate_spec(raw)``, ``build_shard(spec, shard, count, out)`` and ``provenance(spec)``)."""

    catalog_module: Any = None

    def validate_spec(self, raw):
        self.catalog_module.validate_spec(raw)

    def shard(self, spec, shard, count, out):
        return self.catalog_module.build_shard(spec, shard, count, out)

    def provenance(self, spec):
        return self.catalog_module.provenance(spec)


#: Entry-point group under which packages may register further chemistries.
ENTRY_POINT_GROUP = "thermoemu.chemistries"
_REGISTRY: dict[str, Any] = {}


def register_chemistry(chemistry):
    """Register a :class:`Chemistry` under its ``kind`` (a later registration replaces an earlier one)."""
    _REGISTRY[chemistry.kind] = chemistry
    return chemistry


def _load_all():
    """Register the chemistries of installed entry points (the built-in wings register themselves when
    ``thermoemu`` is imported, and are declared as entry points too)."""
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python < 3.10 API
        eps = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in eps:
        if ep.name not in _REGISTRY:
            obj = ep.load()
            register_chemistry(obj() if isinstance(obj, type) else obj)


def chemistries():
    """All registered chemistries, by kind."""
    _load_all()
    return dict(_REGISTRY)


def get_chemistry(kind):
    """The chemistry registered as ``kind``; ValueError naming the known kinds otherwise."""
    if kind not in _REGISTRY:
        _load_all()
    if kind not in _REGISTRY:
        raise ValueError(f"unknown chemistry {kind!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]


def chemistry_of(ds):
    """The chemistry whose state grids look like ``ds``; ValueError naming what each expects."""
    found = [c for c in chemistries().values() if c.owns(ds)]
    if len(found) == 1:
        return found[0]
    if not found:
        wants = "; ".join(f"{c.kind}: {', '.join(c.state_variables)}" for c in _REGISTRY.values())
        raise StateError(f"no chemistry recognizes this grid (variables {sorted(map(str, ds.data_vars))}); "
                         f"a state grid holds the variables of one of: {wants}")
    raise StateError(f"the grid matches several chemistries ({', '.join(c.kind for c in found)}); "
                     "drop the variables of all but one")
