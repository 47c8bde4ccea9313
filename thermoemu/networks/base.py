"""What a network is, for the solvers, samplers and state grids.

A network advances ``n_vars`` state variables per cell at fixed cell parameters (for the
primordial network: six abundances and the temperature at fixed n_H). Arrays in the hot loop are
laid out variable-first, ``x.shape == (n_vars, n_cells)``, so that each variable is one contiguous
vector over cells.
"""

from __future__ import annotations

from typing import Protocol


class Network(Protocol):
    """Protocol satisfied by every reaction network (see :class:`PrimordialNetwork`)."""

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
