"""Update rules: how far along the predicted change x(tau) - x0 a step dt < tau moves.

Both rules write the update of one variable as ``x' = x0 + w (x(tau) - x0)`` with ``w`` in [0, 1]
and tau = tau_eps (capped at dt_max); for dt >= tau the step takes the prediction x(dt) itself.

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
"""

from __future__ import annotations

import numpy as np

__all__ = ["chord_fraction", "shaped_fraction", "shape_parameter", "update_fraction", "SHAPE_PROBE", "SHAPE_MAX"]

#: q of the second prediction, x(tau / q).
SHAPE_PROBE = 30.0
#: Largest |a| of the fitted exponential path (tau / a is its relaxation time).
SHAPE_MAX = 150.0


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


def update_fraction(update, dt, tau, start, pred, probe_at):
    """Fraction w (N, 7) of the change pred - x0 that a step takes, for ``update`` "timescale" or "shaped".

    Parameters
    ----------
    update : {"timescale", "shaped"}
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
    """
    frac = chord_fraction(dt[:, None], tau)
    if update != "shaped":
        return frac
    rows = np.flatnonzero((dt[:, None] < tau).any(axis=1))
    if rows.size:
        frac[rows] = shaped_fraction(dt[rows, None], tau[rows], probe_at(rows) - start[rows],
                                     pred[rows] - start[rows])
    return frac
