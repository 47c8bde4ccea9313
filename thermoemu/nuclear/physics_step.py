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

Implementation (2026-12-08, docs/nuclear.md "A faster step"): one rates evaluation per substep serves f and
J; the Jacobian is summed on its structural nonzeros and I - hJ factored on its fill pattern computed
once per network (:func:`_lu_pattern`), the same arithmetic as the burner's dense code (bitwise the same
results; a row swap falls back to it). Options: ``abort`` (give a cell up once it goes below zero, with
``retry`` the finer step in the same call), ``screen_rtol`` (keep the screening factors while n_e barely
moves), ``method="ros2"`` (ROS2, adaptive) and the variants measured there (``reuse``, ``jac_every``,
``"euler-adaptive"``).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the nuclear extra brings numba
    numba = None

__all__ = ["physics_step", "restore_ye", "PHYSICS_STATUS", "METHODS", "DEFAULT_SUBSTEPS", "DEFAULT_RATIO", "DEFAULT_ROS2_TOL",
           "DEFAULT_ROS2_MAX_STEPS"]

#: Codes per cell.
PHYSICS_STATUS = {0: "ok", 2: "more than max_steps steps (ROS2)",
                  3: "rate table left its bounds (weak-rate rho Ye or T)",
                  4: "non-finite state", 5: "aborted: more than `abort` of mass fraction below zero after a substep"}
#: Steppers: linearly implicit Euler over fixed geometric substeps; ROS2 with adaptive steps.
METHODS = ("euler", "ros2", "euler-adaptive")
#: ROS2's local error tolerance per step [mass fraction] and step limit, unless given.
DEFAULT_ROS2_TOL = 1e-4
DEFAULT_ROS2_MAX_STEPS = 200
#: Substeps per step and their growth ratio (the shipped set's; measured, docs/nuclear.md).
DEFAULT_SUBSTEPS = 8
DEFAULT_RATIO = 4.0

if numba is not None:
    from .implicit import (_PIVOT_THRESHOLD, _burn_constants, _constant_arrays, _jacobian, _lu_compress, _lu_factor,
                           _lu_solve, _rates, _reactant_derivative, _ydot)

    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @_njit
    def _rates_c(Y, rho, T, base, D, screened, C, sc):
        """implicit._rates, the screening factors kept from the last evaluation while the electron density n_e
        has moved by at most ``sc[2]`` relative (0: always evaluated, the burner's rates to the bit). At
        constant T and rho, n_e follows Ye alone, which only the weak rates move: the early substeps
        of a step reuse them. sc = (cache [n_e, valid], screened base rates kept, rtol)."""
        pc, cf, wk, weak_ok, log_scor, kb, k, flux = C
        cache, kbc, rtol = sc
        if screened and rtol > 0.0 and D.pairs.shape[0] > 0:
            zy = 0.0
            ytot = 0.0
            for i in range(Y.size):
                zy += D.Z[i] * Y[i]
                ytot += Y[i]
            n_e = zy / ytot * (rho / (1 / ytot * D.consts[0]))
            if cache[1] > 0.0 and abs(n_e - cache[0]) <= rtol * cache[0]:
                return _rates(Y, rho, T, kbc, D, False, pc, wk, weak_ok, log_scor, kb, k)
            out = _rates(Y, rho, T, base, D, screened, pc, wk, weak_ok, log_scor, kb, k)
            for b in range(kb.size):
                kbc[b] = kb[b]
            cache[0] = n_e
            cache[1] = 1.0
            return out
        return _rates(Y, rho, T, base, D, screened, pc, wk, weak_ok, log_scor, kb, k)

    @_njit
    def _fun_c(z, rho, T, base, D, screened, C, sc, f):
        """implicit._fun with the rates of _rates_c."""
        pc, cf, wk, weak_ok, log_scor, kb, k, flux = C
        n = z.size - 1
        Y = z[:n]
        ye, nu_loss, ok = _rates_c(Y, rho, T, base, D, screened, C, sc)
        _ydot(Y, ye, k, D, cf, f, flux)
        f[n] = nu_loss
        return ok

    @_njit
    def _jacobian_slots(Y, ye, k, D, cf, jv, S, dr):
        """implicit._jacobian's values on the Jacobian's structural nonzeros only (jv[q] is J[Joi[q], Joj[q]] of
        :func:`_lu_pattern`): each rate's derivative by each reactant (into the work dr), then the same terms
        summed into each entry in the same order as the dense code, without the dense matrix."""
        tq, tcoef = S[15], S[16]
        for r in range(D.kind.size):
            base = (cf[r] * ye if D.ye_weight[r] else cf[r]) * k[r]
            for q in range(D.react_ptr[r], D.react_ptr[r + 1]):
                dr[q] = _reactant_derivative(Y, D, r, q, base)
        tptr = S[17]   # the terms of each nonzero, in _jacobian's order: the same sums
        for q in range(jv.size):
            x = 0.0
            for t in range(tptr[q], tptr[q + 1]):
                x += tcoef[t] * dr[tq[t]]
            jv[q] = x

    @_njit
    def _jac_into(Y, ye, k, D, cf, J, jv, S, slots):
        if slots:
            nj = S[0].size
            _jacobian_slots(Y, ye, k, D, cf, jv[:nj], S, jv[nj:])
        else:
            _jacobian(Y, ye, k, D, cf, J)

    @_njit
    def _fun_jac(z, rho, T, base, D, screened, C, sc, f, J, jv, S, slots):
        """f = dz/dt and the Jacobian at z from one evaluation of the rates (the values of implicit._fun and
        implicit._jac, which evaluate the rates each): dense into J, or with ``slots`` on its nonzeros into
        jv; returns ok (False: weak table left)."""
        pc, cf, wk, weak_ok, log_scor, kb, k, flux = C
        n = z.size - 1
        Y = z[:n]
        ye, nu_loss, ok = _rates_c(Y, rho, T, base, D, screened, C, sc)
        _ydot(Y, ye, k, D, cf, f, flux)
        f[n] = nu_loss
        _jac_into(Y, ye, k, D, cf, J, jv, S, slots)
        return ok

    @_njit
    def _lu_factor_static(J, jv, c, order, LU, piv, cols, S, dirty):
        """_lu_factor's LU of (I - c J) on the fill pattern computed once per network (:func:`_lu_pattern`):
        no scans of the dense matrix, the same arithmetic on every nonzero (bitwise the same factors). Where
        the threshold pivoting would swap rows, falls back to _lu_factor. Returns True when the static
        pattern holds the factors (False: the fallback ran, compress with _lu_compress); ``dirty[0]``: LU
        holds entries outside the pattern (after a fallback) and is zeroed first."""
        Jpi, Jpj, Joi, Joj, Fi, Fj, rptr, rows, cptr, ccols = S[0], S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8], S[9]
        m = J.shape[0]
        if dirty[0]:
            for i in range(m):
                for j in range(m):
                    LU[i, j] = 0.0
            dirty[0] = False
        else:   # the entries the Jacobian and the diagonal do not set
            for q in range(S[18].size):
                LU[Fi[S[18][q]], Fj[S[18][q]]] = 0.0
        for q in range(Jpi.size):   # jv: the Jacobian's nonzeros, then _jacobian_slots' work
            LU[Jpi[q], Jpj[q]] = -c * jv[q]
        for i in range(m):
            LU[i, i] += 1.0
        for kk in range(m):
            big = abs(LU[kk, kk])
            for q in range(rptr[kk], rptr[kk + 1]):
                v = abs(LU[rows[q], kk])
                if v > big:
                    big = v
            if abs(LU[kk, kk]) < _PIVOT_THRESHOLD * big:   # a row swap: the burner's LU on the dense J
                dirty[0] = True
                m = J.shape[0]
                for i in range(m):
                    for j in range(m):
                        J[i, j] = 0.0
                for q in range(Jpi.size):
                    J[Joi[q], Joj[q]] = jv[q]
                _lu_factor(J, c, order, LU, piv, cols)
                return False
            piv[kk] = kk
            p = LU[kk, kk]
            if p == 0.0:
                continue
            for q in range(rptr[kk], rptr[kk + 1]):
                i = rows[q]
                lo = LU[i, kk]
                if lo != 0.0:
                    lo /= p
                    LU[i, kk] = lo
                    for t in range(cptr[kk], cptr[kk + 1]):
                        j = ccols[t]
                        LU[i, j] -= lo * LU[kk, j]
        return True

    @_njit
    def _lu_gather(LU, S, Lv, Uv, dinv):
        """The static pattern's factor values in _lu_compress's layout (the indices: S's sLp, sLi, sUp, sUi)."""
        sLp, sLi, sUp, sUi = S[10], S[11], S[12], S[13]
        m = LU.shape[0]
        for i in range(m):
            for q in range(sLp[i], sLp[i + 1]):
                Lv[q] = LU[i, sLi[q]]
            for q in range(sUp[i], sUp[i + 1]):
                Uv[q] = LU[i, sUi[q]]
            dinv[i] = 1.0 / LU[i, i]

    @_njit
    def _factor(J, jv, c, D, LU, piv, cols, S, dirty, Lp, Li, Lv, Up, Ui, Uv, dinv, use_static):
        """Factor I - c J and compress: with the static pattern where ``use_static`` (then the solve takes
        S's indices, returned True) or as the burner does. Returns whether the static indices apply."""
        if use_static and _lu_factor_static(J, jv, c, D.order, LU, piv, cols, S, dirty):
            _lu_gather(LU, S, Lv, Uv, dinv)
            return True
        if not use_static:
            _lu_factor(J, c, D.order, LU, piv, cols)
        _lu_compress(LU, Lp, Li, Lv, Up, Ui, Uv, dinv)
        return False

    @_njit
    def _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, b, x, w):
        """x = (I - c J)^-1 b with the factors of _factor."""
        if static:
            _lu_solve(piv, D.order, S[10], S[11], Lv, S[12], S[13], Uv, dinv, b, x, w)
        else:
            _lu_solve(piv, D.order, Lp, Li, Lv, Up, Ui, Uv, dinv, b, x, w)

    @_njit
    def _physics_cell(z0, rho, T, base, D, screened, A, dt, substeps, ratio, reuse, jac_every, abort, C, ws, S, out,
                      have_f0=False):
        """One cell: z after dt into out[:m], then the loss rate at the end, the error estimate and the
        substeps taken; returns a status code (5: aborted, more than ``abort`` of mass fraction below zero
        after a substep). ``reuse`` > 1: groups of that many equal substeps share one Jacobian and LU
        (the first of each group's), the groups growing by ``ratio``; ``have_f0``: the work arrays hold f and the
        Jacobian at z0 already (a step aborted after its first substep); ``jac_every`` > 1: the Jacobian is
        evaluated at the start of every jac_every-th group only (a W-method: each group still factors its
        own I - h J with the Jacobian last evaluated)."""
        f, f_new, z, rhs, x, w, J, LU, piv, cols, Lp, Li, Lv, Up, Ui, Uv, dinv, k1, z1, dirty, use_static, jv = ws[:22]
        scache, kbc, srtol = ws[22:]
        static = False
        m = z0.size
        n = m - 1
        for i in range(m):
            z[i] = z0[i]
        groups = (substeps + reuse - 1) // reuse
        h = dt / substeps if ratio == 1.0 else dt * (ratio - 1.0) / (reuse * (ratio**groups - 1.0))
        if not have_f0 and not _fun_jac(z, rho, T, base, D, screened, C, (scache, kbc, srtol[0]), f, J, jv, S,
                                        use_static[0]):
            return 3
        error = 0.0
        done = 0.0
        for s in range(substeps):
            first = s % reuse == 0
            if s == substeps - 1:
                h = dt - done if reuse > 1 else h
            if first:
                static = _factor(J, jv, h, D, LU, piv, cols, S, dirty, Lp, Li, Lv, Up, Ui, Uv, dinv, use_static[0])
            for i in range(m):
                rhs[i] = h * f[i]
            _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, x, w)
            for i in range(m):
                z[i] += x[i]
            done += h
            if abort > 0.0:
                neg = 0.0
                for i in range(n):
                    if z[i] < 0.0:
                        neg -= A[i] * z[i]
                if neg > abort:
                    out[m + 2] = s + 1
                    return 5
            # the rates at the new state serve its right-hand side and, if a group starts there, its Jacobian
            new_jac = s < substeps - 1 and (s + 1) % reuse == 0 and ((s + 1) // reuse) % jac_every == 0
            sc = (scache, kbc, srtol[0])
            ok = _fun_jac(z, rho, T, base, D, screened, C, sc, f_new, J, jv, S, use_static[0]) if new_jac \
                else _fun_c(z, rho, T, base, D, screened, C, sc, f_new)
            if not ok:
                return 3
            for i in range(n):
                error += 0.5 * h * A[i] * abs(f_new[i] - f[i])
            for i in range(m):
                f[i] = f_new[i]
            if (s + 1) % reuse == 0:
                h *= ratio
        for i in range(m):
            if not np.isfinite(z[i]):
                return 4
            out[i] = z[i]
        out[m] = f[n]
        out[m + 1] = error
        out[m + 2] = substeps
        return 0

    #: ROS2's gamma (Verwer, Spee, Blom & Hundsdorfer 1999, SIAM J. Sci. Comput. 20, 1456): L-stable.
    _ROS2_GAMMA = 1.0 + 1.0 / np.sqrt(2.0)

    @_njit
    def _ros2_cell(z0, rho, T, base, D, screened, A, dt, tol, max_steps, substeps, ratio, C, ws, S, out):
        """One cell with ROS2 and its embedded first-order solution, adaptive steps: z after dt into
        out[:m], the loss rate at the end, the summed local error estimates [mass fraction] and the
        steps taken (accepted and rejected); returns a status code (2: more than max_steps steps)."""
        f, f1, z, rhs, k2, w, J, LU, piv, cols, Lp, Li, Lv, Up, Ui, Uv, dinv, k1, z1, dirty, use_static, jv = ws[:22]
        scache, kbc, srtol = ws[22:]
        m = z0.size
        n = m - 1
        for i in range(m):
            z[i] = z0[i]
        if not _fun_jac(z, rho, T, base, D, screened, C, (scache, kbc, srtol[0]), f, J, jv, S, use_static[0]):
            return 3
        # first step: the first-order change in mass fraction equal to tol, at least dt 2^-40
        rate = 0.0
        for i in range(n):
            rate += A[i] * abs(f[i])
        h = dt if rate * dt <= tol else max(tol / rate, dt * 2.0**-40)
        adaptive = tol > 0.0
        if not adaptive:   # a fixed geometric schedule, as the Euler step's
            max_steps = substeps
            h = dt / substeps if ratio == 1.0 else dt * (ratio - 1.0) / (ratio**substeps - 1.0)
        t = 0.0
        error = 0.0
        steps = 0
        g = _ROS2_GAMMA
        while t < dt:
            if steps >= max_steps:
                return 2
            steps += 1
            last = h >= (dt - t) * (1.0 - 1e-9)
            if last:
                h = dt - t
            static = _factor(J, jv, g * h, D, LU, piv, cols, S, dirty, Lp, Li, Lv, Up, Ui, Uv, dinv, use_static[0])
            _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, f, k1, w)
            for i in range(m):
                z1[i] = z[i] + h * k1[i]
            if not _fun_c(z1, rho, T, base, D, screened, C, (scache, kbc, srtol[0]), f1):
                return 3
            for i in range(m):
                rhs[i] = f1[i] - 2.0 * k1[i]
            _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, k2, w)
            if not adaptive:
                err = 0.0
                for i in range(n):
                    err += A[i] * abs(0.5 * h * (k1[i] + k2[i]))
                t = dt if last else t + h
                error += err
                for i in range(m):
                    z[i] += 1.5 * h * k1[i] + 0.5 * h * k2[i]
                sc = (scache, kbc, srtol[0])
                ok = _fun_c(z, rho, T, base, D, screened, C, sc, f) if last else \
                    _fun_jac(z, rho, T, base, D, screened, C, sc, f, J, jv, S, use_static[0])
                if not ok:
                    return 3
                h *= ratio
                continue
            # the embedded first-order solution's difference, filtered by (I - gamma h J)^-1 (Shampine): its
            # stiff components (free nucleons, light particles near their quasi-steady values) would
            # otherwise count the embedded method's poor damping (R(-inf) = 1 - 1/gamma) as error
            for i in range(m):
                rhs[i] = 0.5 * h * (k1[i] + k2[i])
            _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, z1, w)
            err = 0.0
            for i in range(n):
                err += A[i] * abs(z1[i])
            if not np.isfinite(err):
                err = np.inf
            if err <= tol:
                t = dt if last else t + h
                error += err
                for i in range(m):
                    z[i] += 1.5 * h * k1[i] + 0.5 * h * k2[i]
                if not _fun_jac(z, rho, T, base, D, screened, C, (scache, kbc, srtol[0]), f, J, jv, S, use_static[0]):
                    return 3
                fac = 5.0 if err == 0.0 else min(5.0, 0.9 * np.sqrt(tol / err))
            else:
                fac = max(0.2, 0.9 * np.sqrt(tol / err)) if np.isfinite(err) else 0.2
            h *= fac
        for i in range(m):
            if not np.isfinite(z[i]):
                return 4
            out[i] = z[i]
        out[m] = f[n]
        out[m + 1] = error
        out[m + 2] = steps
        return 0

    @_njit
    def _euler_adaptive_cell(z0, rho, T, base, D, screened, A, dt, tol, max_steps, neg_tol, C, ws, S, out):
        """One cell with linearly implicit Euler steps whose size follows the trapezoidal estimate the
        fixed schedule computes (h/2 sum_i A_i |f(z_k+1) - f(z_k)| per step below ``tol``; a step that
        leaves more than ``neg_tol`` of mass fraction below zero is rejected too): z after dt into out[:m],
        the loss rate at the end, the summed estimates and the steps taken (with the rejected)."""
        f, f_new, z, rhs, x, w, J, LU, piv, cols, Lp, Li, Lv, Up, Ui, Uv, dinv, k1, z1, dirty, use_static, jv = ws[:22]
        scache, kbc, srtol = ws[22:]
        pc, cf, wk, weak_ok, log_scor, kb, k, flux = C
        m = z0.size
        n = m - 1
        for i in range(m):
            z[i] = z0[i]
        if not _fun_jac(z, rho, T, base, D, screened, C, (scache, kbc, srtol[0]), f, J, jv, S, use_static[0]):
            return 3
        rate = 0.0
        for i in range(n):
            rate += A[i] * abs(f[i])
        h = dt if rate * dt <= tol else max(tol / rate, dt * 2.0**-40)
        t = 0.0
        error = 0.0
        steps = 0
        while t < dt:
            if steps >= max_steps:
                return 2
            steps += 1
            last = h >= (dt - t) * (1.0 - 1e-9)
            if last:
                h = dt - t
            static = _factor(J, jv, h, D, LU, piv, cols, S, dirty, Lp, Li, Lv, Up, Ui, Uv, dinv, use_static[0])
            for i in range(m):
                rhs[i] = h * f[i]
            _solve(static, piv, D, S, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, x, w)
            neg = 0.0
            for i in range(m):
                z1[i] = z[i] + x[i]
            for i in range(n):
                if z1[i] < 0.0:
                    neg -= A[i] * z1[i]
            if neg > neg_tol:
                h *= 0.25
                continue
            ye, nu_loss, ok = _rates_c(z1[:n], rho, T, base, D, screened, C, (scache, kbc, srtol[0]))
            if not ok:
                return 3
            _ydot(z1[:n], ye, k, D, cf, f_new, flux)
            f_new[n] = nu_loss
            err = 0.0
            for i in range(n):
                err += 0.5 * h * A[i] * abs(f_new[i] - f[i])
            if not np.isfinite(err):
                err = np.inf
            if err <= tol:
                t = dt if last else t + h
                error += err
                for i in range(m):
                    z[i] = z1[i]
                    f[i] = f_new[i]
                if t < dt:
                    _jac_into(z[:n], ye, k, D, cf, J, jv, S, use_static[0])
                fac = 2.0 if err == 0.0 else min(2.0, 0.9 * np.sqrt(tol / err))
            else:
                fac = max(0.2, 0.9 * np.sqrt(tol / err)) if np.isfinite(err) else 0.2
            h *= fac
        for i in range(m):
            if not np.isfinite(z[i]):
                return 4
            out[i] = z[i]
        out[m] = f[n]
        out[m + 1] = error
        out[m + 2] = steps
        return 0

    @_njit
    def _physics_cells(z0, rho, T, base, D, screened, A, dt, method, substeps, ratio, tol, max_steps, reuse, jac_every,
                       abort, S, use_static, screen_rtol, retry_substeps, retry_ratio, out, status, retried):
        """The step over cells; with ``retry_substeps`` > 0, a cell whose Euler step aborted (status 5) is
        stepped again at once with that many substeps growing by ``retry_ratio`` (its constants, and its
        f and Jacobian at z0 when it aborted after the first substep, reused: the same results as a second
        call on that cell), ``retried`` set."""
        N, m = z0.shape
        pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.shape[1])
        ws = (np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m),
              np.zeros((m, m)), np.zeros((m, m)), np.zeros(m, np.int64), np.zeros(m, np.int64),
              np.zeros(m + 1, np.int64), np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m + 1, np.int64),
              np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m), np.zeros(m), np.zeros(m),
              np.ones(1, np.bool_), np.array([use_static]), np.zeros(S[0].size + D.react.size), np.zeros(2),
              np.zeros(base.shape[1]),
              np.array([screen_rtol]))
        for cell in range(N):
            if not _burn_constants(T[cell], rho[cell], D, pc, cf, wk):
                status[cell] = 3
                continue
            C = (pc, cf, wk, True, log_scor, kb, k, flux)
            ws[22][1] = 0.0   # the screening cache belongs to the cell before
            if method == 2:
                status[cell] = _euler_adaptive_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, A, dt[cell],
                                                    tol[cell], max_steps, abort, C, ws, S, out[cell])
            elif method == 1:
                status[cell] = _ros2_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, A, dt[cell],
                                          tol[cell], max_steps, substeps, ratio, C, ws, S, out[cell])
            else:
                status[cell] = _physics_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, A, dt[cell],
                                             substeps, ratio, reuse, jac_every, abort, C, ws, S, out[cell])
                if status[cell] == 5 and retry_substeps > 0:
                    after_first = out[cell, m + 2] == 1.0
                    if not after_first:
                        ws[22][1] = 0.0
                    status[cell] = _physics_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, A, dt[cell],
                                                 retry_substeps, retry_ratio, 1, 1, 0.0, C, ws, S, out[cell],
                                                 after_first)
                    retried[cell] = True


def physics_step(kernel, density, temperature, mass_fraction, dt, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO,
                 method="euler", tol=DEFAULT_ROS2_TOL, max_steps=DEFAULT_ROS2_MAX_STEPS, reuse=1, jac_every=1,
                 abort=0.0, retry=None, screen_rtol=0.0, base=None, static_lu=True):
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
    method : {"euler", "ros2"}
        "euler": the linearly implicit Euler substeps above; "ros2": ROS2 (second order, L-stable, one
        Jacobian and LU per step, two solves) with adaptive steps, ``substeps`` and ``ratio`` unused.
    tol : float or array_like (N,)
        ROS2 only: the local error per step [mass fraction, sum_i A_i |.|] a step must stay below (> 0); one
        per cell where given so (the accurate set's second pass, :class:`~thermoemu.nuclear.physics_first.PhysicsFirstNNN`).
    max_steps : int
        ROS2 only: steps (accepted and rejected) before the cell is given up (status 2).
    reuse : int
        Euler only: substeps in a group of equal ones that share the group's first Jacobian and LU (1: each
        its own; the shipped steps).
    jac_every : int
        Euler only: evaluate the Jacobian every jac_every-th group of substeps only (1: every one).
    abort : float
        Euler only: give a cell up (status 5) once more than this mass fraction is below zero after a
        substep; 0: never.
    retry : (int, float), optional
        With ``abort``: (substeps, ratio) of an Euler step taken at once on the cells the first one gives
        up (``retried``; the same as stepping them again, without redoing what they share).
    screen_rtol : float
        Keep a substep's screening factors for the next while the electron density moved by at most this,
        relative (it follows Ye only, which the weak rates move slowly); 0: evaluate them at every call
        (the burner's rates to the bit).
    base : numpy.ndarray (N, base rates), optional
        ``kernel.base_rates(temperature)`` if the caller has it (a second step of the same cells).
    static_lu : bool
        Factor with the network's fill pattern computed once (:func:`_lu_pattern`; the same factors
        to the bit, falling back to the burner's LU where a row swap is needed); False: the burner's LU.

    Returns
    -------
    dict
        ``mass_fraction`` (N, isotopes), clipped at 0 and renormalized; ``e_nuc`` [erg g^-1];
        ``eps_nu`` [erg g^-1 s^-1]; ``error``: the step's error estimate [mass fraction];
        ``negative``: mass fraction below zero before the clip; ``status`` (:data:`PHYSICS_STATUS`;
        non-zero: that cell's outputs are NaN); ``steps``: substeps taken (ROS2: with the rejected ones);
        ``retried``: the cells the ``retry`` step answers.
    """
    net = kernel.network
    rho = np.ascontiguousarray(np.atleast_1d(np.asarray(density, float)))
    T = np.ascontiguousarray(np.broadcast_to(np.asarray(temperature, float), rho.shape))
    X0 = np.ascontiguousarray(np.atleast_2d(np.asarray(mass_fraction, float)))
    dt = np.ascontiguousarray(np.broadcast_to(np.asarray(dt, float), rho.shape))
    bad = ~(np.isfinite(dt) & (dt > 0))
    if bad.any():
        raise ValueError(f"dt = {float(dt[bad][0])!r} s: must be finite and > 0")
    if method not in METHODS:
        raise ValueError(f"physics step method = {method!r}: one of {', '.join(map(repr, METHODS))}")
    if int(substeps) < 1 or not float(ratio) >= 1.0:
        raise ValueError(f"substeps = {substeps!r} must be >= 1 and ratio = {ratio!r} >= 1")
    tol = np.ascontiguousarray(np.broadcast_to(np.asarray(tol, float), rho.shape))
    bad_tol = ~((tol >= 0.0) & (tol < 1.0))
    if method != "euler" and (bad_tol.any() or int(max_steps) < 1):
        shown = float(tol[bad_tol][0]) if bad_tol.any() else float(tol[0]) if tol.size else 0.0
        raise ValueError(f"ROS2 tol = {shown!r} must be in [0, 1) (0: the fixed substeps) and max_steps = {max_steps!r} "
                         f">= 1")
    if not 0.0 <= float(screen_rtol) < 1e-3:
        raise ValueError(f"screen_rtol = {screen_rtol!r} must be in [0, 1e-3)")
    if int(reuse) < 1 or int(jac_every) < 1 or not float(abort) >= 0.0:
        raise ValueError(f"reuse = {reuse!r} and jac_every = {jac_every!r} must be >= 1 and abort = {abort!r} >= 0")
    N, n = X0.shape
    if n != len(net.isotopes) or N != rho.size:
        raise ValueError(f"mass_fraction has shape {X0.shape}; expected ({rho.size}, {len(net.isotopes)}) "
                         f"for network {net.name}")
    A = np.ascontiguousarray(net.A, dtype=float)
    z0 = np.zeros((N, n + 1))
    z0[:, :n] = X0 / A
    out = np.full((N, n + 4), np.nan)
    status = np.zeros(N, np.int64)
    retried = np.zeros(N, dtype=bool)
    if retry is not None and (method != "euler" or not float(abort) > 0.0 or int(retry[0]) < 1
                              or not float(retry[1]) >= 1.0):
        raise ValueError(f"retry = {retry!r}: (substeps >= 1, ratio >= 1) of the cells an Euler step with abort > 0 "
                         f"gives up")
    if N:
        base = kernel.base_rates(T) if base is None else np.ascontiguousarray(base, dtype=float)
        _physics_cells(z0, rho, T, base, kernel.data, kernel.screening, A, dt, METHODS.index(method),
                       int(substeps), float(ratio), tol, int(max_steps), int(reuse), int(jac_every),
                       float(abort),
                       _lu_pattern(kernel.data), bool(static_lu), float(screen_rtol),
                       0 if retry is None else int(retry[0]), 1.0 if retry is None else float(retry[1]), out, status,
                       retried)
    ok = status == 0
    out[~ok] = np.nan
    X = out[:, :n] * A
    negative = -np.minimum(X, 0.0).sum(axis=1)
    Xc = np.maximum(X, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        Xc = Xc / Xc.sum(axis=1, keepdims=True)
    e_nuc = _mass_excess_release(net, out[:, :n] - z0[:, :n]) - out[:, n]
    with np.errstate(invalid="ignore", divide="ignore"):
        ye = (out[:, :n] @ np.asarray(net.Z, float)) / (out[:, :n] @ A)   # before the clip: the step's own Ye
    return {"mass_fraction": Xc, "e_nuc": e_nuc, "eps_nu": out[:, n + 1], "error": out[:, n + 2],
            "negative": negative, "status": status, "steps": out[:, n + 3], "retried": retried, "ye": ye}


#: :func:`restore_ye` leaves a cell as it is where its correction would change an abundance by more than this
#: factor (1 + a + b q_i outside [1 - RESTORE_YE_MAX, 1 + RESTORE_YE_MAX]): a composition whose Z/A barely varies.
RESTORE_YE_MAX = 0.5


def restore_ye(mass_fraction, ye, z_over_a):
    """Clipped, renormalized mass fractions ``mass_fraction`` (N, isotopes) given back the Ye ``ye`` (N,) of the
    unclipped result, keeping sum_i X_i = 1: the least change in sum_i dX_i^2 / X_i, X_i -> X_i (1 + a + b q_i)
    (q_i = Z_i/A_i; a, b from the 2x2 system of the two constraints), so zeros stay zero and nothing turns
    negative. Clipping the 1e-8..1e-3 of mass fraction a step leaves below zero moves Ye by about that much
    (free neutrons q = 0, protons q = 1), more than a slow cell's true change (docs/nuclear.md, "Ye through the
    clip"). Cells with a non-finite ``ye`` or a correction larger than :data:`RESTORE_YE_MAX` are returned as
    given. Returns a new array."""
    X = np.array(mass_fraction, dtype=float, copy=True, ndmin=2)
    q = np.asarray(z_over_a, float)
    ye = np.broadcast_to(np.asarray(ye, float), X.shape[:1])
    for _ in range(2):   # the second pass takes the first one's rounding
        s0, y0 = X.sum(axis=1), X @ q
        r1, r2 = 1.0 - s0, ye - y0
        with np.errstate(invalid="ignore", divide="ignore"):
            qbar = y0 / s0
            q2 = X @ (q * q)
            det = s0 * (X * (q[None, :] - qbar[:, None]) ** 2).sum(axis=1)   # s0 q2 - y0^2, without cancelling
            a = (q2 * r1 - y0 * r2) / det
            b = (s0 * r2 - y0 * r1) / det
            factor = 1.0 + a[:, None] + b[:, None] * q[None, :]
        ok = (np.isfinite(factor).all(axis=1) & (np.abs(factor - 1.0) <= RESTORE_YE_MAX).all(axis=1)
              & np.isfinite(X).all(axis=1))
        X[ok] *= factor[ok]
    return X


_PATTERNS: dict = {}


def _lu_pattern(D):
    """The fill pattern of the LU of I - c J without row swaps, in the elimination order, for network
    arrays ``D``: the Jacobian's structural nonzeros (every (product, reactant) pair of a rate) and their
    places in the permuted matrix, the fill, per pivot the rows below it and the columns right of it, and
    the compressed L and U indices row by row (ascending, as _lu_compress orders them). Cached per ``D``."""
    key = id(D)
    if key in _PATTERNS and _PATTERNS[key][0] is D:
        return _PATTERNS[key][1]
    n = D.Z.size
    m = n + 1
    Jp = np.zeros((m, m), bool)
    for r in range(D.kind.size):
        for q in range(D.react_ptr[r], D.react_ptr[r + 1]):
            for s in range(D.coef_ptr[r], D.coef_ptr[r + 1]):
                Jp[D.coef_nuc[s], D.react[q]] = True
    order = np.asarray(D.order)
    pos = np.empty(m, np.int64)
    pos[order] = np.arange(m)
    Joi, Joj = np.nonzero(Jp)
    Jpi, Jpj = pos[Joi], pos[Joj]
    index = {(a, b): q for q, (a, b) in enumerate(zip(Joi.tolist(), Joj.tolist()))}
    terms = [(index[int(D.coef_nuc[s]), int(D.react[q])], q, float(D.coef[s]))   # _jacobian's loop order
             for r in range(D.kind.size) for q in range(D.react_ptr[r], D.react_ptr[r + 1])
             for s in range(D.coef_ptr[r], D.coef_ptr[r + 1])]
    jslot, tq, tcoef = (np.array(v) for v in zip(*terms))
    by_slot = np.argsort(jslot, kind="stable")   # each nonzero's terms, in their order
    jslot, tq, tcoef = jslot[by_slot], tq[by_slot], tcoef[by_slot]
    tptr = np.concatenate([[0], np.cumsum(np.bincount(jslot, minlength=Joi.size))])
    P = Jp[np.ix_(order, order)] | np.eye(m, dtype=bool)
    rows, cols, rptr, cptr = [], [], [0], [0]
    for k in range(m):
        below = np.flatnonzero(P[k + 1:, k]) + k + 1
        right = np.flatnonzero(P[k, k + 1:]) + k + 1
        P[np.ix_(below, right)] = True
        rows.extend(below)
        cols.extend(right)
        rptr.append(len(rows))
        cptr.append(len(cols))
    Fi, Fj = np.nonzero(P)
    set_by_j = np.zeros((m, m), bool)
    set_by_j[Jpi, Jpj] = True   # (a diagonal entry the Jacobian does not set is zeroed, then gets its 1)
    fill_only = np.flatnonzero(~set_by_j[Fi, Fj])
    L = np.tril(P, -1)
    U = np.triu(P, 1)
    as_int = lambda v: np.ascontiguousarray(v, dtype=np.int64)   # noqa: E731
    pattern = tuple(as_int(v) for v in (Jpi, Jpj, Joi, Joj, Fi, Fj, rptr, rows, cptr, cols,
                                         np.concatenate([[0], np.cumsum(L.sum(axis=1))]), np.nonzero(L)[1],
                                         np.concatenate([[0], np.cumsum(U.sum(axis=1))]), np.nonzero(U)[1], jslot,
                                         tq)) + (np.ascontiguousarray(tcoef, dtype=float),) \
        + tuple(as_int(v) for v in (tptr, fill_only))
    _PATTERNS[key] = (D, pattern)
    return pattern


#: The atomic mass unit's rest energy [erg] (CODATA 2018: 931.49410242 MeV x 1.602176634e-6 erg/MeV).
_M_U_C2_ERG = 931.49410242 * 1.602176634e-6


def _mass_excess_release(net, dY):
    """Energy released by the change ``dY`` [mol g^-1] (rows) [erg g^-1], from the mass excesses (the nuclear
    rest energies less A m_u c^2): equal to the burner's mass-change energy when sum_i A_i dY_i = 0, and
    insensitive to the round-off imbalance of it that the solves leave (the full rest energies would
    multiply it by ~1e21 erg/g)."""
    excess = np.asarray(net.module.mass, float) - np.asarray(net.A, float) * _M_U_C2_ERG
    return -(dY @ excess) * net.module.N_A
