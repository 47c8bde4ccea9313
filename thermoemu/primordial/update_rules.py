"""Update rules: how far along the predicted change x(tau) - x0 a step dt < tau moves.

All rules write the update of one variable as ``x' = x0 + w (x(tau) - x0)`` with ``w`` in [0, 1]
and tau = tau_eps (capped at dt_max); for dt >= tau the step takes the prediction x(dt) itself
(``tangent_fraction`` may also step against the predicted change, w in [-1, 0]).

``chord_fraction`` is OS25 eq. 8: ``w = dt / tau``, the straight chord from x0 to x(tau). It
stands for the tangent only if the path is straight. Where the change decelerates (H2 formation
and cooling below 1e12 cm^-3) it is too slow, and where a variable relaxes to a balance in a small
part of tau (T and H above 1e13 cm^-3) it spreads that relaxation over tau (docs/emulator.md,
"the update rule's own floor").

``shaped_fraction`` (ours, ``update="shaped"``) reads the path's shape from a second prediction,
x(tau / q), and fits the one-parameter family of exponential paths through x0, x(tau/q) and x(tau),

    x(t) - x0 = (x(tau) - x0) * expm1(-a t / tau) / expm1(-a),

with a > 0 decelerating (a relaxation on the timescale tau / a), a = 0 the straight chord (eq. 8)
and a < 0 accelerating. ``a`` follows from the measured ratio ``r = (x(tau/q) - x0) / (x(tau) - x0)``
(``r = 1/q`` for a straight path), clipped to |a| <= ``SHAPE_MAX``; then ``w = expm1(-a dt/tau) /
expm1(-a)``. Neither end of w's range amplifies a prediction error from step to step: ``w -> 1``
moves to the predicted end state x(tau), which near a balance is the balance whatever x0 was,
and ``w -> 0`` stays put. But a probe of the wrong sign (a noisy predictor) gives ``a = -SHAPE_MAX``
and freezes the variable for every step shorter than tau, a lag that does accumulate; the rule
needs predictions accurate well below the change eps / q over tau / q (docs/emulator.md).

``tangent_fraction`` (ours, ``update="tangent"``) takes the path's shape from the rate equations
instead of a second prediction: the same exponential family, with ``a`` fixed by the initial
slope x'(0) = s, ``s tau / (x(tau) - x0) = a / (1 - e^-a)``. The slope is the linearly implicit
(Rosenbrock-Euler) rate ``(I - dt J)^-1 f`` of the network at x0 (``implicit_slope``), so that the
microsecond relaxation of H- and H2+ is not read as a fast change of e-. For dt << tau / a the
step is then the linearly implicit step s dt itself, whatever the predicted x(tau); x(tau) bends
the path over longer steps and bounds it. Where the slope opposes the predicted change (a path
that turns within tau, which no member of the family can follow) the step is s dt, bounded by
|x(tau) - x0|. Above ``BACKWARD_EULER_DENSITY`` (1e15 cm^-3) the linearization of the stiff
H2-dissociation / temperature balance fails (the linearly implicit step has the wrong sign even
at 1e-3 t_ff near 1e17 cm^-3), and the nets' x(tau) there is not accurate enough to bound or bend
the step. There a variable with dt < tau takes the network's backward-Euler step over dt
(``backward_euler_step``: Newton with a line search from the linearly implicit step, converged to
1e-6; the reference solver's step for cells where Newton does not converge or the step changes a
variable by more than eps, where backward Euler is no longer accurate), x' = x0 + s dt, unbounded
(w outside [-1, 1] too). At short steps in region 4 the "emulator" is then an implicit integrator
of the network, and the nets only choose where (dt < tau) and take the steps dt >= tau.
"""

from __future__ import annotations

import numpy as np

from .physics_step import relative_change

__all__ = ["chord_fraction", "shaped_fraction", "shape_parameter", "tangent_fraction", "tangent_shape_parameter",
           "implicit_slope", "backward_euler_step", "network_slope", "update_fraction", "SHAPE_PROBE",
           "SHAPE_MAX", "TANGENT_MAX", "BACKWARD_EULER_DENSITY"]

#: q of the second prediction, x(tau / q).
SHAPE_PROBE = 30.0
#: Largest |a| of the fitted exponential path (tau / a is its relaxation time).
SHAPE_MAX = 150.0
#: Largest |a| of the tangent rule's path (its slope resolves far faster relaxations than a probe).
TANGENT_MAX = 1e6
#: n_H [cm^-3] above which ``update="tangent"`` takes the network's backward-Euler step (module docstring).
BACKWARD_EULER_DENSITY = 1e15


def chord_fraction(dt, tau):
    """OS25 eq. 8: ``dt / tau`` where dt < tau, else 1 (arrays broadcast; tau > 0 or the result is 1)."""
    dt, tau = np.broadcast_arrays(np.asarray(dt, dtype=float), np.asarray(tau, dtype=float))
    return np.where(dt < tau, dt / np.where(tau > 0, tau, 1.0), 1.0)


def _path(a, u):
    """expm1(-a u) / expm1(-a): the exponential path's fraction of the change at time u = t / tau."""
    a, u = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(u, dtype=float))
    b = np.where(np.abs(a) < 1e-8, 1.0, np.abs(a))
    decelerating = np.expm1(-b * u) / np.expm1(-b)
    # a < 0: (e^{b u} - 1) / (e^b - 1) written without overflow
    accelerating = np.exp(b * (u - 1.0)) * np.expm1(-b * u) / np.expm1(-b)
    return np.where(np.abs(a) < 1e-8, u, np.where(a > 0, decelerating, accelerating))


def _shape_table(q, a_max, points=4001):
    a = np.linspace(-a_max, a_max, points)
    return a, _path(a, 1.0 / q)


_TABLES: dict = {}


def shape_parameter(ratio, *, q=SHAPE_PROBE, a_max=SHAPE_MAX):
    """The exponential path's ``a`` from ``ratio = (x(tau/q) - x0) / (x(tau) - x0)``.

    Clipped to |a| <= a_max; a NaN ratio gives a = 0 (the straight chord, eq. 8).
    """
    key = (float(q), float(a_max))
    if key not in _TABLES:
        _TABLES[key] = _shape_table(*key)
    a, g = _TABLES[key]
    return np.interp(np.nan_to_num(ratio, nan=1.0 / q), g, a)  # g rises with a; np.interp clips at the ends


def shaped_fraction(dt, tau, change_probe, change_tau, *, q=SHAPE_PROBE, a_max=SHAPE_MAX):
    """Fraction ``w`` of the change x(tau) - x0 reached after dt along the fitted exponential path.

    Parameters
    ----------
    dt : array
        Step [s].
    tau : array
        tau_eps [s], capped at dt_max.
    change_probe : array
        Predicted change after tau / q, x(tau/q) - x0 (same units as x).
    change_tau : array
        Predicted change after tau, x(tau) - x0.
    q : float
        Probe divisor (> 1).
    a_max : float
        Bound on |a|.

    Returns
    -------
    ndarray
        w in [0, 1]; 1 where dt >= tau; dt / tau (eq. 8) where the predicted change is zero.
    """
    if not q > 1:
        raise ValueError(f"q = {q!r}; must be > 1")
    if not (np.isfinite(a_max) and a_max > 0):
        raise ValueError(f"a_max = {a_max!r}; must be finite and > 0")
    dt, tau, dp, dtau = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in
                                              (dt, tau, change_probe, change_tau)))
    zero = dtau == 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = np.where(zero, 1.0 / q, dp / np.where(zero, 1.0, dtau))
    a = shape_parameter(ratio, q=q, a_max=a_max)
    u = np.clip(dt / np.where(tau > 0, tau, 1.0), 0.0, 1.0)
    return np.where(dt < tau, np.clip(_path(a, u), 0.0, 1.0), 1.0)


def _tangent_table(a_max, points=4001):
    pos = np.geomspace(1e-6, a_max, points // 2)
    a = np.concatenate([-pos[::-1], [0.0], pos])
    with np.errstate(over="ignore"):
        g = np.where(a == 0, 1.0, a / -np.expm1(-np.where(a == 0, 1.0, a)))
    return a, g


def tangent_shape_parameter(slope_ratio, *, a_max=TANGENT_MAX):
    """The exponential path's ``a`` from its initial slope: ``slope_ratio = x'(0) tau / (x(tau) - x0)``.

    The path's slope at 0 is ``(x(tau) - x0) / tau * a / (1 - e^-a)``, and ``a / (1 - e^-a)``
    rises from 0 (a -> -inf) through 1 (a = 0, the chord) to ~a (a >> 1). Clipped to |a| <=
    a_max; a NaN ratio gives a = 0.
    """
    key = ("tangent", float(a_max))
    if key not in _TABLES:
        _TABLES[key] = _tangent_table(float(a_max))
    a, g = _TABLES[key]
    return np.interp(np.nan_to_num(slope_ratio, nan=1.0), g, a)  # g rises with a


def tangent_fraction(dt, tau, slope, change_tau, *, max_change=np.inf, a_max=TANGENT_MAX):
    """Fraction ``w`` of x(tau) - x0 after dt along the exponential path with initial slope ``slope``.

    Parameters
    ----------
    dt : array
        Step [s].
    tau : array
        tau_eps [s], capped at dt_max.
    slope : array
        dx/dt at x0 [x s^-1] (``implicit_slope``); NaN gives eq. 8's chord.
    change_tau : array
        Predicted change after tau, x(tau) - x0.
    max_change : array
        Bound on |x' - x0| where the slope opposes the predicted change (``update_fraction``
        passes eps |x0|: no variable changes by more than eps before its tau_eps).
    a_max : float
        Bound on |a|.

    Returns
    -------
    ndarray
        w in [-1, 1]: 1 where dt >= tau; ``slope dt / (x(tau) - x0)`` clipped to [-1, 0] and to
        ``max_change`` where the slope opposes the predicted change; dt / tau where that change
        is zero.
    """
    if not (np.isfinite(a_max) and a_max > 0):
        raise ValueError(f"a_max = {a_max!r}; must be finite and > 0")
    dt, tau, f, dtau, bound = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in
                                                     (dt, tau, slope, change_tau, max_change)))
    zero = dtau == 0
    u = np.clip(dt / np.where(tau > 0, tau, 1.0), 0.0, 1.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = np.where(zero, 1.0, f * tau / np.where(zero, 1.0, dtau))
        step = np.where(zero, 0.0, f * dt / np.where(zero, 1.0, dtau))
        lowest = -np.minimum(1.0, np.where(zero, 0.0, bound / np.abs(np.where(zero, 1.0, dtau))))
    along = np.clip(_path(tangent_shape_parameter(ratio, a_max=a_max), u), 0.0, 1.0)
    w = np.where(ratio > 0, along, np.clip(step, lowest, 0.0))
    w = np.where(np.isfinite(f), w, u)
    return np.where(dt < tau, w, 1.0)


def implicit_slope(f, J, dt):
    """The linearly implicit (Rosenbrock-Euler) rate ``(I - dt J)^-1 f``, shape (N, n), over steps dt (N,).

    ``f`` (n, N) and ``J`` (n, n, N) are the rate equations' right-hand side and Jacobian at x0.
    It is the tangent with the stiff modes (H- and H2+ relax in microseconds) damped to what they
    can do within dt, so that they do not pass for a fast change of a slow variable (e-).
    """
    f = np.asarray(f, dtype=float).T
    J = np.moveaxis(np.asarray(J, dtype=float), -1, 0)
    A = np.eye(f.shape[1])[None] - np.asarray(dt, dtype=float).reshape(-1, 1, 1) * J
    with np.errstate(all="ignore"):
        return np.linalg.solve(A, f[..., None])[..., 0]


def backward_euler_step(network, n_H, x, dt, *, max_change=np.inf, rtol=1e-6, max_iterations=30, settings=None):
    """The network's backward-Euler step ``x1 = x0 + dt f(x1)`` per cell, by Newton's method.

    Newton starts from x0 (its first iterate is the linearly implicit step) and each iterate is
    damped by halving until the scaled residual ``|(x1 - x0 - dt f(x1)) / x0|`` decreases (at most
    10 halvings; abundances are kept >= 1e-40). It has converged when the last change of every
    variable is below ``rtol`` of its value (``1e-3`` for abundances below 1e-6, whose round-off
    stalls it). Cells where it does not converge within ``max_iterations`` (near 1e17-1e18 cm^-3
    the Jacobian's condition number reaches 1e20 and Newton may cycle), or where the step changes
    T or an abundance above 1e-6 by more than ``max_change`` (relative), take the reference
    solver's step over dt instead. On random region-4 states over 1e-3 t_ff the backward-Euler T
    is the solver's to 3.5e-5 dex where every change is below 0.1, but off by up to 0.3 dex in fast
    transients (changes above 30 %; benchmarks/bench_emulator.py --region 4, docs/emulator.md).

    Parameters
    ----------
    network : PrimordialNetwork
    n_H : array (N,)
        [cm^-3]
    x : array (n, N)
        Abundances and temperature [K] at the start.
    dt : array (N,)
        Step [s].
    max_change : float
        Largest relative change of T and of the abundances above 1e-6 that the step may take.
    rtol : float
        Convergence tolerance of Newton's method.
    max_iterations : int
    settings : SolverSettings, optional
        Of the reference solver for the cells where Newton does not converge.

    Returns
    -------
    x1 : ndarray (n, N)
    newton : ndarray of bool (N,)
        True where the backward-Euler step was taken, False where the reference solver's.
    """
    from ..solvers.rosenbrock import integrate

    n_H, dt = np.asarray(n_H, dtype=float), np.asarray(dt, dtype=float)
    x0 = np.asarray(x, dtype=float)
    cells = network.cell_parameters(n_H)
    nvar = x0.shape[0]
    scale = np.abs(x0) + np.r_[np.full(nvar - 1, 1e-30), 0.0][:, None]
    x1, converged = x0.copy(), np.zeros(n_H.size, dtype=bool)
    active = np.arange(n_H.size)

    def merit_of(xc, idx, cell):
        with np.errstate(all="ignore"):
            return (((xc - x0[:, idx] - dt[idx] * network.rhs(xc, cell)) / scale[:, idx]) ** 2).sum(axis=0)

    for _ in range(max_iterations):
        if not active.size:
            break
        cell = network.take_cells(cells, active)
        xa = x1[:, active]
        f, J = network.rhs_and_jacobian(xa, cell)
        g = xa - x0[:, active] - dt[active] * f
        merit = ((g / scale[:, active]) ** 2).sum(axis=0)
        A = np.eye(nvar)[None] - dt[active, None, None] * np.moveaxis(J, -1, 0)
        with np.errstate(all="ignore"):
            d = np.linalg.solve(A, -g.T[..., None])[..., 0].T
        lam, accepted, new = np.ones(active.size), np.zeros(active.size, dtype=bool), xa.copy()
        for _ in range(10):
            todo = np.flatnonzero(~accepted)
            if not todo.size:
                break
            trial = xa[:, todo] + lam[todo] * d[:, todo]
            trial[:-1] = np.maximum(trial[:-1], 1e-40)
            m = merit_of(trial, active[todo], network.take_cells(cell, todo))
            good = np.isfinite(m) & (m <= (1.0 - 1e-4 * lam[todo]) * merit[todo])
            new[:, todo[good]] = trial[:, good]
            accepted[todo[good]] = True
            lam[todo[~good]] *= 0.5
        tol = np.where(np.abs(new) >= 1e-6, rtol, 1e-3) * np.abs(new)
        tol[-1] = rtol * np.abs(new[-1])
        done = accepted & (np.abs(new - xa) <= tol).all(axis=0)
        x1[:, active] = new
        converged[active[done]] = True
        active = active[~done & accepted]
    converged &= relative_change(x0, x1) <= max_change
    failed = np.flatnonzero(~converged)
    if failed.size:
        x1[:, failed] = integrate(network, x0[:, failed], network.take_cells(cells, failed), dt[failed], settings).x
    return x1, converged


def network_slope(network, n_H, x, dt, eps=0.1, settings=None):
    """The network's rate over dt at states x (n, N), and where it is a backward-Euler step.

    ``implicit_slope`` (linearly implicit) up to BACKWARD_EULER_DENSITY; above it
    ``(backward_euler_step - x) / dt`` with ``max_change=eps`` (module docstring).

    Parameters
    ----------
    network : PrimordialNetwork
    n_H : array (N,)
        [cm^-3]
    x : array (n, N)
        Abundances and temperature [K].
    dt : array (N,)
        Step [s].
    eps : float
        The relative change that defines tau_eps: a backward-Euler step that changes a variable by
        more than eps (a step longer than its tau) is replaced by the reference solver's.
    settings : SolverSettings, optional
        Of that reference solver (the caller's, e.g. the Emulator's fallback settings).

    Returns
    -------
    slope : ndarray (N, n)
        [x s^-1]
    backward_euler : ndarray of bool (N,)
        True where the slope is a backward-Euler step's (the tangent rule takes it unbounded).
    """
    n_H, dt = np.asarray(n_H, dtype=float), np.asarray(dt, dtype=float)
    slope = np.empty((n_H.size, x.shape[0]))
    dense = n_H > BACKWARD_EULER_DENSITY
    low = np.flatnonzero(~dense)
    if low.size:
        f, J = network.rhs_and_jacobian(x[:, low], network.cell_parameters(n_H[low]))
        slope[low] = implicit_slope(f, J, dt[low])
    high = np.flatnonzero(dense)
    if high.size:
        x1, _ = backward_euler_step(network, n_H[high], x[:, high], dt[high], max_change=eps,
                                    settings=settings)
        slope[high] = ((x1 - x[:, high]) / dt[high]).T
    return slope, dense


def update_fraction(update, dt, tau, start, pred, probe_at, slope_at=None, eps=0.1):
    """Fraction w (N, 7) of the change pred - x0 that a step takes, for ``update`` "timescale", "shaped" or "tangent".

    Parameters
    ----------
    update : {"timescale", "shaped", "tangent"}
    dt : array (N,)
        Step [s].
    tau : array (N, 7)
        tau_eps [s], capped at dt_max.
    start : array (N, 7)
        The state the predictions start from (the shape is read relative to it).
    pred : array (N, 7)
        Prediction at max(dt, tau).
    probe_at : callable
        ``probe_at(rows)`` -> prediction (len(rows), 7) at tau[rows] / SHAPE_PROBE; called only for
        the cells with dt < tau in some variable, the only ones where the shape matters.
    slope_at : callable, optional
        For "tangent": ``slope_at(rows)`` -> (dx/dt (len(rows), 7), backward_euler (len(rows),)), as
        ``network_slope`` returns them, called for the same cells. Where ``backward_euler`` the
        step is x0 + slope dt itself for the variables with dt < tau.
    eps : float
        The relative change that defines tau_eps (bounds the tangent rule's step against the
        predicted change).
    """
    frac = chord_fraction(dt[:, None], tau)
    if update not in ("shaped", "tangent"):
        return frac
    rows = np.flatnonzero((dt[:, None] < tau).any(axis=1))
    if rows.size and update == "tangent":
        slope, exact = slope_at(rows)
        change = pred[rows] - start[rows]
        frac[rows] = tangent_fraction(dt[rows, None], tau[rows], slope, change, max_change=eps * np.abs(start[rows]))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = slope * dt[rows, None] / change         # the backward-Euler step as a fraction of the change
        take = exact[:, None] & (dt[rows, None] < tau[rows]) & np.isfinite(step)
        frac[rows] = np.where(take, step, frac[rows])
    elif rows.size:
        frac[rows] = shaped_fraction(dt[rows, None], tau[rows], probe_at(rows) - start[rows],
                                     pred[rows] - start[rows])
    return frac
