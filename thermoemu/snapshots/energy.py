"""Compiled internal energy <-> temperature of primordial gas, cell by cell: the hot path of the Grackle adapter.

The same thermodynamics as :func:`thermoemu.snapshots.grackle.internal_energy` (3/2 k T per free particle
plus k times the H2 internal energy of :func:`thermoemu.primordial.physics.thermo.energy_h2`, with its
heat capacity :func:`~thermoemu.primordial.physics.thermo.cv_h2` as the Newton derivative), in numba:
the rotational sums over J <= ``J_MAX`` take one exponential per evaluation, the level weights
following from it by the recurrence exp(-theta (J+2)(J+3) / T) = exp(-theta J (J+1) / T) q^(4J+6),
q = exp(-theta / T). The numpy functions build (cells, levels) arrays and take ~7 us per cell for
a temperature; this takes ~0.2 us. It agrees with them to ~1e-14 (tested); a round trip through
this module (energy -> T -> energy) is exact to float rounding.

Models: ``"frozen"`` and ``"tgchem"`` (the ``"equilibrium"`` ortho/para model is left to the numpy
functions, which :func:`available` tells the callers).
"""

from __future__ import annotations

import numpy as np

from ..constants import K_BOLTZMANN
from ..primordial.physics.thermo import J_MAX, THETA_ROT_H2, THETA_VIB_H2

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["available", "internal_energy_cells", "temperature_cells"]

#: The H2 models compiled here, by code.
MODELS = {"frozen": 0, "tgchem": 1}
#: The temperature bracket [K] of the inversion (the numpy function's).
T_MIN, T_MAX = 0.1, 1e9
_THETA_VIB_TGCHEM = 6100.0
#: Nodes of the H2 energy table in ln T over [T_MIN, T_MAX] that the Newton iterations of the inversion run on
#: (cubic Hermite in ln T, ~1e-12 relative); the last iteration runs on the exact sums.
TABLE_NODES = 4097
_LN_T_MIN, _LN_T_MAX = float(np.log(T_MIN)), float(np.log(T_MAX))


def available(cv_model):
    """True where the compiled kernels serve ``cv_model`` (numba importable, model in :data:`MODELS`)."""
    return numba is not None and cv_model in MODELS


if numba is not None:
    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @_njit
    def _rotational(T, odd):
        """(mean level energy above the species' ground level [K], its variance [K^2]) of para (even J) or
        ortho (odd J) H2 at T, levels up to J_MAX."""
        q = np.exp(-THETA_ROT_H2 / T)
        J = 1.0 if odd else 0.0
        w = 2.0 * J + 1.0         # (2J+1) exp(-E_J / T), E_J = (J(J+1) - J0(J0+1)) theta, first level E = 0
        ratio = q ** (4.0 * J + 6.0)  # exp(-(E_{J+2} - E_J) / T)
        q8 = q ** 8
        Z = 0.0
        e1 = 0.0
        e2 = 0.0
        E = 0.0
        while J <= J_MAX:
            Z += w
            e1 += w * E
            e2 += w * E * E
            E += (4.0 * J + 6.0) * THETA_ROT_H2
            w *= ratio * (2.0 * J + 5.0) / (2.0 * J + 1.0)
            ratio *= q8
            J += 2.0
            if w < 1e-30 * Z:  # the rest of the levels change no sum
                break
        e1 /= Z
        return e1, e2 / Z - e1 * e1

    @_njit
    def _h2(T, model):
        """H2 internal energy [k_B K] and heat capacity [k_B] per molecule at T."""
        if model == 1:  # tgchem: rotation always excited, theta_v = 6100 K
            x = min(_THETA_VIB_TGCHEM / T, 700.0)
            em1 = np.expm1(x)
            energy = 2.5 * T + _THETA_VIB_TGCHEM / em1
            em = np.exp(-x)
            return energy, 2.5 + x * x * em / (1.0 - em) ** 2
        p1, pv = _rotational(T, False)
        o1, ov = _rotational(T, True)
        x = min(THETA_VIB_H2 / T, 700.0)
        em = np.exp(-x)
        energy = 1.5 * T + 0.25 * p1 + 0.75 * o1 + THETA_VIB_H2 / np.expm1(x)
        cv = 1.5 + (0.25 * pv + 0.75 * ov) / (T * T) + x * x * em / (1.0 - em) ** 2
        return energy, cv

    @_njit
    def _h2_table(model, nodes):
        """H2 energy [k_B K] and its derivative in ln T [k_B K] at ``nodes`` points uniform in ln T."""
        lo, hi = _LN_T_MIN, _LN_T_MAX
        table = np.empty((2, nodes))
        for k in range(nodes):
            T = np.exp(lo + (hi - lo) * k / (nodes - 1))
            e, cv = _h2(T, model)
            table[0, k] = e
            table[1, k] = cv * T
        return table

    @_njit
    def _h2_interp(lnT, table):
        """(H2 energy, its ln T derivative) by cubic Hermite interpolation in the table."""
        lo, hi = _LN_T_MIN, _LN_T_MAX
        nodes = table.shape[1]
        h = (hi - lo) / (nodes - 1)
        u = (lnT - lo) / h
        k = min(max(int(u), 0), nodes - 2)
        t = u - k
        e0, e1 = table[0, k], table[0, k + 1]
        d0, d1 = table[1, k] * h, table[1, k + 1] * h
        t2 = t * t
        t3 = t2 * t
        e = (2 * t3 - 3 * t2 + 1) * e0 + (t3 - 2 * t2 + t) * d0 + (-2 * t3 + 3 * t2) * e1 + (t3 - t2) * d1
        de = ((6 * t2 - 6 * t) * e0 + (3 * t2 - 4 * t + 1) * d0 + (-6 * t2 + 6 * t) * e1 + (3 * t2 - 2 * t) * d1) / h
        return e, de

    @_njit
    def _energy_cells(T, y, y_He, y_x, model, out):
        n = T.shape[0]
        for i in range(n):
            free = y[0, i] + y[2, i] + y[3, i] + y[4, i] + y[5, i] + y_He[i] + y_x[i]
            e_h2, _ = _h2(T[i], model)
            out[i] = K_BOLTZMANN * (1.5 * T[i] * free + e_h2 * y[1, i])

    @_njit
    def _temperature_cells(E, y, y_He, y_x, model, table, out):
        """T [K] per cell with internal energy E [erg per H nucleus]; returns the first cell without one
        in [T_MIN, T_MAX] (-1 if none). Newton in ln T on the tabulated H2 energy, kept in the bracket,
        to 1e-11; then one Newton step on the exact sums takes T to rounding."""
        n = E.shape[0]
        lo0, hi0 = _LN_T_MIN, _LN_T_MAX
        e_lo, _ = _h2(T_MIN, model)
        e_hi, _ = _h2(T_MAX, model)
        for i in range(n):
            free = y[0, i] + y[2, i] + y[3, i] + y[4, i] + y[5, i] + y_He[i] + y_x[i]
            h2 = y[1, i]
            f_lo = K_BOLTZMANN * (1.5 * T_MIN * free + e_lo * h2) - E[i]
            f_hi = K_BOLTZMANN * (1.5 * T_MAX * free + e_hi * h2) - E[i]
            if not (np.isfinite(E[i]) and f_lo <= 0.0 and f_hi >= 0.0):
                return i
            lo, hi = lo0, hi0
            lnT = np.log(max(E[i] / (K_BOLTZMANN * (1.5 * free + 2.5 * h2)), T_MIN))
            lnT = min(max(lnT, lo), hi)
            for _ in range(100):
                T = np.exp(lnT)
                e_h2, de_h2 = _h2_interp(lnT, table)
                f = K_BOLTZMANN * (1.5 * T * free + e_h2 * h2) - E[i]
                if f <= 0.0:
                    lo = lnT
                if f >= 0.0:
                    hi = lnT
                step = lnT - f / (K_BOLTZMANN * (1.5 * free * T + de_h2 * h2))
                new = step if (step >= lo and step <= hi) else 0.5 * (lo + hi)
                done = abs(new - lnT) <= 1e-11
                lnT = new
                if done:
                    break
            T = np.exp(lnT)
            e_h2, cv = _h2(T, model)
            f = K_BOLTZMANN * (1.5 * T * free + e_h2 * h2) - E[i]
            out[i] = np.exp(lnT - f / (K_BOLTZMANN * (1.5 * free + cv * h2) * T))
        return -1


_TABLES = {}


def _table(cv_model):
    if cv_model not in _TABLES:
        _TABLES[cv_model] = _h2_table(MODELS[cv_model], TABLE_NODES)
    return _TABLES[cv_model]


def _flat(a, shape):
    """``a`` broadcast to ``shape`` as a contiguous flat float array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=float), shape)).ravel()


def internal_energy_cells(temperature, abundance, y_He, y_e_extra, cv_model="frozen"):
    """Internal energy per H nucleus [erg] (as :func:`thermoemu.snapshots.grackle.internal_energy`), compiled.

    ``temperature`` [K], ``y_He``, ``y_e_extra``: any shape; ``abundance``: (6,) + that shape.
    """
    T = np.asarray(temperature, dtype=float)
    n = T.size
    y = np.ascontiguousarray(np.asarray(abundance, dtype=float).reshape(6, n))
    out = np.empty(n)
    _energy_cells(_flat(T, T.shape), y, _flat(y_He, T.shape), _flat(y_e_extra, T.shape), MODELS[cv_model], out)
    return out.reshape(T.shape)


def temperature_cells(energy_per_H, abundance, y_He, y_e_extra, cv_model="frozen"):
    """T [K] whose internal energy is ``energy_per_H`` [erg per H nucleus], compiled (safeguarded Newton in
    ln T on [0.1 K, 1e9 K]).

    Returns ``(T, bad)``: ``bad`` the flat index of the first cell with no temperature in that range, or -1.
    """
    E = np.asarray(energy_per_H, dtype=float)
    n = E.size
    y = np.ascontiguousarray(np.asarray(abundance, dtype=float).reshape(6, n))
    out = np.empty(n)
    bad = _temperature_cells(_flat(E, E.shape), y, _flat(y_He, E.shape), _flat(y_e_extra, E.shape), MODELS[cv_model],
                             _table(cv_model), out)
    return out.reshape(E.shape), int(bad)
