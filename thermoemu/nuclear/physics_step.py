"""The physics step of a nuclear network: linearly implicit Euler over geometric substeps, compiled.

Physics-first NNN sets (:mod:`thermoemu.nuclear.physics_first`, issue 27) answer with this step where
its own error estimate says it is good, and with the net elsewhere. Per cell at constant temperature
and density, from z0 = (Y0, E_nu = 0):

* [0, dt] is cut into ``substeps`` steps growing by ``ratio`` (the first is
  ``dt (ratio - 1) / (ratio^substeps - 1)``): a burn resolves its fastest changes first;
* each substep is one linearly implicit (Rosenbrock-Euler) step, ``(I - h J) dz = h f(z)``, with the
  Jacobian and right-hand side at its start: L-stable, so stiff modes (free nucleons, light particles)
  relax to their quasi-steady values rather than oscillate. The rates, the Jacobian and the sparse LU
  (threshold pivoting in the fill-reducing order) are the compiled burner's own
  (:mod:`thermoemu.nuclear.implicit`: pynucastro's network to round-off);
* the error estimate is the sum over substeps of ``h/2 |f(z_k+1) - f(z_k)|`` in mass fraction
  (sum_i A_i |.|), the local error of the step against the trapezoidal rule, from right-hand sides the
  next substep needs anyway.

Mass is conserved by every substep to round-off (sum_i A_i f_i = 0 row by row, so sum_i A_i dY_i = 0 for
the solve). Negative abundances are kept during the step (clipping would break that) and counted in
``negative`` (the mass fraction below zero at the end); the mass fractions returned are clipped and
renormalized. e_nuc [erg g^-1] is the mass-excess change minus the neutrino energy, eps_nu the loss
rate at the end state.

Measured (docs/nuclear.md, "Physics-first NNNs"): on states along mesa80 trajectories at dt = 1e-3 s,
4 / 8 substeps beat "nothing changes" in 100 % of states whose composition moves by < 0.1 and 92.5 /
96 % of the rest, at ~0.4 / ~0.5-0.9 ms per cell (the burner: 4 ms there, 31 ms from fresh random
mixtures); on fresh random mixtures, whose first microseconds are violent transients, it is poor, and
the net answers there.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the nuclear extra brings numba
    numba = None

__all__ = ["physics_step", "PHYSICS_STATUS", "DEFAULT_SUBSTEPS", "DEFAULT_RATIO"]

#: Codes per cell.
PHYSICS_STATUS = {0: "ok", 3: "rate table left its bounds (weak-rate rho Ye or T)", 4: "non-finite state"}
#: Substeps per step and their growth ratio (the shipped set's; measured, docs/nuclear.md).
DEFAULT_SUBSTEPS = 8
DEFAULT_RATIO = 4.0

if numba is not None:
    from .implicit import _burn_constants, _constant_arrays, _fun, _jac, _lu_compress, _lu_factor, _lu_solve

    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @_njit
    def _physics_cell(z0, rho, T, base, D, screened, A, dt, substeps, ratio, C, ws, out):
        """One cell: z after dt into out[:m], then the loss rate at the end and the error estimate;
        returns a status code."""
        f, f_new, z, rhs, x, w, J, LU, piv, cols, Lp, Li, Lv, Up, Ui, Uv, dinv = ws
        m = z0.size
        n = m - 1
        for i in range(m):
            z[i] = z0[i]
        h = dt / substeps if ratio == 1.0 else dt * (ratio - 1.0) / (ratio**substeps - 1.0)
        if not _fun(z, rho, T, base, D, screened, C, f):
            return 3
        error = 0.0
        for _ in range(substeps):
            if not _jac(z, rho, T, base, D, screened, C, J):
                return 3
            _lu_factor(J, h, D.order, LU, piv, cols)
            _lu_compress(LU, Lp, Li, Lv, Up, Ui, Uv, dinv)
            for i in range(m):
                rhs[i] = h * f[i]
            _lu_solve(piv, D.order, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, x, w)
            for i in range(m):
                z[i] += x[i]
            if not _fun(z, rho, T, base, D, screened, C, f_new):
                return 3
            for i in range(n):
                error += 0.5 * h * A[i] * abs(f_new[i] - f[i])
            for i in range(m):
                f[i] = f_new[i]
            h *= ratio
        for i in range(m):
            if not np.isfinite(z[i]):
                return 4
            out[i] = z[i]
        out[m] = f[n]
        out[m + 1] = error
        return 0

    @_njit
    def _physics_cells(z0, rho, T, base, D, screened, A, dt, substeps, ratio, out, status):
        N, m = z0.shape
        pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.shape[1])
        ws = (np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m),
              np.zeros((m, m)), np.zeros((m, m)), np.zeros(m, np.int64), np.zeros(m, np.int64),
              np.zeros(m + 1, np.int64), np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m + 1, np.int64),
              np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m))
        for cell in range(N):
            if not _burn_constants(T[cell], rho[cell], D, pc, cf, wk):
                status[cell] = 3
                continue
            C = (pc, cf, wk, True, log_scor, kb, k, flux)
            status[cell] = _physics_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, A, dt[cell],
                                         substeps, ratio, C, ws, out[cell])


def physics_step(kernel, density, temperature, mass_fraction, dt, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO):
    """Advance cells by ``dt`` at constant T and rho with the physics step.

    Parameters
    ----------
    kernel : thermoemu.nuclear.network.BurnerKernel
        From :func:`thermoemu.nuclear.network.load_burner_kernel`.
    density, temperature : array_like (N,)
        [g cm^-3], [K].
    mass_fraction : array_like (N, isotopes)
        Initial mass fractions, in the kernel network's isotope order.
    dt : float or array_like (N,)
        Step [s], > 0.
    substeps : int
        Geometric substeps (>= 1).
    ratio : float
        Their growth ratio (>= 1).

    Returns
    -------
    dict
        ``mass_fraction`` (N, isotopes), clipped at 0 and renormalized; ``e_nuc`` [erg g^-1];
        ``eps_nu`` [erg g^-1 s^-1]; ``error``: the step's error estimate [mass fraction];
        ``negative``: mass fraction below zero before the clip; ``status`` (:data:`PHYSICS_STATUS`;
        non-zero: that cell's outputs are NaN).
    """
    net = kernel.network
    rho = np.ascontiguousarray(np.atleast_1d(np.asarray(density, float)))
    T = np.ascontiguousarray(np.broadcast_to(np.asarray(temperature, float), rho.shape))
    X0 = np.ascontiguousarray(np.atleast_2d(np.asarray(mass_fraction, float)))
    dt = np.ascontiguousarray(np.broadcast_to(np.asarray(dt, float), rho.shape))
    bad = ~(np.isfinite(dt) & (dt > 0))
    if bad.any():
        raise ValueError(f"dt = {float(dt[bad][0])!r} s: must be finite and > 0")
    if int(substeps) < 1 or not float(ratio) >= 1.0:
        raise ValueError(f"substeps = {substeps!r} must be >= 1 and ratio = {ratio!r} >= 1")
    N, n = X0.shape
    if n != len(net.isotopes) or N != rho.size:
        raise ValueError(f"mass_fraction has shape {X0.shape}; expected ({rho.size}, {len(net.isotopes)}) "
                         f"for network {net.name}")
    A = np.ascontiguousarray(net.A, dtype=float)
    z0 = np.zeros((N, n + 1))
    z0[:, :n] = X0 / A
    out = np.full((N, n + 3), np.nan)
    status = np.zeros(N, np.int64)
    if N:
        _physics_cells(z0, rho, T, kernel.base_rates(T), kernel.data, kernel.screening, A, dt, int(substeps),
                       float(ratio), out, status)
    ok = status == 0
    out[~ok] = np.nan
    X = out[:, :n] * A
    negative = -np.minimum(X, 0.0).sum(axis=1)
    Xc = np.maximum(X, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        Xc = Xc / Xc.sum(axis=1, keepdims=True)
    e_nuc = _mass_excess_release(net, out[:, :n] - z0[:, :n]) - out[:, n]
    return {"mass_fraction": Xc, "e_nuc": e_nuc, "eps_nu": out[:, n + 1], "error": out[:, n + 2],
            "negative": negative, "status": status}


#: The atomic mass unit's rest energy [erg] (CODATA 2018: 931.49410242 MeV x 1.602176634e-6 erg/MeV).
_M_U_C2_ERG = 931.49410242 * 1.602176634e-6


def _mass_excess_release(net, dY):
    """Energy released by the change ``dY`` [mol g^-1] (rows) [erg g^-1], from the mass excesses (the nuclear
    rest energies less A m_u c^2): equal to the burner's mass-change energy when sum_i A_i dY_i = 0, and
    insensitive to the round-off imbalance of it that the solves leave (the full rest energies would
    multiply it by ~1e21 erg/g)."""
    excess = np.asarray(net.module.mass, float) - np.asarray(net.A, float) * _M_U_C2_ERG
    return -(dY @ excess) * net.module.N_A
