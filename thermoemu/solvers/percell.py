"""Accurate per-cell integration with scipy's ``solve_ivp`` (Radau or BDF with the Jacobian).

Slow (one Python-level integration per cell) but independent of the batched solver: it is the
yardstick the batched solver is validated against, and the baseline of its benchmark.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from ..core.protocols import Network
from .rosenbrock import SolverResult, compiled_backend


def _cell_functions(network, cell_i):
    """``fun(t, x)`` and ``jac(t, x)`` of one cell for ``solve_ivp``: the compiled kernel where it
    runs (the same values as the vectorized network to round-off, ~50x cheaper per call for one
    cell), the network's vectorized methods otherwise."""
    compiled = compiled_backend(network)
    if compiled is not None and compiled.supports(network, np.zeros((1, 1))):
        return compiled.cell_functions(network, cell_i)

    def fun(_t, x):
        return network.rhs(x[:, None], cell_i)[:, 0]

    def jac(_t, x):
        return network.jacobian(x[:, None], cell_i)[:, :, 0]

    return fun, jac


def integrate_per_cell(network: Network, x0, cell, dt, method="Radau", rtol=1e-8, atol_abundance=1e-24,
                       atol_temperature=1e-8, progress=None):
    """Integrate each cell separately with ``scipy.integrate.solve_ivp``.

    Parameters
    ----------
    network, x0, cell, dt
        As for :func:`thermoemu.solvers.rosenbrock.integrate`.
    method : {"Radau", "BDF", "LSODA"}
    rtol : float
    atol_abundance, atol_temperature : float
        Absolute tolerances [1] and [K].
    progress : callable, optional
        ``progress(cells_done, cells_total)`` after each cell.

    Returns
    -------
    SolverResult
        ``substeps`` holds scipy's number of right-hand-side evaluations.
    """
    x0 = np.asarray(x0, dtype=float)
    n_vars, n = x0.shape
    dt = np.broadcast_to(np.asarray(dt, dtype=float), (n,))
    atol = np.full(n_vars, atol_abundance)
    atol[-1] = atol_temperature
    out = x0.copy()
    success = np.zeros(n, bool)
    status = np.zeros(n, np.int8)
    nfev = np.zeros(n, np.int64)
    reached = np.zeros(n)
    for i in range(n):
        fun, jac = _cell_functions(network, network.take_cells(cell, [i]))
        if dt[i] <= 0:
            success[i] = True
            continue
        kwargs = {} if method == "LSODA" else {"jac": jac}
        with np.errstate(all="ignore"):
            sol = solve_ivp(fun, (0.0, dt[i]), x0[:, i], method=method, rtol=rtol, atol=atol, **kwargs)
        nfev[i] = sol.nfev
        if sol.success and np.isfinite(sol.y[:, -1]).all():
            out[:, i] = sol.y[:, -1]
            success[i] = True
            reached[i] = dt[i]
        else:
            status[i] = 3 if not np.isfinite(sol.y[:, -1]).all() else 2
            out[:, i] = sol.y[:, -1]
            reached[i] = sol.t[-1]
        if progress is not None:
            progress(i + 1, n)
    out = network.project(out)
    return SolverResult(x=out, success=success, status=status, substeps=nfev,
                        rejected=np.zeros(n, np.int64), time_reached=reached)


def crossing_times_per_cell(network: Network, x0, cell, horizon, eps=0.1, method="Radau", rtol=1e-8,
                            atol_abundance=1e-24, atol_temperature=1e-8):
    """First time each variable's relative change reaches ``eps``, per cell, with scipy events.

    The reference for the timescales tau_eps that
    :func:`thermoemu.solvers.rosenbrock.integrate` records (``timescale_eps``): each cell is
    integrated to ``horizon`` with ``solve_ivp`` and one event per variable,
    ``|x_i(t) - x_i(0)| - eps |x_i(0)|``, located to scipy's event precision.

    Parameters
    ----------
    network, x0, cell
        As for :func:`integrate_per_cell`.
    horizon : float or ndarray, shape (n_cells,)
        End of the search [s]; variables that never cross get ``inf``.
    eps : float
        Relative change (OS25: 0.1).

    Returns
    -------
    tau : ndarray, shape (n_vars, n_cells)
        Crossing time [s], ``inf`` where not reached by ``horizon``.
    sign : ndarray of int8, shape (n_vars, n_cells)
        Sign of the change at the crossing (0 where none).
    """
    x0 = np.asarray(x0, dtype=float)
    n_vars, n = x0.shape
    horizon = np.broadcast_to(np.asarray(horizon, dtype=float), (n,))
    atol = np.full(n_vars, atol_abundance)
    atol[-1] = atol_temperature
    tau = np.full((n_vars, n), np.inf)
    sign = np.zeros((n_vars, n), np.int8)
    for i in range(n):
        fun, jac = _cell_functions(network, network.take_cells(cell, [i]))
        start = x0[:, i].copy()

        def make_event(k):
            def event(_t, x):
                return abs(x[k] - start[k]) - eps * abs(start[k])
            event.direction = 1.0
            return event

        events = [make_event(k) for k in range(n_vars)]
        with np.errstate(all="ignore"):
            sol = solve_ivp(fun, (0.0, horizon[i]), start, method=method, rtol=rtol, atol=atol, jac=jac,
                            events=events)
        for k in range(n_vars):
            if sol.t_events[k].size:
                tau[k, i] = sol.t_events[k][0]
                sign[k, i] = 1 if sol.y_events[k][0][k] >= start[k] else -1
    return tau, sign
