"""A cheap physics step: linearly implicit Euler of the network with H- and H2+ at their balance.

The physics-first emulators (docs/emulator.md, "physics-first models") learn only the remainder
between the reference end state and this step. The step is the network's own:

1. The trace species are moved towards the balance of their production and destruction
   (:func:`~thermoemu.primordial.closures.trace_equilibrium`) by the frozen-rate solution over the
   substep (the balance itself wherever the substep is many of their relaxation times, which
   removes the network's fastest modes; nothing where it is far shorter, so dt = 0 changes nothing).
2. The other five variables z = (H, H2, e-, H+, T) take ``k`` linearly implicit (Rosenbrock-Euler)
   substeps ``(I - h J_eff) dz = h f_z`` of the reduced system, where ``J_eff = J_zz - J_zt J_tt^-1
   J_tz`` is the Jacobian of z' with the trace species held at their balance (the Schur complement
   of the network's analytic Jacobian), abundances floored and projected onto hydrogen and charge
   conservation after each substep. The substeps grow geometrically (h_i proportional to 2^i), so
   that fast initial transients get short steps; a substep that would change the temperature by
   more than a factor 2 or leave a non-finite state is not taken (the cell keeps its state for that
   substep). The right-hand side is carried to the balanced trace values to first order (f + J_zt
   dy_t), and the Jacobian evaluated again only where the balance moved a trace species by more than
   10 % (near a collapse track it barely moves them: one evaluation per substep).
   Where one substep over the whole dt is *gentle* (accepted, and no slow variable above an
   abundance of 1e-8 changes by more than ``GENTLE_CHANGE_DEX``), that single substep is the
   step; elsewhere the step is redone from x0 with ``substeps`` geometric substeps. Near a collapse
   track almost every step is gentle (one substep), far from equilibrium few are.
   The local error of a single-substep step is estimated for free from the rates at its two ends,
   ``h |f(x1) - f(x0)| / 2`` relative to x1 (the leading error term of the linearly implicit Euler
   step, h^2 J f / 2), together with the charge that balancing H- and H2+ at the start moved
   relative to e- and H+; the residual nets are not applied where it is below ``PHYSICS_TRUST``.
3. The trace species at the end come from :func:`~thermoemu.primordial.closures.close_trace_species`
   (the frozen-rate solution from their initial values over dt).

Cost per cell: one Jacobian evaluation per substep (two where balancing the trace species moved
them by more than 10 %), one more at the end for the trace closure and the error estimate, and a
5 x 5 solve per substep; where one substep is not gentle, those of the ``substeps`` substeps on top.
Compiled: a few microseconds per cell near a collapse track (benchmarks/bench_physics_first.py).
Measured against the reference solver (docs/emulator.md): within 5 % in every variable for 99-100 %
of single steps of up to 0.1 t_ff from states along the reference collapse track below 1e13 cm^-3;
on random Table 1 states far from equilibrium it is only a baseline the nets correct.
"""

from __future__ import annotations

import numpy as np

from .closures import _expm_2x2, balance_from, close_trace_species, relax_towards
from .physics.network import as_cells, project_abundances

__all__ = ["SLOW_INDICES", "PHYSICS_TRUST", "physics_constants", "physics_step", "substep_fractions",
           "backward_euler_answer"]

#: H, H2, e-, H+ and T in network order: the variables the step integrates.
SLOW_INDICES = (0, 1, 2, 3, 6)
_TRACE = (4, 5)
#: A substep may change T by at most this factor down (and its inverse up), or it is not taken.
MIN_TEMPERATURE_RATIO = 0.5
#: Re-evaluate the Jacobian after balancing H- and H2+ where either moved by more than this fraction.
TRACE_REEVALUATE = 0.1
#: A single substep changing no slow variable by more than this [dex] is taken as the step.
GENTLE_CHANGE_DEX = 0.3
#: Where the estimated relative local error of a single-substep step is below this, the physics step is
#: the answer (the residual nets' corrections are not applied: over many short steps their errors would add
#: up, and near a collapse track the nets, trained on random states, are less accurate than the step).
#: Chosen by measurement (docs/emulator.md): from 1e-3 to 0.1, single steps of 0.1 t_ff from snapshot-like
#: states within 5 % of the reference rise from 87 to 99.8 % (T) while Table 2 does not change.
PHYSICS_TRUST = 0.1
#: Abundances below this are not looked at by the gentleness test.
GENTLE_MIN_ABUNDANCE = 1e-8
#: Smallest abundance kept by a substep (as the emulators' log floor).
_FLOOR = 1e-40


def physics_constants():
    """The constants that decide the physics step and where a residual net is applied (recorded in a
    physics-first model's artifact and checked when it is loaded)."""
    return {"PHYSICS_TRUST": PHYSICS_TRUST, "GENTLE_CHANGE_DEX": GENTLE_CHANGE_DEX,
            "GENTLE_MIN_ABUNDANCE": GENTLE_MIN_ABUNDANCE, "MIN_TEMPERATURE_RATIO": MIN_TEMPERATURE_RATIO,
            "TRACE_REEVALUATE": TRACE_REEVALUATE}


def _reduced_step(network, n_H, cell, x, h, return_rate=False):
    """One linearly implicit substep of the reduced system (module docstring, step 2); returns a new x
    (and, with ``return_rate``, the right-hand side at the start with the trace species balanced)."""
    x = x.copy()
    f, J = network.rhs_and_jacobian(x, cell)
    before = x[4:6].copy()
    y4, y5 = balance_from(x, f, J)
    # relax towards the balance over h (frozen rates; the balance itself where h is many relaxation times)
    x[4], x[5] = relax_towards(before[0], before[1], y4, y5, *_expm_2x2(J[4, 4], J[4, 5], J[5, 4], J[5, 5], h))
    moved_charge = np.abs(x[4] - before[0]) + np.abs(x[5] - before[1])
    f = f + J[:, 4] * (x[4] - before[0]) + J[:, 5] * (x[5] - before[1])  # f at the balanced trace, to first order
    moved = (np.abs(x[4:6] - before) > TRACE_REEVALUATE * np.maximum(before, 1e-300)).any(axis=0)
    if moved.any():
        idx = np.flatnonzero(moved)
        f2, J2 = network.rhs_and_jacobian(x[:, idx], network.take_cells(cell, idx))
        f[:, idx], J[:, :, idx] = f2, J2
    z, t = list(SLOW_INDICES), list(_TRACE)
    Jzz = np.moveaxis(J[np.ix_(z, z)], -1, 0)  # (N, 5, 5)
    Jzt = np.moveaxis(J[np.ix_(z, t)], -1, 0)  # (N, 5, 2)
    Jtz = np.moveaxis(J[np.ix_(t, z)], -1, 0)  # (N, 2, 5)
    a, b, c, d = J[4, 4], J[4, 5], J[5, 4], J[5, 5]
    det = a * d - b * c
    ok = np.abs(det) > 0
    safe = np.where(ok, det, 1.0)
    inv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / safe[:, None, None]
    inv[~ok] = 0.0  # no trace coupling where the block is singular (destroyers absent)
    J_eff = Jzz - Jzt @ inv @ Jtz
    A = np.eye(5)[None] - h[:, None, None] * J_eff
    with np.errstate(all="ignore"):
        dz = np.linalg.solve(A, (h * f[z]).T[..., None])[..., 0]
    x[z] = x[z] + dz.T
    x[:6] = np.maximum(project_abundances(np.maximum(x[:6], _FLOOR)), _FLOOR)
    return (x, f, moved_charge) if return_rate else x


def _balanced_rate(network, cell, x):
    """The right-hand side at x with H- and H2+ carried to their balance to first order."""
    f, J = network.rhs_and_jacobian(x, cell)
    y4, y5 = balance_from(x, f, J)
    return f + J[:, 4] * (y4 - x[4]) + J[:, 5] * (y5 - x[5])


def _local_error(x0, x1, f0, f1, h, moved_charge):
    """Estimated local error of one linearly implicit step, relative, max over the slow variables
    above GENTLE_MIN_ABUNDANCE (T always): ``h |f(x1) - f(x0)| / 2`` (module docstring), and the charge
    that balancing H- and H2+ at the start moved, relative to the smaller of e- and H+ (where the
    start's trace species are far from their balance, where that charge goes is not modelled)."""
    z = list(SLOW_INDICES)
    with np.errstate(all="ignore"):
        err = 0.5 * h * np.abs(f1[z] - f0[z]) / np.maximum(np.abs(x1[z]), _FLOOR)
    big = np.maximum(x0[z], x1[z]) > GENTLE_MIN_ABUNDANCE
    big[-1] = True
    return np.maximum(np.where(big, err, 0.0).max(axis=0), moved_charge / np.maximum(np.minimum(x0[2], x0[3]), _FLOOR))


def substep_fractions(substeps, uniform=1):
    """Fractions of dt of the substeps (sum 1).

    ``uniform = 1`` (the default): geometric, h_i proportional to 2^i, so the last substep is half of dt.
    ``uniform = U > 1``: the last U substeps are equal and the ``substeps - U`` before them halve
    backwards from that size (u/2, u/4, ...): the fast transients at the start still get short steps,
    but the end of the step is resolved U times finer, so the first-order error of the later
    substeps falls as 1/U (measured, docs/emulator.md: region 0's physics step alone, H within 5 % on
    the test split, 92.9 % with 32 geometric substeps, 96.5 % with 16 halving + 16 equal ones).
    """
    if isinstance(uniform, bool) or not isinstance(uniform, (int, np.integer)) or not 1 <= uniform <= substeps:
        raise ValueError(f"uniform substeps = {uniform!r}; must be an integer in [1, substeps = {substeps}]")
    if uniform == 1:
        w = 2.0 ** np.arange(substeps)
    else:
        w = np.concatenate([2.0 ** -np.arange(substeps - uniform, 0, -1), np.ones(uniform)])
    return w / w.sum()


def _accept(x, x_new):
    """Mask of substeps to take: T within a factor 1 / MIN_TEMPERATURE_RATIO and a finite state."""
    return ((x_new[6] > MIN_TEMPERATURE_RATIO * x[6]) & (x_new[6] < x[6] / MIN_TEMPERATURE_RATIO)
            & np.isfinite(x_new).all(axis=0))


def _gentle(x0, x1, accepted):
    """Mask of cells whose one-substep change is gentle (module docstring)."""
    with np.errstate(all="ignore"):
        change = np.abs(np.log10(np.maximum(x1[list(SLOW_INDICES)], _FLOOR) / np.maximum(x0[list(SLOW_INDICES)], _FLOOR)))
    big = np.maximum(x0[list(SLOW_INDICES)], x1[list(SLOW_INDICES)]) > GENTLE_MIN_ABUNDANCE
    big[-1] = True  # temperature
    return accepted & ~((change > GENTLE_CHANGE_DEX) & big).any(axis=0)


def physics_step(network, cells, x0, dt, substeps=1, *, uniform=1, compiled=None, return_substeps=False,
                 return_error=False):
    """The state after ``dt`` by ``substeps`` linearly implicit steps with balanced trace species.

    Parameters
    ----------
    network : PrimordialNetwork
    cells : mapping ``{"n_H": ...}`` or ndarray (N,)
        n_H [cm^-3].
    x0 : ndarray (7, N)
        Abundances (network order) [1] and temperature [K].
    dt : ndarray (N,) or float
        Step [s], >= 0.
    substeps : int
        Geometrically growing substeps where one is not gentle (>= 1; :func:`substep_fractions`).
    uniform : int
        Of those, how many at the end are equal (1: all geometric; :func:`substep_fractions`).
    compiled : bool, optional
        Run the numba-compiled version (cell by cell, same values to round-off). Default: where
        the network's compiled backend supports it.

    return_substeps : bool
        Also return the substeps each cell took.
    return_error : bool
        Also return the estimated relative local error of single-substep steps (inf where the step
        took ``substeps``).

    Returns
    -------
    ndarray (7, N)
        The end state (a substep that is not taken leaves the state as it was).
    ndarray of int (N,)
        Only with ``return_substeps``: 1 or ``substeps`` per cell.
    ndarray (N,)
        Only with ``return_error``: the error estimate.
    """
    if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ValueError(f"substeps = {substeps!r}; must be a positive integer")
    fractions = substep_fractions(substeps, uniform)
    n_H = as_cells(cells)
    x0 = np.asarray(x0, dtype=float).reshape(7, -1)
    dt = np.broadcast_to(np.asarray(dt, dtype=float), n_H.shape)
    cell = network.cell_parameters(n_H)
    backend = getattr(network, "compiled_backend", None)
    if compiled is None:
        compiled = backend is not None and backend.supports(network, x0)
    if compiled:
        x, used, err = backend.physics_step_cells(network, x0, cell, dt, substeps, fractions)
    else:
        x, used, err = _physics_step_numpy(network, n_H, cell, x0, dt, substeps, fractions)
    return (x,) + ((used,) if return_substeps else ()) + ((err,) if return_error else ()) \
        if (return_substeps or return_error) else x


def _physics_step_numpy(network, n_H, cell, x0, dt, substeps, fractions):
    one, f0, moved_charge = _reduced_step(network, n_H, cell, x0, dt, return_rate=True)
    accepted = _accept(x0, one)
    x = np.where(accepted, one, x0)
    redo = ~_gentle(x0, one, accepted) if substeps > 1 else np.zeros(n_H.shape, dtype=bool)
    if redo.any():
        idx = np.flatnonzero(redo)
        xr, cr, hr = x0[:, idx], network.take_cells(cell, idx), dt[idx]
        for w in fractions:
            x_new = _reduced_step(network, n_H[idx], cr, xr, hr * w)
            xr = np.where(_accept(xr, x_new), x_new, xr)
        x[:, idx] = xr
    err = np.where(accepted & ~redo, _local_error(x0, x, f0, _balanced_rate(network, cell, x), dt, moved_charge), np.inf)
    x = close_trace_species(network, n_H, x, x0, dt)
    return x, np.where(redo, substeps, 1), err


#: backward_euler_answer: Newton is tried only where the physics step changes nothing by more than this
#: multiple of the largest change the answer may have.
BACKWARD_EULER_CANDIDATE = 5.0


def relative_change(x0, x1):
    """Largest relative change of T and of the abundances above 1e-6 at the start, per cell (N,); NaN where x1
    is not finite (so it passes no bound)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(x1 / x0 - 1.0)
    change[:-1][np.abs(x0[:-1]) < 1e-6] = 0.0
    return change.max(axis=0)


def backward_euler_answer(network, cells, x0, dt, max_change, *, physics=None):
    """The network's backward-Euler step with closed trace species, and where it is the answer.

    A region may record ``backward_euler_change`` (``RegionModel``): where its residual net would
    correct the physics step, the backward-Euler step ``x1 = x0 + dt f(x1)`` (compiled Newton,
    :func:`~thermoemu.primordial.physics.compiled.backward_euler_cells`) answers instead wherever
    Newton converges and no variable changes by more than ``max_change`` (relative, T and abundances
    above 1e-6). Above ~1e15 cm^-3 the linearly implicit step drifts on a collapse track (its
    linearization of the H2 / temperature balance fails) while backward Euler is the reference
    solver's step to 1e-5 dex there (docs/emulator.md, "Region 4's backward-Euler step"). Newton starts
    from x0; off the track (T perturbed by 0.02 dex at 3e15-8e17 cm^-3) it converges on about half of
    the states, and the net answers the others. Started from the physics step it converges on 93 %,
    but on the collapse those extra answers were worse than the net's (0.040 against 0.032 dex at 0.1
    t_ff), so it is not done.

    Parameters
    ----------
    network : PrimordialNetwork
    cells : mapping ``{"n_H": ...}`` or ndarray (N,)
        n_H [cm^-3].
    x0 : ndarray (7, N)
        Abundances [1] and temperature [K].
    dt : ndarray (N,) or float
        [s]
    max_change : float
        Largest relative change for which the step is the answer (> 0).
    physics : ndarray (7, N), optional
        The physics step's state (:func:`physics_step`). Where given, Newton is tried only where that step
        changes no variable by more than ``BACKWARD_EULER_CANDIDATE`` x ``max_change`` (elsewhere the
        answer is False and x1 is x0's closure): on random region 3 and 4 states this skips ~45 % of the
        Newton solves and loses none of 720 answers; with 3 instead of 5 it skipped ~60 % but changed the
        collapse in region 4 (0.015 -> 0.027 dex at 0.1 t_ff), where the physics step is far off (docs/emulator.md).
    Returns
    -------
    x1 : ndarray (7, N)
        The backward-Euler state, H- and H2+ closed (``close_trace_species``) where it is the answer; elsewhere
        Newton's last iterate (x0 where Newton was not tried).
    answer : ndarray of bool (N,)
        Where Newton converged and the change is at most ``max_change``.
    """
    if not max_change > 0:
        raise ValueError(f"max_change = {max_change!r}; must be > 0")
    n_H = as_cells(cells)
    x0 = np.asarray(x0, dtype=float).reshape(7, -1)
    dt = np.broadcast_to(np.asarray(dt, dtype=float), n_H.shape)
    candidate = np.ones(n_H.size, dtype=bool) if physics is None else (
        relative_change(x0, np.asarray(physics, dtype=float).reshape(7, -1)) <= BACKWARD_EULER_CANDIDATE * max_change)
    tried = np.flatnonzero(candidate)
    x1, converged = x0.copy(), np.zeros(n_H.size, dtype=bool)
    backend = getattr(network, "compiled_backend", None)
    if tried.size and backend is not None and backend.supports(network, x0):
        x1[:, tried], converged[tried] = backend.backward_euler_cells(network, x0[:, tried],
                                                                      network.cell_parameters(n_H[tried]), dt[tried])
    elif tried.size:  # the numpy Newton (its non-converged cells take the reference solver's step; not used here)
        from .update_rules import backward_euler_step
        x1[:, tried], converged[tried] = backward_euler_step(network, n_H[tried], x0[:, tried], dt[tried])
    answer = converged & (relative_change(x0, x1) <= max_change)
    a = np.flatnonzero(answer)
    if a.size:
        with np.errstate(all="ignore"):
            x1[:, a] = close_trace_species(network, n_H[a], x1[:, a], x0[:, a], dt[a])
    return x1, answer
