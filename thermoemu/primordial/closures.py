"""Trace species from their production and destruction rates instead of a net.

H- and H2+ are made and destroyed far faster than the other species change (their relaxation
times, 1 / (destruction rate per particle), are short against the free-fall time at every density),
so after a step of a simulation's length their abundance is set by the other species and the
temperature at the end of the step, not by where they started; where a step is shorter than
their relaxation, the frozen-rate solution below keeps the memory of the start. This is the equilibrium treatment of the two trace species of
Abel et al. (1997, New Astron. 2, 181) and Anninos et al. (1997, New Astron. 2, 209), whose chemistry
solver became Grackle's.

Both are linear in themselves in the network's mass-action rates (no reaction has two H- or two
H2+ among its reactants), so with the other variables held at their end values ``z`` the trace
subsystem is exactly linear,

    d y_t / dt = f_t(y_t, z) = J_tt (y_t - y_t*),      y_t* = y_t - J_tt^-1 f_t(y_t, z),

where ``J_tt`` is the 2 x 2 block of the network's analytic Jacobian for (H-, H2+) (it holds their
coupling through H- + H+ -> H2+ + e-). The closure takes one right-hand side and Jacobian of the
network per cell (no fitted coefficient: every rate is the network's) and returns

    y_t(dt) = y_t* + exp(J_tt dt) (y_t(0) - y_t*),

the exact solution of that linear system with the rates frozen at the end state, which is y_t*
itself wherever dt is many relaxation times and relaxes from the initial value where it is not.
``exp(J_tt dt)`` is evaluated in closed form for a 2 x 2 matrix with real eigenvalues.
"""

from __future__ import annotations

import numpy as np

from .physics.network import as_cells

__all__ = ["TRACE_INDICES", "balance_from", "close_trace_species", "relax_towards", "trace_equilibrium"]

#: H- and H2+ in network order.
TRACE_INDICES = (4, 5)


def _expm_2x2(a, b, c, d, dt):
    """Entries of ``exp(M dt)`` for ``M = [[a, b], [c, d]]`` per cell (closed form, real eigenvalues).

    With eigenvalues l1 = s + q, l2 = s - q (s = tr / 2, q^2 = (a - d)^2 / 4 + b c >= 0):
    ``exp(M t) = (e^{l1 t} (M - l2 I) - e^{l2 t} (M - l1 I)) / (l1 - l2)``, and
    ``e^{s t} (I + t (M - s I))`` where the eigenvalues coincide.
    """
    s = 0.5 * (a + d)
    q = np.sqrt(np.maximum(0.25 * (a - d) ** 2 + b * c, 0.0))
    e1 = np.exp(np.minimum((s + q) * dt, 700.0))
    e2 = np.exp(np.minimum((s - q) * dt, 700.0))
    distinct = q * dt > 1e-8
    two_q = np.where(distinct, 2.0 * q, 1.0)
    # distinct: ((e1 - e2)/(2q)) M + ((e2 (s + q) - e1 (s - q)) / (2q)) I
    w = np.where(distinct, (e1 - e2) / two_q, dt * np.exp(np.minimum(s * dt, 700.0)))
    v = np.where(distinct, (e2 * (s + q) - e1 * (s - q)) / two_q, np.exp(np.minimum(s * dt, 700.0)) * (1 - s * dt))
    return w * a + v, w * b, w * c, w * d + v


def trace_equilibrium(network, cells, x):
    """The balance values y_t* of H- and H2+ and the 2 x 2 block J_tt at the state ``x``.

    Parameters
    ----------
    network : PrimordialNetwork
    cells : mapping ``{"n_H": ...}`` or ndarray (N,)
        n_H [cm^-3].
    x : ndarray (7, N)
        State in network order (abundances [1], temperature [K]).

    Returns
    -------
    y_star : ndarray (2, N)
        Abundances of H- and H2+ at which their production and destruction balance [1].
    J_tt : ndarray (2, 2, N)
        d f_t / d y_t [s^-1].
    """
    n_H = as_cells(cells)
    x = np.asarray(x, dtype=float)
    cell = network.cell_parameters(n_H)
    backend = getattr(network, "compiled_backend", None)
    if backend is not None and backend.supports(network, x):  # the same values, cell by cell, compiled
        f, J = backend.evaluate_cells(network, x, cell)
    else:
        f, J = network.rhs_and_jacobian(x, cell)
    i, j = TRACE_INDICES
    return np.stack(balance_from(x, f, J)), np.stack([np.stack([J[i, i], J[i, j]]), np.stack([J[j, i], J[j, j]])])


def balance_from(x, f, J):
    """y* of H- and H2+ from the right-hand side ``f`` (7, N) and Jacobian ``J`` (7, 7, N) at ``x``:
    ``y - J_tt^-1 f_t`` (one Newton step of the trace balance), floored at 0; x's values where J_tt
    is singular. Returns (y*(H-), y*(H2+))."""
    i, j = TRACE_INDICES
    a, b, c, d = J[i, i], J[i, j], J[j, i], J[j, j]
    det = a * d - b * c
    safe = np.where(det != 0, det, 1.0)
    # J_tt^-1 = [[d, -b], [-c, a]] / det
    y_i = np.maximum(x[i] - (d * f[i] - b * f[j]) / safe, 0.0)
    y_j = np.maximum(x[j] - (-c * f[i] + a * f[j]) / safe, 0.0)
    return np.where(det != 0, y_i, x[i]), np.where(det != 0, y_j, x[j])


def close_trace_species(network, cells, x_end, x_start, dt):
    """Replace H- and H2+ of ``x_end`` by their frozen-rate solution over ``dt`` (module docstring).

    Parameters
    ----------
    network : PrimordialNetwork
    cells : mapping ``{"n_H": ...}`` or ndarray (N,)
        n_H [cm^-3].
    x_end : ndarray (7, N)
        Predicted end state; its H, H2, e-, H+ and T set the rates.
    x_start : ndarray (7, N)
        State at the start of the step (gives the trace species' initial values).
    dt : ndarray (N,) or float
        Step [s].

    Returns
    -------
    ndarray (7, N)
        ``x_end`` with rows H- and H2+ replaced (a new array). Conservation is not re-imposed here.
    """
    x_end = np.array(x_end, dtype=float)
    x_start = np.asarray(x_start, dtype=float)
    dt = np.broadcast_to(np.asarray(dt, dtype=float), x_end.shape[1:])
    y_star, J = trace_equilibrium(network, cells, x_end)
    e00, e01, e10, e11 = _expm_2x2(J[0, 0], J[0, 1], J[1, 0], J[1, 1], dt)
    i, j = TRACE_INDICES
    x_end[i], x_end[j] = relax_towards(x_start[i], x_start[j], y_star[0], y_star[1], e00, e01, e10, e11)
    return x_end


def relax_towards(x4, x5, y4, y5, e00, e01, e10, e11):
    """``y* + E (x - y*)`` for E = exp(J_tt t), written without losing x where E ~ I or y* where E ~ 0.

    Where E is close to the identity (t short against the relaxation) it is evaluated as
    ``x + (E - I)(x - y*)``, which is x exactly at t = 0; elsewhere as ``y* + E (x - y*)``. Floored at 0.
    """
    d4, d5 = x4 - y4, x5 - y5
    near_identity = np.abs(e00 - 1.0) + np.abs(e01) + np.abs(e10) + np.abs(e11 - 1.0) < 0.5
    a = np.where(near_identity, x4 + (e00 - 1.0) * d4 + e01 * d5, y4 + e00 * d4 + e01 * d5)
    b = np.where(near_identity, x5 + e10 * d4 + (e11 - 1.0) * d5, y5 + e10 * d4 + e11 * d5)
    return np.maximum(a, 0.0), np.maximum(b, 0.0)
