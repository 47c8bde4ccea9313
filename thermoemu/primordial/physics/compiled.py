"""Compiled backend of the batched solver: the same RODAS3 method and step control as
:mod:`thermoemu.solvers.rosenbrock`, run cell by cell in numba-compiled code.

The vectorized solver advances all cells together in numpy operations, about 40 passes over
memory per substep; here each cell runs its own substep loop in registers and L1 cache, calling
the primordial network's kernel (:mod:`thermoemu.primordial.physics.kernel`, the same source the
vectorized network runs) for the right-hand side and the analytic Jacobian, and a 7x7 LU with the
vectorized solver's threshold pivoting. Results agree with the vectorized solver to round-off in
the state and exactly in the substep counts on typical cells (tested); the output arrays are the
same (:class:`~thermoemu.solvers.rosenbrock.SolverResult`).

Compiled once per machine (``cache=True``; compile and load times: docs/solver.md). The code
releases the GIL, so threads run chunks in parallel. numba's cache checks only this file's time stamp, so on import a digest of
every source the compiled code includes is compared with the one the cache was built from, and a
stale cache is removed (:func:`_drop_stale_cache`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["available", "supports", "integrate_chunk", "evaluate_cells", "cell_functions", "physics_step_cells",
           "backward_euler_cells"]

# RODAS3 (Sandu et al. 1997), as in rosenbrock.py
_GAMMA = 0.5
_A20, _A32 = 2.0, 1.0
_C10, _C20, _C21, _C30, _C31, _C32 = 4.0, 1.0, -1.0, 1.0, -1.0, -8.0 / 3.0
_PIVOT_THRESHOLD = 0.1
_N = 7


def available():
    """True where numba can be imported (the compiled backend can run)."""
    return numba is not None


def supports(network, x0):
    """True where the compiled backend can integrate ``network`` on ``x0`` (numpy, and a network
    whose ``compiled_kernel()`` is not None: it says None where its methods are not the kernel's)."""
    if numba is None or not isinstance(x0, np.ndarray):
        return False
    getter = getattr(network, "compiled_kernel", None)
    return getter is not None and getter() is not None


def _sources():
    """Every source file whose code or constants the compiled functions include."""
    from ... import constants
    from .. import physics_step
    from . import kernel, layout, rates, thermo

    return [Path(__file__).resolve()] + [Path(m.__file__).resolve()
                                         for m in (kernel, layout, rates, thermo, constants, physics_step)]


def _drop_stale_cache(sources=None, cache_dir=None):
    """Remove numba's cache files of this module when any included source changed since.

    ``cache_dir`` is where numba keeps them (the dispatchers' own cache path: ``__pycache__``
    next to this file, ``NUMBA_CACHE_DIR``, or a user-wide folder when the package is read-only);
    the digest stamp lives there too.
    """
    try:
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in (sources or _sources()))).hexdigest()
        cache_dir = Path(cache_dir or Path(__file__).resolve().parent / "__pycache__")
        stamp = cache_dir / "thermoemu-compiled.sha256"
        if stamp.exists() and stamp.read_text() == digest:
            return
        for stale in cache_dir.glob("compiled.*.nb[ic]"):
            stale.unlink(missing_ok=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # an unwritable cache folder: numba does not cache there either
        pass


if numba is not None:
    from . import kernel as _kernel

    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @_njit
    def _lu_factor(A, perm, pivot_rows):
        """In place, threshold pivoting among the first ``pivot_rows`` rows (as linalg.lu_factor)."""
        for i in range(_N):
            perm[i] = i
        for k in range(_N):
            if k < pivot_rows - 1:
                best = k
                big = abs(A[k, k])
                for i in range(k + 1, pivot_rows):
                    if abs(A[i, k]) > big:
                        big = abs(A[i, k])
                        best = i
                if abs(A[k, k]) < _PIVOT_THRESHOLD * big and best != k:
                    for j in range(_N):
                        tmp = A[k, j]
                        A[k, j] = A[best, j]
                        A[best, j] = tmp
                    tmp_i = perm[k]
                    perm[k] = perm[best]
                    perm[best] = tmp_i
            pivot = A[k, k]
            for i in range(k + 1, _N):
                lower = A[i, k] / pivot
                A[i, k] = lower
                for j in range(k + 1, _N):
                    A[i, j] -= lower * A[k, j]

    @_njit
    def _lu_solve(A, perm, b, out):
        for i in range(_N):
            out[i] = b[perm[i]]
        for i in range(1, _N):
            s = out[i]
            for j in range(i):
                s -= A[i, j] * out[j]
            out[i] = s
        for i in range(_N - 1, -1, -1):
            s = out[i]
            for j in range(i + 1, _N):
                s -= A[i, j] * out[j]
            out[i] = s / A[i, i]

    @_njit
    def _evaluate_one(x, p, table, thermalize, escape, jacobian):
        c = np.empty(table.shape[1])
        dc = np.empty(table.shape[1])
        kn = np.empty(18)
        dkn = np.empty(18)
        r = np.empty(18)
        D = np.zeros((18, _N))
        f = np.empty(_N)
        J = np.empty((_N, _N))
        _kernel.table_coefficients(x[_N - 1], table, c, dc)
        _kernel.rhs_jacobian(x, c, dc, p, thermalize, escape, kn, dkn, r, D, f, J, jacobian)
        return f, J

    @_njit
    def _evaluate_cells(x, p, table, thermalize, escape, f_out, J_out):
        for cell in range(x.shape[1]):
            f, J = _evaluate_one(x[:, cell].copy(), p[:, cell].copy(), table, thermalize, escape, True)
            f_out[:, cell] = f
            J_out[:, :, cell] = J

    @_njit
    def _integrate_cells(x0, p, dt, t_end, rtol, atol_abundance, atol_temperature, relative_mode,
                         max_relative_change, change_floor, max_substeps, abundance_floor, table, thermalize,
                         escape, timescales, eps, x_out, x_last, status, steps, rejected, time_reached, tau,
                         tau_lo, tau_hi, tau_sign):
        n_cells = x0.shape[1]
        n_col = table.shape[1]
        c = np.empty(n_col)
        dc = np.empty(n_col)
        kn = np.empty(18)
        dkn = np.empty(18)
        r = np.empty(18)
        D = np.zeros((18, _N))
        J = np.empty((_N, _N))
        M = np.empty((_N, _N))
        perm = np.empty(_N, np.int64)
        x = np.empty(_N)
        xs = np.empty(_N)
        xt = np.empty(_N)
        x_new = np.empty(_N)
        f = np.empty(_N)
        rhs_b = np.empty(_N)
        K0 = np.empty(_N)
        K1 = np.empty(_N)
        K2 = np.empty(_N)
        K3 = np.empty(_N)
        atol = np.full(_N, atol_abundance)
        atol[_N - 1] = atol_temperature
        crossed = np.zeros(_N, np.bool_)
        pc = np.empty(p.shape[0])
        for cell in range(n_cells):
            for i in range(_N):
                x[i] = x0[i, cell]
                xs[i] = x[i]
                x_out[i, cell] = x[i]
                crossed[i] = False
            for i in range(p.shape[0]):
                pc[i] = p[i, cell]
            dt_c = dt[cell]
            end = t_end[cell]
            rtol_c = rtol[cell]
            t = 0.0
            n_acc = 0
            n_rej = 0
            code = 0
            if end > 0.0:
                # first substep: 1 % change of the fastest significant variable
                _kernel.table_coefficients(x[_N - 1], table, c, dc)
                _kernel.rhs_jacobian(x, c, dc, pc, thermalize, escape, kn, dkn, r, D, f, J, False)
                rate = 0.0
                for i in range(_N):
                    v = abs(f[i]) / max(abs(x[i]), change_floor)
                    if v > rate:  # NaN never wins, as np.max would not ignore it: see below
                        rate = v
                    elif v != v:
                        rate = np.nan
                h = 0.01 / max(rate, 1e-300) if rate == rate else np.nan
                h = min(max(h, 1e-16 * end), end) if h == h else np.nan
                while True:
                    before_output = t < dt_c * (1.0 - 1e-12)
                    remaining = (dt_c if before_output else end) - t
                    ha = min(h, remaining) if h == h else np.nan
                    _kernel.table_coefficients(x[_N - 1], table, c, dc)
                    _kernel.rhs_jacobian(x, c, dc, pc, thermalize, escape, kn, dkn, r, D, f, J, True)
                    # the temperature row never pivots for an abundance column (linalg.lu_factor)
                    diag = 1.0 / (ha * _GAMMA)
                    for i in range(_N):
                        for j in range(_N):
                            M[i, j] = -J[i, j]
                        M[i, i] += diag
                    _lu_factor(M, perm, _N - 1)
                    _lu_solve(M, perm, f, K0)
                    for i in range(_N):
                        rhs_b[i] = f[i] + (_C10 / ha) * K0[i]
                    _lu_solve(M, perm, rhs_b, K1)
                    for i in range(_N):
                        xt[i] = x[i] + _A20 * K0[i]
                    _kernel.table_coefficients(xt[_N - 1], table, c, dc)
                    _kernel.rhs_jacobian(xt, c, dc, pc, thermalize, escape, kn, dkn, r, D, f, J, False)
                    for i in range(_N):
                        rhs_b[i] = f[i] + (_C20 * K0[i] + _C21 * K1[i]) / ha
                    _lu_solve(M, perm, rhs_b, K2)
                    for i in range(_N):
                        xt[i] = xt[i] + _A32 * K2[i]
                    _kernel.table_coefficients(xt[_N - 1], table, c, dc)
                    _kernel.rhs_jacobian(xt, c, dc, pc, thermalize, escape, kn, dkn, r, D, f, J, False)
                    for i in range(_N):
                        rhs_b[i] = f[i] + (_C30 * K0[i] + _C31 * K1[i] + _C32 * K2[i]) / ha
                    _lu_solve(M, perm, rhs_b, K3)
                    finite = True
                    for i in range(_N):
                        x_new[i] = xt[i] + K3[i]
                        if not np.isfinite(x_new[i]):
                            finite = False
                    err = 0.0
                    neg = 0.0
                    if relative_mode:
                        for i in range(_N):
                            scale = abs(x[i])
                            significant = i == _N - 1 or max(scale, abs(x_new[i])) >= change_floor
                            if significant:
                                change = abs(x_new[i] - x[i]) / max(scale, 1e-300)
                                if change / max_relative_change > err:
                                    err = change / max_relative_change
                            allowed = max_relative_change * scale
                            if i < _N - 1:
                                allowed = max(allowed, change_floor)
                            if x_new[i] < 0.0 and -x_new[i] / allowed > neg:
                                neg = -x_new[i] / allowed
                    else:
                        for i in range(_N):
                            tol = atol[i] + rtol_c * max(abs(x[i]), abs(x_new[i]))
                            e = abs(K3[i]) / tol
                            if e > err:
                                err = e
                            allowed = atol[i] + rtol_c * abs(x[i])
                            if x_new[i] < 0.0 and -x_new[i] / allowed > neg:
                                neg = -x_new[i] / allowed
                    err = max(err, neg) if finite else np.inf
                    accept = err <= 1.0
                    if accept:
                        t_old = t
                        for i in range(_N - 1):
                            x_new[i] = max(x_new[i], abundance_floor)
                        if timescales:
                            for i in range(_N):
                                if crossed[i]:
                                    continue
                                ref = max(abs(xs[i]), 1e-300)
                                rel_new = abs(x_new[i] - xs[i]) / ref
                                if rel_new >= eps:
                                    rel_old = abs(x[i] - xs[i]) / ref
                                    frac = (eps - rel_old) / max(rel_new - rel_old, 1e-300)
                                    frac = min(max(frac, 0.0), 1.0)
                                    t_new = t_old + ha
                                    tau[i, cell] = t_old + frac * (t_new - t_old)
                                    tau_lo[i, cell] = t_old
                                    tau_hi[i, cell] = t_new
                                    tau_sign[i, cell] = 1 if x_new[i] >= xs[i] else -1
                                    crossed[i] = True
                        for i in range(_N):
                            x[i] = x_new[i]
                        t += ha
                        n_acc += 1
                        if before_output and t >= dt_c * (1.0 - 1e-12):
                            for i in range(_N):
                                x_out[i, cell] = x[i]
                    else:
                        n_rej += 1
                    # step-size update
                    if relative_mode:
                        factor = min(max(0.9 / max(err, 1e-10), 0.2), 2.0)
                    else:
                        factor = min(max(0.9 * max(err, 1e-10) ** (-1.0 / 3.0), 0.2), 6.0)
                    if not np.isfinite(err):
                        factor = 0.1
                    if not accept:
                        factor = min(factor, 0.5)
                    h = ha * factor
                    finished = t >= end * (1.0 - 1e-12)
                    if timescales and not finished and t >= dt_c * (1.0 - 1e-12):
                        finished = True
                        for i in range(_N):
                            if not crossed[i]:
                                finished = False
                    too_many = n_acc + n_rej >= max_substeps
                    underflow = h < max(1e-15 * t, 1e-30 * end)
                    nonfinite = (not finite) and h < max(1e-14 * t, 1e-28 * end)
                    if finished:
                        code = 0
                        break
                    if nonfinite:
                        code = 3
                        break
                    if underflow:
                        code = 2
                        break
                    if too_many:
                        code = 1
                        break
                    if not (h == h):  # NaN step: a non-finite start state (as the vectorized loop)
                        code = 3
                        break
            if not (t >= dt_c * (1.0 - 1e-12)):  # failed before dt: the last accepted state
                for i in range(_N):
                    x_out[i, cell] = x[i]
            for i in range(_N):
                x_last[i, cell] = x[i]
            if timescales:
                t_cap = min(t, end)
                for i in range(_N):
                    if not crossed[i]:
                        tau[i, cell] = t_cap
                        tau_lo[i, cell] = t_cap
                        tau_hi[i, cell] = t_cap
                        tau_sign[i, cell] = 1 if x[i] >= xs[i] else -1
            status[cell] = code
            steps[cell] = n_acc
            rejected[cell] = n_rej
            time_reached[cell] = min(t, end)


if numba is not None:  # before any first call: where numba looks for the cache is known now
    _drop_stale_cache(cache_dir=_integrate_cells._cache._cache_path)


if numba is not None:
    from ..physics_step import GENTLE_CHANGE_DEX, GENTLE_MIN_ABUNDANCE, MIN_TEMPERATURE_RATIO, TRACE_REEVALUATE
    from .layout import CONSERVATION_MATRIX as _CM
    from .layout import CONSERVATION_TARGET as _CT

    _FLOOR = 1e-40
    _SLOW = np.array([0, 1, 2, 3, 6])
    #: backward_euler_cells: scale floor of the Newton variables, abundances below which convergence is not
    #: tested, and the largest factor an iterate may lower an abundance by.
    _BE_SCALE_FLOOR = 1e-30
    _BE_TEST_ABUNDANCE = 1e-12
    _BE_MIN_FRACTION = 1e-2

    @_njit
    def _trace_balance(x, f, J):
        """y* of H- and H2+ (module physics_step) written into x; returns the 2 x 2 block's determinant."""
        a, b, c, d = J[4, 4], J[4, 5], J[5, 4], J[5, 5]
        det = a * d - b * c
        if det != 0.0:
            y4 = x[4] - (d * f[4] - b * f[5]) / det
            y5 = x[5] - (-c * f[4] + a * f[5]) / det
            x[4] = max(y4, 0.0)
            x[5] = max(y5, 0.0)
        return det

    @_njit
    def _project(y):
        """project_abundances for one cell (6 abundances, in place)."""
        a11 = 0.0
        a12 = 0.0
        a22 = 0.0
        r0 = -_CT[0]
        r1 = -_CT[1]
        for i in range(6):
            w = y[i] * y[i]
            a11 += _CM[0, i] * _CM[0, i] * w
            a12 += _CM[0, i] * _CM[1, i] * w
            a22 += _CM[1, i] * _CM[1, i] * w
            r0 += _CM[0, i] * y[i]
            r1 += _CM[1, i] * y[i]
        det = a11 * a22 - a12 * a12
        if det > 1e-14 * max(a11 * a22, 1e-300):
            l1 = (a22 * r0 - a12 * r1) / det
            l2 = (a11 * r1 - a12 * r0) / det
        else:
            l1 = r0 / (a11 if a11 > 0 else 1.0)
            l2 = r1 / a22 if a22 > 0 else 0.0
        for i in range(6):
            y[i] = y[i] - y[i] * y[i] * (_CM[0, i] * l1 + _CM[1, i] * l2)

    @_njit
    def _solve_small(A, b, n):
        """Gaussian elimination with partial pivoting of an n x n system (A, b overwritten); b holds x."""
        for k in range(n):
            best = k
            for i in range(k + 1, n):
                if abs(A[i, k]) > abs(A[best, k]):
                    best = i
            if best != k:
                for j in range(n):
                    tmp = A[k, j]
                    A[k, j] = A[best, j]
                    A[best, j] = tmp
                tmp = b[k]
                b[k] = b[best]
                b[best] = tmp
            for i in range(k + 1, n):
                m = A[i, k] / A[k, k]
                for j in range(k, n):
                    A[i, j] -= m * A[k, j]
                b[i] -= m * b[k]
        for i in range(n - 1, -1, -1):
            s = b[i]
            for j in range(i + 1, n):
                s -= A[i, j] * b[j]
            b[i] = s / A[i, i]

    @_njit
    def _evaluate_into(x, p, table, thermalize, escape, w):
        """Right-hand side and Jacobian of one cell into the work arrays ``w`` (no allocation)."""
        c, dc, kn, dkn, r, D, f, J = w
        D[:, :] = 0.0
        _kernel.table_coefficients(x[_N - 1], table, c, dc)
        _kernel.rhs_jacobian(x, c, dc, p, thermalize, escape, kn, dkn, r, D, f, J, True)

    @_njit
    def _work(n_col):
        return (np.empty(n_col), np.empty(n_col), np.empty(18), np.empty(18), np.empty(18), np.zeros((18, _N)),
                np.empty(_N), np.empty((_N, _N)))

    @_njit
    def _expm2(a, b, c, d, t):
        """closures._expm_2x2 for one cell: entries of exp([[a, b], [c, d]] t)."""
        s = 0.5 * (a + d)
        q = np.sqrt(max(0.25 * (a - d) ** 2 + b * c, 0.0))
        e1 = np.exp(min((s + q) * t, 700.0))
        e2 = np.exp(min((s - q) * t, 700.0))
        if q * t > 1e-8:
            ww = (e1 - e2) / (2.0 * q)
            v = (e2 * (s + q) - e1 * (s - q)) / (2.0 * q)
        else:
            es = np.exp(min(s * t, 700.0))
            ww = t * es
            v = es * (1.0 - s * t)
        return ww * a + v, ww * b, ww * c, ww * d + v

    @_njit
    def _relax(x4, x5, y4, y5, e00, e01, e10, e11):
        """closures.relax_towards for one cell."""
        d4, d5 = x4 - y4, x5 - y5
        if abs(e00 - 1.0) + abs(e01) + abs(e10) + abs(e11 - 1.0) < 0.5:
            return max(x4 + (e00 - 1.0) * d4 + e01 * d5, 0.0), max(x5 + e10 * d4 + (e11 - 1.0) * d5, 0.0)
        return max(y4 + e00 * d4 + e01 * d5, 0.0), max(y5 + e10 * d4 + e11 * d5, 0.0)

    @_njit
    def _reduced_substep(x, p, h, table, thermalize, escape, w, A, rhs, moved):
        """One substep of physics_step._reduced_step for one cell; returns the new state (a copy) and
        writes |dy(H-)| + |dy(H2+)| of the trace balance into ``moved[0]``."""
        xs = x.copy()
        f, J = w[6], w[7]
        _evaluate_into(xs, p, table, thermalize, escape, w)
        t4, t5 = xs[4], xs[5]
        _trace_balance(xs, f, J)
        e00, e01, e10, e11 = _expm2(J[4, 4], J[4, 5], J[5, 4], J[5, 5], h)  # relax towards it over h
        xs[4], xs[5] = _relax(t4, t5, xs[4], xs[5], e00, e01, e10, e11)
        moved[0] = abs(xs[4] - t4) + abs(xs[5] - t5)
        for i in range(_N):  # f at the balanced trace, to first order
            f[i] += J[i, 4] * (xs[4] - t4) + J[i, 5] * (xs[5] - t5)
        if abs(xs[4] - t4) > TRACE_REEVALUATE * max(t4, 1e-300) or abs(xs[5] - t5) > TRACE_REEVALUATE * max(t5, 1e-300):
            _evaluate_into(xs, p, table, thermalize, escape, w)
        a, b, c, d = J[4, 4], J[4, 5], J[5, 4], J[5, 5]
        det = a * d - b * c
        i00, i01, i10, i11 = 0.0, 0.0, 0.0, 0.0
        if det != 0.0:
            i00, i01, i10, i11 = d / det, -b / det, -c / det, a / det
        for ii in range(5):
            zi = _SLOW[ii]
            for jj in range(5):
                zj = _SLOW[jj]
                # J_eff = J_zz - J_zt inv(J_tt) J_tz
                u0 = i00 * J[4, zj] + i01 * J[5, zj]
                u1 = i10 * J[4, zj] + i11 * J[5, zj]
                jeff = J[zi, zj] - (J[zi, 4] * u0 + J[zi, 5] * u1)
                A[ii, jj] = (1.0 if ii == jj else 0.0) - h * jeff
            rhs[ii] = h * f[zi]
        _solve_small(A, rhs, 5)
        for ii in range(5):
            xs[_SLOW[ii]] += rhs[ii]
        for i in range(6):
            xs[i] = max(xs[i], _FLOOR)
        _project(xs)
        for i in range(6):
            xs[i] = max(xs[i], _FLOOR)
        return xs

    @_njit
    def _accepted(x, xn):
        ok = xn[6] > MIN_TEMPERATURE_RATIO * x[6] and xn[6] < x[6] / MIN_TEMPERATURE_RATIO
        for i in range(_N):
            if not np.isfinite(xn[i]):
                ok = False
        return ok

    @_njit
    def _is_gentle(x0, x1):
        for ii in range(5):
            i = _SLOW[ii]
            a = max(x0[i], _FLOOR)
            b = max(x1[i], _FLOOR)
            if (i == 6 or max(a, b) > GENTLE_MIN_ABUNDANCE) and abs(np.log10(b / a)) > GENTLE_CHANGE_DEX:
                return False
        return True

    @_njit
    def _physics_step_cells(x0, p, dt, weights, table, thermalize, escape, x_out, used, err):
        w = _work(table.shape[1])
        A = np.empty((5, 5))
        rhs = np.empty(5)
        moved = np.zeros(1)
        f, J = w[6], w[7]
        for cell in range(x0.shape[1]):
            start = x0[:, cell].copy()
            pc = p[:, cell].copy()
            one = _reduced_substep(start, pc, dt[cell], table, thermalize, escape, w, A, rhs, moved)
            trace_charge = moved[0]
            f0 = f.copy()  # the rate at the start (trace balanced), for the error estimate
            ok = _accepted(start, one)
            x = one if ok else start.copy()
            used[cell] = 1
            single = ok
            if weights.shape[0] > 1 and not (ok and _is_gentle(start, one)):
                single = False
                used[cell] = weights.shape[0]
                x = start.copy()
                for k in range(weights.shape[0]):
                    xn = _reduced_substep(x, pc, dt[cell] * weights[k], table, thermalize, escape, w, A, rhs, moved)
                    if _accepted(x, xn):
                        x = xn
            # trace closure (closures.close_trace_species) at the end state
            _evaluate_into(x.copy(), pc, table, thermalize, escape, w)
            a, b, c, d = J[4, 4], J[4, 5], J[5, 4], J[5, 5]
            det = a * d - b * c
            y4, y5 = x[4], x[5]
            if det != 0.0:
                y4 = max(x[4] - (d * f[4] - b * f[5]) / det, 0.0)
                y5 = max(x[5] - (-c * f[4] + a * f[5]) / det, 0.0)
            t = dt[cell]
            err[cell] = np.inf
            if single:  # physics_step._local_error: h |f(x1) - f(x0)| / 2 relative, trace balanced at both ends
                e = 0.0
                for ii in range(5):
                    i = _SLOW[ii]
                    if i == 6 or max(start[i], x[i]) > GENTLE_MIN_ABUNDANCE:
                        f1 = f[i] + J[i, 4] * (y4 - x[4]) + J[i, 5] * (y5 - x[5])
                        e = max(e, 0.5 * t * abs(f1 - f0[i]) / max(abs(x[i]), _FLOOR))
                # the charge the start's trace balance moved, relative to e- and H+ (physics_step._local_error)
                e = max(e, trace_charge / max(min(start[2], start[3]), _FLOOR))
                err[cell] = e
            e00, e01, e10, e11 = _expm2(a, b, c, d, t)
            x[4], x[5] = _relax(start[4], start[5], y4, y5, e00, e01, e10, e11)
            x_out[:, cell] = x


    @_njit
    def _backward_euler_cells(x0, guess, p, dt, max_iterations, tolerance, table, thermalize, escape, x_out,
                              converged):
        """backward_euler_cells for every cell (see there); Newton in variables scaled by the start state."""
        w = _work(table.shape[1])
        f, J = w[6], w[7]
        A = np.empty((_N, _N))
        b = np.empty(_N)
        s = np.empty(_N)
        for cell in range(x0.shape[1]):
            start = x0[:, cell].copy()
            pc = p[:, cell].copy()
            x = guess[:, cell].copy()
            for i in range(_N):
                s[i] = max(abs(start[i]), abs(x[i]), _BE_SCALE_FLOOR)
            converged[cell] = False
            for _ in range(max_iterations):
                _evaluate_into(x.copy(), pc, table, thermalize, escape, w)
                residual = 0.0
                for ii in range(5):  # H-, H2+: closed afterwards, not tested
                    i = _SLOW[ii]
                    g = x[i] - start[i] - dt[cell] * f[i]
                    if i == 6 or max(start[i], x[i]) > _BE_TEST_ABUNDANCE:
                        residual = max(residual, abs(g) / max(abs(x[i]), abs(start[i])))
                if residual <= tolerance:
                    converged[cell] = True
                    break
                for i in range(_N):
                    b[i] = -(x[i] - start[i] - dt[cell] * f[i]) / s[i]
                    for j in range(_N):
                        A[i, j] = ((1.0 if i == j else 0.0) - dt[cell] * J[i, j]) * s[j] / s[i]
                _solve_small(A, b, _N)
                update = 0.0
                for i in range(_N):
                    d = b[i] * s[i]
                    new = x[i] + d
                    if i < _N - 1:
                        new = max(new, _BE_MIN_FRACTION * x[i], _FLOOR)  # positive, at most a factor 100 down
                    else:
                        new = min(max(new, MIN_TEMPERATURE_RATIO * x[i]), x[i] / MIN_TEMPERATURE_RATIO)
                    if (i == 6 or (i < 4 and max(start[i], x[i]) > _BE_TEST_ABUNDANCE)) and np.isfinite(new):
                        update = max(update, abs(new - x[i]) / abs(x[i]))
                    x[i] = new
                finite = True
                for i in range(_N):
                    if not np.isfinite(x[i]):
                        finite = False
                if not finite:
                    break
                if update <= tolerance:
                    converged[cell] = True
                    break
            x_out[:, cell] = x

def physics_step_cells(network, x0, cell, dt, substeps, fractions=None):
    """:func:`thermoemu.primordial.physics_step.physics_step` compiled, cell by cell (same values to round-off).

    Parameters
    ----------
    network : PrimordialNetwork
        Must provide ``compiled_kernel()``.
    x0 : ndarray (7, n)
    cell : dict
        ``network.cell_parameters(n_H)``.
    dt : ndarray (n,)
        [s]
    substeps : int
    fractions : ndarray, optional
        The substeps' fractions of dt (default: ``substep_fractions(substeps)``).

    Returns
    -------
    x : ndarray (7, n)
    used : ndarray of int64 (n,)
        Substeps each cell took (1 or ``substeps``).
    err : ndarray (n,)
        Estimated relative local error of single-substep steps (inf elsewhere).
    """
    from ..physics_step import substep_fractions
    from .kernel import cell_parameter_array

    table, thermalize, escape = network.compiled_kernel()
    x0 = np.ascontiguousarray(x0, dtype=float)
    out = np.empty_like(x0)
    used = np.empty(x0.shape[1], dtype=np.int64)
    err = np.empty(x0.shape[1])
    _physics_step_cells(x0, np.ascontiguousarray(cell_parameter_array(cell)),
                        np.ascontiguousarray(np.broadcast_to(dt, x0.shape[1:]), dtype=float),
                        np.ascontiguousarray(substep_fractions(substeps) if fractions is None else fractions,
                                             dtype=float), table, thermalize, int(escape), out, used, err)
    return out, used, err


def backward_euler_cells(network, x0, cell, dt, *, guess=None, max_iterations=20, tolerance=1e-9):
    """The network's backward-Euler step ``x1 = x0 + dt f(x1)`` per cell, compiled (Newton's method).

    Newton starts from ``guess`` (default x0; off a quasi-equilibrium, e.g. a perturbed temperature at
    1e17 cm^-3, Newton from x0 diverges where it converges from the linearly implicit physics step) and
    solves in variables scaled by the start state and the guess (near 1e17-1e18 cm^-3 the
    unscaled Jacobian's condition number reaches 1e20). An iterate may lower an abundance by at most a
    factor 100 and change T by at most a factor 2. A cell has converged when the residual
    ``|x1 - x0 - dt f(x1)|`` or the last Newton update of every slow variable (H, H2, e-, H+ above an
    abundance of 1e-12, and T) is below ``tolerance`` relative to its value. H- and H2+ are iterated
    but not tested (callers close them; :func:`~thermoemu.primordial.closures.close_trace_species`).

    Parameters
    ----------
    network : PrimordialNetwork
        Must provide ``compiled_kernel()``.
    x0 : ndarray (7, n)
        Abundances [1] and temperature [K].
    cell : dict
        ``network.cell_parameters(n_H)``.
    dt : ndarray (n,) or float
        [s]
    guess : ndarray (7, n), optional
        Newton's first iterate.
    max_iterations : int
    tolerance : float

    Returns
    -------
    x1 : ndarray (7, n)
        The last iterate (the step where ``converged``).
    converged : ndarray of bool (n,)
    """
    from .kernel import cell_parameter_array

    table, thermalize, escape = network.compiled_kernel()
    x0 = np.ascontiguousarray(x0, dtype=float)
    out = np.empty_like(x0)
    converged = np.zeros(x0.shape[1], dtype=np.bool_)
    guess = x0 if guess is None else np.ascontiguousarray(guess, dtype=float)
    if guess.shape != x0.shape:
        raise ValueError(f"guess has shape {guess.shape}; must be x0's, {x0.shape}")
    _backward_euler_cells(x0, guess, np.ascontiguousarray(cell_parameter_array(cell)),
                          np.ascontiguousarray(np.broadcast_to(dt, x0.shape[1:]), dtype=float), int(max_iterations),
                          float(tolerance), table, thermalize, int(escape), out, converged)
    return out, converged

def integrate_chunk(network, x0, cell, dt, t_end, rtol, settings, eps=None):
    """Integrate one chunk of cells with the compiled backend.

    Parameters
    ----------
    network : PrimordialNetwork
        Must provide ``compiled_kernel()`` (see :func:`supports`).
    x0 : ndarray, shape (7, n)
    cell : dict
        ``network.cell_parameters(n_H)`` of these cells.
    dt, t_end, rtol : ndarray, shape (n,)
        Output time [s], end of the integration [s] (the timescale horizon, or dt) and relative
        tolerance per cell.
    settings : SolverSettings
    eps : float, optional
        Record timescales tau_eps (see :func:`thermoemu.solvers.rosenbrock.integrate`).

    Returns
    -------
    dict of ndarray
        ``x`` (state at dt; the last accepted state where dt was not reached), ``x_last`` (state at
        the end of the integration), ``status``, ``substeps``, ``rejected``, ``time_reached`` and,
        with ``eps``, ``tau``, ``tau_lower``, ``tau_upper``, ``tau_sign``.
    """
    from .kernel import cell_parameter_array

    table, thermalize, escape = network.compiled_kernel()
    x0 = np.ascontiguousarray(x0, dtype=float)
    n_vars, n = x0.shape
    p = np.ascontiguousarray(cell_parameter_array(cell))
    out = {"x": np.empty_like(x0), "x_last": np.empty_like(x0), "status": np.zeros(n, np.int8),
           "substeps": np.zeros(n, np.int64), "rejected": np.zeros(n, np.int64), "time_reached": np.zeros(n)}
    timescales = eps is not None
    shape = (n_vars, n) if timescales else (n_vars, 0)
    tau, tau_lo, tau_hi = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    tau_sign = np.ones(shape, np.int8)
    _integrate_cells(x0, p, np.ascontiguousarray(dt, dtype=float), np.ascontiguousarray(t_end, dtype=float),
                     np.ascontiguousarray(rtol, dtype=float), float(settings.atol_abundance),
                     float(settings.atol_temperature), settings.step_control == "relative_change",
                     float(settings.max_relative_change), float(settings.change_floor), int(settings.max_substeps),
                     float(settings.abundance_floor), table, thermalize, int(escape), timescales,
                     float(eps) if timescales else 0.0, out["x"], out["x_last"], out["status"], out["substeps"],
                     out["rejected"], out["time_reached"], tau, tau_lo, tau_hi, tau_sign)
    if timescales:
        out.update(tau=tau, tau_lower=tau_lo, tau_upper=tau_hi, tau_sign=tau_sign)
    return out


def evaluate_cells(network, x, cell):
    """Right-hand side (7, n) and Jacobian (7, 7, n) from the compiled kernel, cell by cell: the
    same values as ``network.rhs_and_jacobian`` (the vectorized kernel) to round-off."""
    from .kernel import cell_parameter_array

    table, thermalize, escape = network.compiled_kernel()
    x = np.ascontiguousarray(x, dtype=float)
    f = np.empty_like(x)
    J = np.empty((x.shape[0], x.shape[0], x.shape[1]))
    _evaluate_cells(x, np.ascontiguousarray(cell_parameter_array(cell)), table, thermalize, int(escape), f, J)
    return f, J


def cell_functions(network, cell_i):
    """``fun(t, x)`` and ``jac(t, x)`` of one cell (``cell_i``: cell parameters of one cell) from
    the compiled kernel, for scipy's ``solve_ivp`` (:mod:`thermoemu.solvers.percell`)."""
    from .kernel import cell_parameter_array

    table, thermalize, escape = network.compiled_kernel()
    p = np.ascontiguousarray(cell_parameter_array(cell_i)[:, 0])
    escape = int(escape)

    def fun(_t, x):
        return _evaluate_one(np.asarray(x, dtype=float), p, table, thermalize, escape, False)[0]

    def jac(_t, x):
        return _evaluate_one(np.asarray(x, dtype=float), p, table, thermalize, escape, True)[1]

    return fun, jac
