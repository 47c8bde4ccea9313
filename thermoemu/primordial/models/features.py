"""Inputs, targets and their scaling for the emulators (plain numpy arrays).

Variable order everywhere in the emulators is the network's ``x`` order: the six species
(H, H2, e-, H+, H-, H2+) then temperature.

* Branch / DGM inputs (OS25 section 2.2): ``log10 n_H``, ``log10 T0``, ``log10 y0`` (8 values).
* Trunk input: ``log10(1 + dt / s)``.
* DeepONet targets: OS25 predict ``log10 x(dt)``; we predict the same quantity written as
  ``log10 x0 + r`` and learn the change ``r = log10 x(dt) - log10 x0`` (a skip connection: the
  network only has to learn what chemistry changes).
* DGM targets: ``Y_tau = sign(dx) log10(1 + eps t_ff / tau_eps)`` (OS25 eq. 16).
* Residual (physics-first) nets, ours: inputs are the branch inputs, ``log10(dt / t_ff)``, the
  change the physics step makes, ``log10 x_base - log10 x0`` (7 values), and log2 of the substeps
  it took (17 in all); targets are
  what the physics misses: ``log10 x(dt) - log10 x_base`` for H, H2, e-, H+ and T, and for H- and
  H2+ the error of their closure evaluated at the true end state (``residual_targets``).

Every input and target is standardised with the training set's mean and standard deviation,
stored in the artifact's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["VARIABLES", "LOG_FLOOR", "Scaling", "branch_inputs", "trunk_inputs", "log_state",
           "timescale_targets", "timescales_from_targets", "residual_inputs", "residual_targets",
           "RESIDUAL_INPUTS", "DT_FLOOR_OVER_T_FF", "CHANGE_CLIP_DEX"]

#: Number of residual-net inputs: 8 branch inputs, log10(dt / t_ff), 7 changes of the physics step,
#: log2 of its substeps.
RESIDUAL_INPUTS = 17
#: dt / t_ff below this is taken at this value in the residual inputs (dt = 0 has no log).
DT_FLOOR_OVER_T_FF = 1e-20
#: |log10 x_base - log10 x0| is clipped here in the residual inputs [dex].
CHANGE_CLIP_DEX = 30.0

#: Emulated variables in network order.
VARIABLES = ("H", "H2", "e-", "H+", "H-", "H2+", "temperature")
#: Smallest value taken before a log10 (abundances can underflow to 0 in the reference solver).
LOG_FLOOR = 1e-40


def branch_inputs(n_H, x0):
    """``(N, 8)``: log10 n_H [cm^-3], log10 T0 [K], log10 y0 of the six species.

    ``n_H`` has shape (N,); ``x0`` is (7, N) in network order (species, temperature).
    """
    x0 = np.asarray(x0, dtype=float)
    out = np.empty((x0.shape[1], 8))
    out[:, 0] = np.log10(n_H)
    out[:, 1] = np.log10(np.maximum(x0[6], LOG_FLOOR))
    out[:, 2:] = np.log10(np.maximum(x0[:6], LOG_FLOOR)).T
    return out


def residual_inputs(n_H, x0, dt, t_ff, x_base, substeps):
    """``(N, 17)`` inputs of a residual net (module docstring).

    Parameters
    ----------
    n_H : ndarray (N,)
        [cm^-3]
    x0, x_base : ndarray (7, N)
        Start state and the physics step's end state (abundances, T [K]).
    dt, t_ff : ndarray (N,)
        Step and free-fall time [s].
    substeps : ndarray of int (N,)
        Substeps the physics step took per cell.
    """
    out = np.empty((len(n_H), RESIDUAL_INPUTS))
    out[:, :8] = branch_inputs(n_H, x0)
    out[:, 8] = np.log10(np.maximum(np.asarray(dt, dtype=float) / t_ff, DT_FLOOR_OVER_T_FF))
    out[:, 9:16] = np.clip(log_state(x_base) - log_state(x0), -CHANGE_CLIP_DEX, CHANGE_CLIP_DEX)
    out[:, 16] = np.log2(substeps)
    return out


def residual_targets(x_true, x_base, x_closed):
    """``(N, 7)`` targets of a residual net [dex].

    ``x_true`` is the reference end state, ``x_base`` the physics step's, and ``x_closed`` the
    reference end state with H- and H2+ replaced by their closure (all (7, N)). Slow variables:
    ``log10 x_true - log10 x_base``; trace species: ``log10 x_true - log10 x_closed``.
    """
    out = log_state(x_true) - log_state(x_base)
    out[:, 4:6] = (log_state(x_true) - log_state(x_closed))[:, 4:6]
    return out


def trunk_inputs(dt):
    """``log10(1 + dt / s)``; any shape."""
    return np.log10(1.0 + np.asarray(dt, dtype=float))


def log_state(x):
    """``(N, 7)`` log10 of the state ``x`` (7, N) in variable order."""
    return np.log10(np.maximum(np.asarray(x, dtype=float), LOG_FLOOR)).T


def timescale_targets(tau, sign, t_ff, eps):
    """OS25 eq. 16: ``Y_tau = sign log10(1 + eps t_ff / tau)``; ``tau`` (N, 7) [s], ``t_ff`` (N,) [s]."""
    tau = np.maximum(np.asarray(tau, dtype=float), 1e-300)
    sign = np.where(np.asarray(sign) < 0, -1.0, 1.0)
    return sign * np.log10(1.0 + eps * np.asarray(t_ff, dtype=float)[:, None] / tau)


def timescales_from_targets(y_tau, t_ff, eps, xp=np):
    """Invert eq. 16: ``tau = eps t_ff / (10^|Y_tau| - 1)`` [s]; ``inf`` where Y_tau = 0."""
    denom = xp.expm1(xp.abs(y_tau) * np.log(10.0))
    return eps * t_ff[:, None] / denom


@dataclass
class Scaling:
    """Means and standard deviations of the scaled quantities (lists, JSON-ready)."""

    x_mean: list
    x_std: list
    t_mean: float
    t_std: float
    y_mean: list | None = None
    y_std: list | None = None

    @classmethod
    def fit(cls, x, t, y=None):
        """From training arrays: branch inputs ``x`` (N, 8), trunk ``t`` (N,), targets ``y`` (N, K)."""
        def std(a, axis=None):
            s = np.std(a, axis=axis)
            return np.where(s > 0, s, 1.0)
        out = cls(x_mean=np.mean(x, axis=0).tolist(), x_std=std(x, 0).tolist(),
                  t_mean=float(np.mean(t)), t_std=float(std(t)))
        if y is not None:
            out.y_mean = np.mean(y, axis=0).tolist()
            out.y_std = std(y, 0).tolist()
        return out

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    def scale_x(self, x):
        return (x - np.asarray(self.x_mean)) / np.asarray(self.x_std)

    def scale_t(self, t):
        return (t - self.t_mean) / self.t_std

    def scale_y(self, y):
        return (y - np.asarray(self.y_mean)) / np.asarray(self.y_std)

    def unscale_y(self, y):
        return y * np.asarray(self.y_std) + np.asarray(self.y_mean)
