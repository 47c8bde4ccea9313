"""Batched stiff integrator: a vectorized Rosenbrock method with per-cell adaptive substeps.

Every cell has its own time step and its own step-size control; all active cells advance
together in vector operations, and finished cells drop out of the working set. The method is
RODAS3 (Sandu et al. 1997, Atmos. Environ. 31, 3459; 4 stages, order 3 with an embedded order-2
estimate, L-stable, stiffly accurate), in the formulation of Hairer & Wanner (1996, section IV.7):

``(I/(h gamma) - J) K_i = f(x + sum_j a_ij K_j) + sum_j (c_ij/h) K_j``,
``x_new = x + sum_i m_i K_i``, error estimate ``sum_i e_i K_i``.

Two step-control modes:

* ``"error"`` (default): accept a substep when the embedded error estimate satisfies
  ``|err_i| <= atol_i + rtol * max(|x_i|, |x_new,i|)`` for every variable.
* ``"relative_change"``: the rule of Ono & Sugimura (2025, section 3.3): accept a substep when no
  variable (temperature or any abundance above ``change_floor``) changes by more than
  ``max_relative_change`` (10 %); no error estimate is used.

Cells that cannot finish (too many substeps, step size collapse, non-finite values) are flagged
with a reason code and keep their last good state; nothing is returned as NaN without a flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linalg import lu_factor, lu_solve

# RODAS3 coefficients (Sandu et al. 1997; as in KPP's Rosenbrock integrators).
_GAMMA = 0.5
_A = {(2, 0): 2.0, (2, 1): 0.0, (3, 0): 2.0, (3, 1): 0.0, (3, 2): 1.0}
_C = {(1, 0): 4.0, (2, 0): 1.0, (2, 1): -1.0, (3, 0): 1.0, (3, 1): -1.0, (3, 2): -8.0 / 3.0}
_M = (2.0, 0.0, 1.0, 1.0)
_E = (0.0, 0.0, 0.0, 1.0)
_ORDER_ESTIMATE = 3.0

#: Reason codes of :attr:`SolverResult.status`.
STATUS = {
    0: "ok",
    1: "maximum number of substeps reached",
    2: "step size underflow",
    3: "non-finite state",
}


@dataclass
class SolverSettings:
    """Settings of the batched solver.

    Attributes
    ----------
    step_control : {"error", "relative_change"}
    rtol : float
        Relative tolerance (``"error"`` mode).
    atol_abundance, atol_temperature : float
        Absolute tolerances for abundances [1] and temperature [K] (``"error"`` mode).
    max_relative_change : float
        Largest relative change of any variable per substep (``"relative_change"`` mode).
    change_floor : float
        Abundances below this value are ignored by the relative-change rule.
    max_substeps : int
        Per cell; beyond this the cell is flagged (status 1).
    chunk_size : int
        Cells integrated together; bounds memory (about 2 kB per cell).
    abundance_floor : float
        Abundances are kept >= this tiny positive value after each substep.
    project : bool
        Project the result onto the network's conservation laws (hydrogen nuclei and charge to
        round-off). Without it they hold to the integration error only.
    """

    step_control: str = "error"
    rtol: float = 1e-4
    atol_abundance: float = 1e-28
    atol_temperature: float = 1e-6
    max_relative_change: float = 0.1
    change_floor: float = 1e-20
    max_substeps: int = 20000
    chunk_size: int = 65536
    abundance_floor: float = 1e-40
    project: bool = True

    def __post_init__(self):
        if self.step_control not in ("error", "relative_change"):
            raise ValueError(f"step_control must be 'error' or 'relative_change', got {self.step_control!r}")
        for name in ("rtol", "max_relative_change", "chunk_size", "max_substeps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def as_dict(self):
        from dataclasses import asdict
        return asdict(self)


@dataclass
class SolverResult:
    """Outcome of a batched integration.

    Attributes
    ----------
    x : ndarray, shape (n_vars, n_cells)
        State after dt (for failed cells: the last accepted state).
    success : ndarray of bool, shape (n_cells,)
    status : ndarray of int8
        Reason code, see :data:`STATUS`.
    substeps : ndarray of int
        Accepted substeps per cell.
    rejected : ndarray of int
        Rejected substep attempts per cell.
    time_reached : ndarray
        Time actually integrated [s] (equals dt where successful).
    """

    x: np.ndarray
    success: np.ndarray
    status: np.ndarray
    substeps: np.ndarray
    rejected: np.ndarray
    time_reached: np.ndarray

    @property
    def reasons(self):
        """Human-readable reason per cell."""
        return np.array([STATUS[int(s)] for s in self.status])


def integrate(network, x0, cell, dt, settings: SolverSettings | None = None, progress=None):
    """Advance ``x0`` by ``dt`` per cell with the batched Rosenbrock solver.

    Parameters
    ----------
    network : Network
        E.g. :class:`thermoemu.networks.PrimordialNetwork`.
    x0 : ndarray, shape (n_vars, n_cells)
        Initial state (abundances [1], temperature [K]).
    cell : dict
        Per-cell parameters from ``network.cell_parameters(n_H)``.
    dt : float or ndarray, shape (n_cells,)
        Time to integrate [s], >= 0.
    settings : SolverSettings, optional
    progress : callable, optional
        Called as ``progress(cells_done, cells_total)`` after each chunk.

    Returns
    -------
    SolverResult
    """
    settings = settings or SolverSettings()
    x0 = np.asarray(x0, dtype=float)
    n_vars, n = x0.shape
    dt = np.broadcast_to(np.asarray(dt, dtype=float), (n,)).copy()
    bad = ~np.isfinite(dt) | (dt < 0)
    if bad.any():
        raise ValueError(f"dt = {float(dt[bad][0]):g} s is not allowed; dt must be finite and >= 0 s")
    result = SolverResult(x=x0.copy(), success=np.zeros(n, bool), status=np.zeros(n, np.int8),
                          substeps=np.zeros(n, np.int64), rejected=np.zeros(n, np.int64),
                          time_reached=np.zeros(n))
    size = max(1, int(settings.chunk_size))
    for start in range(0, n, size):
        sl = slice(start, min(n, start + size))
        idx = np.arange(sl.start, sl.stop)
        _integrate_chunk(network, result, idx, network.take_cells(cell, idx), dt[sl], settings)
        if progress is not None:
            progress(sl.stop, n)
    return result


def _tolerances(settings, n_vars):
    atol = np.full((n_vars, 1), settings.atol_abundance)
    atol[-1] = settings.atol_temperature
    return atol


def _initial_step(f, x, dt, settings):
    """A conservative first substep: 1 % change of the fastest significant variable."""
    scale = np.maximum(np.abs(x), settings.change_floor)
    rate = np.max(np.abs(f) / scale, axis=0)
    h = 0.01 / np.maximum(rate, 1e-300)
    return np.clip(h, 1e-16 * dt, dt)


def _integrate_chunk(network, result, idx, cell, dt, settings):
    x = result.x[:, idx].copy()
    n_vars, n = x.shape
    t = np.zeros(n)
    steps = np.zeros(n, np.int64)
    rejected = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)
    done = dt <= 0.0
    atol = _tolerances(settings, n_vars)
    relative_mode = settings.step_control == "relative_change"
    abundance_rows = slice(0, n_vars - 1)
    eye = np.eye(n_vars)[:, :, None]

    active = np.nonzero(~done)[0]
    h = np.zeros(n)
    if active.size:
        f0 = network.rhs(x[:, active], network.take_cells(cell, active))
        h[active] = _initial_step(f0, x[:, active], dt[active], settings)

    while active.size:
        xa = x[:, active]
        ca = network.take_cells(cell, active)
        remaining = dt[active] - t[active]
        ha = np.minimum(h[active], remaining)
        f0, J = network.rhs_and_jacobian(xa, ca)
        lu, perm = lu_factor(eye / (ha * _GAMMA) - J)
        K = [None] * 4
        K[0] = lu_solve(lu, perm, f0.copy())
        K[1] = lu_solve(lu, perm, f0 + (_C[1, 0] / ha) * K[0])
        with np.errstate(all="ignore"):
            x3 = xa + _A[2, 0] * K[0]
            f3 = network.rhs(x3, ca)
            K[2] = lu_solve(lu, perm, f3 + (_C[2, 0] * K[0] + _C[2, 1] * K[1]) / ha)
            x4 = x3 + _A[3, 2] * K[2]
            f4 = network.rhs(x4, ca)
            K[3] = lu_solve(lu, perm, f4 + (_C[3, 0] * K[0] + _C[3, 1] * K[1] + _C[3, 2] * K[2]) / ha)
            x_new = x4 + K[3]  # m = (2, 0, 1, 1) = a4 + e4
            finite = np.isfinite(x_new).all(axis=0)
            if relative_mode:
                scale = np.abs(xa)
                significant = np.ones_like(xa, dtype=bool)
                significant[abundance_rows] = np.maximum(scale[abundance_rows], np.abs(x_new[abundance_rows])) >= settings.change_floor
                change = np.where(significant, np.abs(x_new - xa) / np.maximum(scale, 1e-300), 0.0)
                err = np.max(change, axis=0) / settings.max_relative_change
            else:
                tol = atol + settings.rtol * np.maximum(np.abs(xa), np.abs(x_new))
                err = np.max(np.abs(K[3]) / tol, axis=0)
            # negative excursions beyond the tolerance count as error; in relative-change mode
            # abundances below change_floor are ignored like everywhere else in that mode
            if relative_mode:
                allowed = settings.max_relative_change * np.abs(xa)
                allowed[abundance_rows] = np.maximum(allowed[abundance_rows], settings.change_floor)
            else:
                allowed = atol + settings.rtol * np.abs(xa)
            neg = np.max(np.where(x_new < 0, -x_new, 0.0) / allowed, axis=0)
            err = np.where(finite, np.maximum(err, neg), np.inf)
        accept = err <= 1.0
        acc = active[accept]
        x_acc = x_new[:, accept]
        x_acc[abundance_rows] = np.maximum(x_acc[abundance_rows], settings.abundance_floor)
        x[:, acc] = x_acc
        t[acc] += ha[accept]
        steps[acc] += 1
        rejected[active[~accept]] += 1
        # step-size update
        with np.errstate(divide="ignore", invalid="ignore"):
            if relative_mode:
                factor = np.clip(0.9 / np.maximum(err, 1e-10), 0.2, 2.0)
            else:
                factor = np.clip(0.9 * np.maximum(err, 1e-10) ** (-1.0 / _ORDER_ESTIMATE), 0.2, 6.0)
        factor = np.where(np.isfinite(err), factor, 0.1)
        factor = np.where(accept, factor, np.minimum(factor, 0.5))
        h[active] = ha * factor
        # bookkeeping: finished, failed
        finished = t[active] >= dt[active] * (1.0 - 1e-12)
        too_many = steps[active] + rejected[active] >= settings.max_substeps
        underflow = h[active] < 1e-20 * dt[active]
        nonfinite = ~finite & (h[active] < 1e-18 * dt[active])
        status[active] = np.where(finished, 0, np.where(nonfinite, 3, np.where(underflow, 2, np.where(too_many, 1, 0))))
        stop = finished | too_many | underflow | nonfinite
        done[active[stop]] = True
        active = active[~stop]

    result.x[:, idx] = network.project(x) if settings.project else x
    ok = (status == 0) & (t >= dt * (1.0 - 1e-12))
    result.success[idx] = ok
    result.status[idx] = status
    result.substeps[idx] = steps
    result.rejected[idx] = rejected
    result.time_reached[idx] = np.minimum(t, dt)
