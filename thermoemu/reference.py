"""The reference solver on state grids: ``integrate_state(ds, dt)``.

Bridges xarray state grids (any cell dims, numpy- or dask-backed) and the plain-array solvers of
:mod:`thermoemu.solvers`. Dask-backed grids are integrated chunk by chunk, lazily.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import xarray as xr

from .networks.primordial.network import SPECIES, PrimordialNetwork
from .solvers.percell import integrate_per_cell
from .saha_table import SAHA_MIN_DENSITY, load_saha_table, table_reference
from .solvers.rosenbrock import STATUS, SolverSettings, integrate
from .state import StateError, dt_dataarray, validate_state
from .units import to_units

__all__ = ["integrate_state", "default_network", "free_fall_time", "state_to_arrays"]

_DEFAULT_NETWORK = None
#: Highest n_H [cm^-3] where the non-equilibrium network is meant to be used (OS25 section 2.1).
NETWORK_MAX_DENSITY = 1e18


def default_network():
    """The primordial network with default options, built once per process."""
    global _DEFAULT_NETWORK
    if _DEFAULT_NETWORK is None:
        _DEFAULT_NETWORK = PrimordialNetwork()
    return _DEFAULT_NETWORK


def free_fall_time(n_H):
    """Free-fall time ``sqrt(3 pi / (32 G rho))`` [s] with ``rho = (1 + 4 y_He) n_H m_H``."""
    from .constants import G_NEWTON, MASS_PER_H
    return np.sqrt(3.0 * np.pi / (32.0 * G_NEWTON * MASS_PER_H * np.asarray(n_H, dtype=float)))


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


def _kernel(n_H, temperature, abundance, dt, *, network, method, settings, progress, saha_ref):
    shape = np.shape(n_H)
    n, x = state_to_arrays(n_H, temperature, abundance)
    dt = np.broadcast_to(np.asarray(dt, dtype=float), shape).ravel()
    saha = n > SAHA_MIN_DENSITY if saha_ref is not None else np.zeros(n.shape, dtype=bool)
    net = np.flatnonzero(~saha)
    x_out = x.copy()
    success = np.ones(n.shape, dtype=bool)
    substeps = np.zeros(n.shape, dtype=np.int64)
    status = np.zeros(n.shape, dtype=np.int8)
    if net.size:
        cell = network.cell_parameters(n[net])
        report = _stderr_progress("integrate") if progress else None
        if method == "rosenbrock":
            res = integrate(network, x[:, net], cell, dt[net], settings, progress=report)
        else:
            res = integrate_per_cell(network, x[:, net], cell, dt[net], method=method, progress=report)
        x_out[:, net] = res.x
        success[net], substeps[net], status[net] = res.success, res.substeps, res.status
    if saha.any():
        # OS25 Appendix B: equilibrium at conserved E_tot, whatever dt (> 0) is
        idx = np.flatnonzero(saha & (dt > 0))
        x_out[:, idx], _ = load_saha_table(saha_ref[0], directory=saha_ref[1]).step(n[idx], x[:, idx])
    y_out = x_out[:6].T.reshape(shape + (6,))
    return (x_out[6].reshape(shape), y_out, success.reshape(shape), substeps.reshape(shape),
            status.reshape(shape), saha.reshape(shape))


def integrate_state(ds, dt, *, network=None, method="rosenbrock", settings=None, progress=False,
                    high_density="table", saha_table=None):
    """Advance a primordial state grid by ``dt`` at fixed n_H with the reference network.

    Cells with n_H > 1e18 cm^-3 are, by default, set to Saha equilibrium at their total energy
    E_tot (OS25 Appendix B; :mod:`thermoemu.saha_table`): chemistry is in equilibrium and the gas
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
    saha_ref = None
    if bool((ds["n_H"] > NETWORK_MAX_DENSITY).any()):
        if high_density == "network":
            warnings.warn(f"cells with n_H > {NETWORK_MAX_DENSITY:g} cm^-3: the non-equilibrium network lacks "
                          "inverse reactions there; Ono & Sugimura (2025) use Saha equilibrium instead",
                          stacklevel=2)
        else:  # built (if need be) once here; workers read the cached file
            saha_ref = table_reference(saha_table, cv_h2=network.options.cv_h2)
            load_saha_table(saha_ref[0], directory=saha_ref[1], progress=progress)
    settings = settings or SolverSettings()
    if method not in ("rosenbrock", "Radau", "BDF"):
        raise ValueError(f"method must be 'rosenbrock', 'Radau' or 'BDF', got {method!r}")
    dt_da = dt_dataarray(dt, ds["n_H"])
    kwargs = dict(network=network, method=method, settings=settings, progress=progress, saha_ref=saha_ref)
    T, y, ok, steps, status, saha = xr.apply_ufunc(
        _kernel, ds["n_H"], ds["temperature"], ds["abundance"], dt_da,
        input_core_dims=[[], [], ["species"], []],
        output_core_dims=[[], ["species"], [], [], [], []],
        dask="parallelized", kwargs=kwargs,
        output_dtypes=[float, float, bool, np.int64, np.int8, bool],
        dask_gufunc_kwargs={"output_sizes": {"species": len(SPECIES)}},
    )
    out = ds.copy()
    out["temperature"] = T.assign_attrs(ds["temperature"].attrs)
    out["abundance"] = y.transpose(*ds["abundance"].dims).assign_attrs(ds["abundance"].attrs)
    out["success"] = ok.assign_attrs(long_name="integration succeeded")
    out["substeps"] = steps.assign_attrs(long_name="accepted substeps" if method == "rosenbrock"
                                         else "right-hand-side evaluations")
    codes = sorted(STATUS)
    out["status"] = status.assign_attrs(long_name="solver status", flag_values=np.array(codes, np.int8),
                                        flag_meanings=" ".join(STATUS[c].replace(" ", "_") for c in codes))
    out["saha_equilibrium"] = saha.assign_attrs(
        long_name="advanced in Saha equilibrium at conserved total energy (n_H > 1e18 cm^-3, OS25 Appendix B)")
    out.attrs.update(network=network.name, rate_set_version=network.rate_set_version,
                     solver=method, dt_s=float(dt_da.max()) if dt_da.size else 0.0)
    return out

