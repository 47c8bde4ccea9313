"""The reference solver on state grids: ``integrate_state(ds, dt)``.

Bridges xarray state grids (any cell dims, numpy- or dask-backed) and the plain-array solvers of
:mod:`thermoemu.solvers`. Dask-backed grids are integrated chunk by chunk, lazily.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from ..core.grid import apply_stepper, dt_dataarray, flag_attrs
from ..core.protocols import StepResult
from ..solvers.percell import integrate_per_cell
from ..solvers.rosenbrock import STATUS, SolverSettings, integrate
from .physics.network import VARIABLES, as_cells, default_network
from .saha_table import SAHA_MIN_DENSITY, load_saha_table, table_reference
from .state import from_state_vector, state_vector, validate_state

__all__ = ["integrate_state", "ReferenceStepper", "state_to_arrays", "NETWORK_MAX_DENSITY"]

#: Highest n_H [cm^-3] where the non-equilibrium network is meant to be used (OS25 section 2.1).
NETWORK_MAX_DENSITY = 1e18


def state_to_arrays(n_H, temperature, abundance):
    """Flatten cell arrays (abundance with species last) into ``(n_H (N,), x (7, N))``."""
    n = np.asarray(n_H, dtype=float).ravel()
    x = np.empty((7, n.size))
    x[:6] = np.asarray(abundance, dtype=float).reshape(-1, 6).T
    x[6] = np.asarray(temperature, dtype=float).ravel()
    return n, x


def _stderr_progress(label):
    state = {"last": -1}

    def report(done, total):
        pct = int(100 * done / max(total, 1))
        if pct != state["last"]:
            state["last"] = pct
            sys.stderr.write(f"\r{label}: {done}/{total} cells ({pct}%)")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    return report


class ReferenceStepper:
    """The reference network and its solver as a :class:`~thermoemu.core.protocols.Stepper`.

    Parameters
    ----------
    network : PrimordialNetwork, optional
        Defaults to :func:`default_network`.
    settings : SolverSettings, optional
        Settings of the batched solver.
    method : {"rosenbrock", "Radau", "BDF"}
        The batched solver (default) or the per-cell scipy integrator.
    saha_table : (SahaTableSpec, directory) or None
        Cells above 1e18 cm^-3 go to this Saha table at conserved E_tot (OS25 Appendix B) when
        given; otherwise the network integrates them too.
    progress : bool
        Print progress to stderr.

    ``StepResult.status`` holds the solver's reason codes (:data:`STATUS`); ``extra`` holds
    ``substeps`` (accepted substeps, or scipy's function evaluations) and ``saha_equilibrium``.
    """

    chemistry = "primordial"
    variables = VARIABLES
    status = STATUS
    label = "reference"

    def __init__(self, network=None, settings=None, *, method="rosenbrock", saha_table=None, progress=False):
        if method not in ("rosenbrock", "Radau", "BDF"):
            raise ValueError(f"method must be 'rosenbrock', 'Radau' or 'BDF', got {method!r}")
        self.network = network or default_network()
        self.settings = settings or SolverSettings()
        self.method = method
        self.saha_table = saha_table
        self.progress = progress

    def step_arrays(self, cells, x, dt):
        """Advance cells by ``dt`` [s] at fixed n_H (``cells``: ``{"n_H": ...}`` or an n_H array [cm^-3])."""
        n = as_cells(cells)
        x = np.asarray(x, dtype=float).reshape(7, n.size)
        dt = np.broadcast_to(np.asarray(dt, dtype=float), n.shape)
        saha = n > SAHA_MIN_DENSITY if self.saha_table is not None else np.zeros(n.shape, dtype=bool)
        net = np.flatnonzero(~saha)
        x_out = x.copy()
        success = np.ones(n.shape, dtype=bool)
        substeps = np.zeros(n.shape, dtype=np.int64)
        status = np.zeros(n.shape, dtype=np.int8)
        if net.size:
            cell = self.network.cell_parameters(n[net])
            report = _stderr_progress("integrate") if self.progress else None
            if self.method == "rosenbrock":
                res = integrate(self.network, x[:, net], cell, dt[net], self.settings, progress=report)
            else:
                res = integrate_per_cell(self.network, x[:, net], cell, dt[net], method=self.method, progress=report)
            x_out[:, net] = res.x
            success[net], substeps[net], status[net] = res.success, res.substeps, res.status
        if saha.any():
            # OS25 Appendix B: equilibrium at conserved E_tot, whatever dt (> 0) is
            idx = np.flatnonzero(saha & (dt > 0))
            x_out[:, idx], _ = load_saha_table(self.saha_table[0], directory=self.saha_table[1]).step(n[idx], x[:, idx])
        return StepResult(x_out, success, np.zeros(n.shape, dtype=bool), status,
                          {"substeps": substeps, "saha_equilibrium": saha})


def integrate_state(ds, dt, *, network=None, method="rosenbrock", settings=None, progress=False,
                    high_density="table", saha_table=None):
    """Advance a primordial state grid by ``dt`` at fixed n_H with the reference network.

    Cells with n_H > 1e18 cm^-3 are, by default, set to Saha equilibrium at their total energy
    E_tot (OS25 Appendix B; :mod:`thermoemu.primordial.saha_table`): chemistry is in equilibrium and the gas
    adiabatic there, so E_tot is conserved and dt does not matter (dt = 0 leaves a cell as it is).

    Parameters
    ----------
    ds : xarray.Dataset
        State grid (see :func:`thermoemu.primordial_state`); numpy- or dask-backed, any cell dims.
    dt : number, str, pint.Quantity or xarray.DataArray
        Time step (default units s; e.g. ``"1e10 s"`` or ``"300 yr"``); a DataArray may vary over
        cells. Must be >= 0.
    network : PrimordialNetwork, optional
        Defaults to :func:`default_network`.
    method : {"rosenbrock", "Radau", "BDF"}
        The batched solver (default) or the per-cell scipy integrator.
    settings : SolverSettings, optional
        Settings of the batched solver.
    progress : bool
        Print progress to stderr.
    high_density : {"table", "network"}
        Cells above 1e18 cm^-3: the Saha table (default) or the non-equilibrium network (which
        lacks inverse reactions there; warns).
    saha_table : SahaTable or SahaTableSpec, optional
        The table (default: OS25's 1000 x 1000 table for the network's ``cv_h2``, built and
        cached on first use, about 90 s).

    Returns
    -------
    xarray.Dataset
        The new state plus ``success`` (bool), ``substeps`` (accepted substeps, or scipy's
        function evaluations), ``status`` (reason code with CF ``flag_values`` /
        ``flag_meanings``) and ``saha_equilibrium`` (advanced by the Saha table) per cell.
    """
    ds = validate_state(ds)
    if ds["abundance"].chunks is not None:
        ds = ds.chunk({"species": -1})  # the kernel needs all species of a cell together
    if high_density not in ("table", "network"):
        raise ValueError(f"high_density = {high_density!r}; choose 'table' or 'network'")
    network = network or default_network()
    if method not in ("rosenbrock", "Radau", "BDF"):
        raise ValueError(f"method must be 'rosenbrock', 'Radau' or 'BDF', got {method!r}")
    saha_ref = None
    if bool((ds["n_H"] > NETWORK_MAX_DENSITY).any()):
        if high_density == "network":
            warnings.warn(f"cells with n_H > {NETWORK_MAX_DENSITY:g} cm^-3: the non-equilibrium network lacks "
                          "inverse reactions there; Ono & Sugimura (2025) use Saha equilibrium instead",
                          stacklevel=2)
        else:  # built (if need be) once here; workers read the cached file
            saha_ref = table_reference(saha_table, cv_h2=network.options.cv_h2)
            load_saha_table(saha_ref[0], directory=saha_ref[1], progress=progress)
    stepper = ReferenceStepper(network, settings, method=method, saha_table=saha_ref, progress=progress)
    dt_da = dt_dataarray(dt, ds["n_H"])
    x_new, ok, _, status, extra = apply_stepper(stepper, {"n_H": ds["n_H"]}, state_vector(ds), dt_da,
                                                vector_dim="variable",
                                                extra={"substeps": np.int64, "saha_equilibrium": bool})
    T, y = from_state_vector(x_new, ds)
    steps, saha = extra["substeps"], extra["saha_equilibrium"]
    out = ds.copy()
    out["temperature"] = T.assign_attrs(ds["temperature"].attrs)
    out["abundance"] = y.assign_attrs(ds["abundance"].attrs)
    out["success"] = ok.assign_attrs(long_name="integration succeeded")
    out["substeps"] = steps.assign_attrs(long_name="accepted substeps" if method == "rosenbrock"
                                         else "right-hand-side evaluations")
    out["status"] = status.assign_attrs(flag_attrs(STATUS, "solver status"))
    out["saha_equilibrium"] = saha.assign_attrs(
        long_name="advanced in Saha equilibrium at conserved total energy (n_H > 1e18 cm^-3, OS25 Appendix B)")
    out.attrs.update(network=network.name, rate_set_version=network.rate_set_version,
                     solver=method, dt_s=float(dt_da.max()) if dt_da.size else 0.0)
    return out

