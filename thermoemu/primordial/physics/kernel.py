"""Right-hand side and analytic Jacobian of the primordial network, written once for two executions.

Every function here is plain Python over "cell values": called with numpy arrays whose trailing
axis runs over cells (array-generic calls only, so cupy arrays in principle; not yet run on a GPU),
it is the vectorized network that :class:`PrimordialNetwork` uses;
called from numba-compiled code (:mod:`thermoemu.primordial.physics.compiled`) with scalars, it is compiled
per cell (``numba.extending.register_jitable``). Where the two need different code (a branch, the
stoichiometric sums) a small helper has a numpy body and a numba overload.

Arguments, per cell:

* ``x`` (7): y(H), y(H2), y(e-), y(H+), y(H-), y(H2+) [1] and T [K];
* ``c``, ``dc`` (:data:`N_COEFFICIENTS`): the temperature-only coefficients at T (layout of
  :data:`~thermoemu.primordial.physics.layout.COEFFICIENT_COLUMNS`) and their derivatives d/dT;
* ``p`` (:data:`N_CELL_PARAMETERS`): n_H [cm^-3], log10 n_H, rho [g cm^-3], the H2 line escape
  probability and the Lyman-alpha trapping factor.

The Jacobian is exact for the model as evaluated (coefficients included: the table's cubic pieces
are differentiated in closed form), so the temperature row and column carry no finite-difference
error; the chemistry block is mass action. Physics and sources: ``network.py``, ``rates.py``,
``cooling.py``, ``thermo.py`` and ../shared/physics/primordial.md.
"""

from __future__ import annotations

import numpy as np

from ...constants import G_NEWTON, K_BOLTZMANN, M_HYDROGEN, SIGMA_SB, Y_HE
from .layout import (
    _COL,
    _RATE_COLS,
    _TABLE_LOGT_MIN,
    _TABLE_PER_DEX,
    N_REACTIONS,
    RADIATIVE,
    REACTION_ENERGY,
    REACTIONS,
    STOICHIOMETRY,
    THERMALIZED,
)
from .rates import K6_MIN_TEMPERATURE

try:  # numba is optional: without it the functions below are plain numpy code
    from numba import types
    from numba.extending import overload, register_jitable
except ImportError:  # pragma: no cover - exercised only without numba
    types = overload = None

    def register_jitable(f):
        return f

__all__ = ["N_CELL_PARAMETERS", "ESCAPE_CODES", "cell_parameter_array", "table_coefficients",
           "rhs_jacobian", "cooling_terms", "continuum_escape"]

#: Rows of the cell-parameter array ``p``.
N_CELL_PARAMETERS = 5
#: ``continuum_escape`` option -> integer code used inside the kernel.
ESCAPE_CODES = {"diffusion": 0, "slab": 1, "exponential": 2}

LN10 = float(np.log(10.0))
FOUR_SIGMA_SB = 4.0 * SIGMA_SB
#: pi k / (G m_H (1 + 4 y_He)): Jeans length^2 = this * T (sum y + y_He) / rho.
_JEANS_FACTOR = np.pi * K_BOLTZMANN / (G_NEWTON * M_HYDROGEN * (1.0 + 4.0 * Y_HE))
_K6_MIN_T = float(K6_MIN_TEMPERATURE)

# column offsets (plain ints: compile-time constants for numba)
_C_K = _COL["k"].start
_C_K6 = _COL["k6"].start
_C_K9 = _COL["k9"].start
_C_LTE = _COL["h2_lte"].start
_C_GAMMA = _COL["h2_gamma"].start
_C_LYA = _COL["lya"].start
_C_REC = _COL["rec"].start
_C_FF = _COL["ff"].start
_C_HMBF = _COL["hm_bf"].start
_C_ATTACH = _COL["hm_attach"].start
_C_HMFF = _COL["hm_ff"].start
_C_CIE = _COL["cie"].start
_C_CVH2 = _COL["cv_h2"].start
_C_FTH = _COL["fth"].start

#: Reaction j's reactant species (-1: none), its net stoichiometry as (species, coefficient) pairs,
#: its distinct reactants (the slots of dr_j/dy), and its heat per event [erg] (0 if radiative).
_REACTANTS = np.full((N_REACTIONS, 3), -1, np.int64)
_NU_SPECIES = np.full((N_REACTIONS, 5), -1, np.int64)
_NU_VALUE = np.zeros((N_REACTIONS, 5))
_NU_COUNT = np.zeros(N_REACTIONS, np.int64)
_SLOTS = np.full((N_REACTIONS, 3), -1, np.int64)
for _j, (_reac, _prod, _) in enumerate(REACTIONS):
    _REACTANTS[_j, :len(_reac)] = _reac
    _SLOTS[_j, :len(set(_reac))] = sorted(set(_reac))
    _net = {}
    for _s in _reac:
        _net[_s] = _net.get(_s, 0) - 1
    for _s in _prod:
        _net[_s] = _net.get(_s, 0) + 1
    _pairs = [(s, v) for s, v in sorted(_net.items()) if v != 0]
    _NU_COUNT[_j] = len(_pairs)
    for _a, (_s, _v) in enumerate(_pairs):
        _NU_SPECIES[_j, _a], _NU_VALUE[_j, _a] = _s, _v
_RATE_COLUMNS = np.array(_RATE_COLS, np.int64)
_HEAT = np.where(RADIATIVE, 0.0, REACTION_ENERGY)
_IS_THERMALIZED = np.array([j in THERMALIZED for j in range(N_REACTIONS)])
_THERMALIZED_HEAT = np.where(_IS_THERMALIZED, _HEAT, 0.0)
_PLAIN_HEAT = np.where(_IS_THERMALIZED, 0.0, _HEAT)


def cell_parameter_array(cell):
    """The ``p`` array, shape (N_CELL_PARAMETERS, n), from a ``cell_parameters`` dict."""
    return np.stack([np.asarray(cell[k], dtype=float)
                     for k in ("n_H", "log_n_H", "rho", "beta_h2", "lya_trap")])


# ---------------------------------------------------------------------- helpers with two bodies
def select(condition, a, b):
    """``a`` where ``condition`` else ``b`` (numpy: np.where; numba scalars: a branch)."""
    return np.where(condition, a, b)


def assemble_species(r, D, f, J, jacobian):
    """Species rows: ``f_i = sum_j nu_ij r_j`` and, with ``jacobian``, ``J_im = sum_j nu_ij dr_j/dx_m``
    (m = 0..6; ``D`` zero outside the reactant slots)."""
    f[:6] = np.tensordot(STOICHIOMETRY, r, axes=1)
    if jacobian:
        J[:6] = np.tensordot(STOICHIOMETRY, D, axes=1)


if overload is not None:
    @overload(select)
    def _select_scalar(condition, a, b):
        if isinstance(condition, types.Boolean):
            def impl(condition, a, b):
                return a if condition else b
            return impl

    @overload(assemble_species)
    def _assemble_species_scalar(r, D, f, J, jacobian):
        def impl(r, D, f, J, jacobian):
            for i in range(6):
                f[i] = 0.0
                if jacobian:
                    for m in range(7):
                        J[i, m] = 0.0
            for j in range(N_REACTIONS):
                for a in range(_NU_COUNT[j]):
                    i = _NU_SPECIES[j, a]
                    v = _NU_VALUE[j, a]
                    f[i] += v * r[j]
                    if not jacobian:
                        continue
                    for q in range(3):
                        m = _SLOTS[j, q]
                        if m >= 0:
                            J[i, m] += v * D[j, m]
                    J[i, 6] += v * D[j, 6]
        return impl


# ---------------------------------------------------------------------- coefficients
@register_jitable
def table_coefficients(T, table, c, dc):
    """Coefficients and d/dT at ``T`` [K] from the monotone cubic table, one cell (numba).

    ``table`` is laid out (grid point, column, power); outside 1 K..1e6 K the end values hold
    and the derivative is zero (as the vectorized lookup clamps). A non-finite or non-positive T
    gives NaN coefficients, so the step that produced it is rejected.
    """
    n_grid = table.shape[0]
    n_col = table.shape[1]
    if not (T > 0.0 and T < np.inf):
        for j in range(n_col):
            c[j] = np.nan
            dc[j] = np.nan
        return
    u = (np.log10(T) - _TABLE_LOGT_MIN) * _TABLE_PER_DEX
    du_dT = _TABLE_PER_DEX / (T * LN10)
    top = n_grid - 1.000001
    if u < 0.0:
        u = 0.0
        du_dT = 0.0
    elif u > top:
        u = top
        du_dT = 0.0
    i = int(u)
    s = u - i
    for j in range(n_col):
        a0 = table[i, j, 0]
        a1 = table[i, j, 1]
        a2 = table[i, j, 2]
        a3 = table[i, j, 3]
        c[j] = a0 + s * (a1 + s * (a2 + s * a3))
        dc[j] = (a1 + s * (2.0 * a2 + 3.0 * s * a3)) * du_dT


# ---------------------------------------------------------------------- kinetics
@register_jitable
def rate_constants(c, dc, p, T, kn, dkn):
    """``kn_j = k_j n_H^(order-1)`` [s^-1] and d/dT, for the 18 reactions (OS25 Table 4)."""
    n = p[0]
    log_n = p[1]
    for q in range(_RATE_COLUMNS.shape[0]):
        j = _RATE_COLUMNS[q]
        kn[j] = c[_C_K + q] * n
        dkn[j] = dc[_C_K + q] * n
    # k6, Martin, Schwarz & Mandy (1996): two sets of (A_h, A_l, B_h, B_l, log nc1, log nc2, p)
    k6 = 0.0 * T
    dk6 = 0.0 * T
    for s in range(2):
        o = _C_K6 + 7 * s
        a_h, a_l, b_h, b_l = c[o], c[o + 1], c[o + 2], c[o + 3]
        lc1, lc2, pw = c[o + 4], c[o + 5], c[o + 6]
        z1 = pw * (log_n - lc1)
        z2 = pw * (log_n - lc2)
        x1 = np.exp(LN10 * np.minimum(z1, 300.0))
        x2 = np.exp(LN10 * np.minimum(z2, 300.0))
        dz1 = select(z1 < 300.0, dc[o + 6] * (log_n - lc1) - pw * dc[o + 4], 0.0)
        dz2 = select(z2 < 300.0, dc[o + 6] * (log_n - lc2) - pw * dc[o + 5], 0.0)
        w1 = 1.0 / (1.0 + x1)
        w2 = 1.0 / (1.0 + x2)
        log_k = a_h - (a_h - a_l) * w1 + b_h - (b_h - b_l) * w2
        dlog_k = (dc[o] - (dc[o] - dc[o + 1]) * w1 + (a_h - a_l) * w1 * w1 * x1 * LN10 * dz1
                  + dc[o + 2] - (dc[o + 2] - dc[o + 3]) * w2 + (b_h - b_l) * w2 * w2 * x2 * LN10 * dz2)
        term = np.exp(LN10 * log_k)
        k6 = k6 + term
        dk6 = dk6 + term * LN10 * dlog_k
    on = T >= _K6_MIN_T
    kn[5] = select(on, k6, 0.0) * n
    dkn[5] = select(on, dk6, 0.0) * n
    # k9: kH^(1-a) kL^a, a = 1 / (1 + n_H / n_cr)
    ln_kh, ln_kl, log_ncr = c[_C_K9], c[_C_K9 + 1], c[_C_K9 + 2]
    z = log_n - log_ncr
    xz = np.exp(LN10 * np.minimum(z, 300.0))
    a = 1.0 / (1.0 + xz)
    da = select(z < 300.0, a * a * xz * LN10 * dc[_C_K9 + 2], 0.0)
    k9 = np.exp((1.0 - a) * ln_kh + a * ln_kl)
    kn[8] = k9 * n
    dkn[8] = k9 * ((1.0 - a) * dc[_C_K9] + a * dc[_C_K9 + 1] + (ln_kl - ln_kh) * da) * n
    # three-body reactions 7 and 8 carry one more n_H
    kn[6] = kn[6] * n
    dkn[6] = dkn[6] * n
    kn[7] = kn[7] * n
    dkn[7] = dkn[7] * n


@register_jitable
def reaction_rates(kn, dkn, x, r, D, jacobian):
    """Events per H nucleus per second ``r_j = kn_j prod y`` and, with ``jacobian``, the slots
    ``D[j, m] = dr_j/dy_m`` for the reactants m and ``D[j, 6] = dr_j/dT``."""
    for j in range(N_REACTIONS):
        rj = kn[j]
        for a in range(3):
            s = _REACTANTS[j, a]
            if s >= 0:
                rj = rj * x[s]
        r[j] = rj
        if jacobian:
            for q in range(3):
                m = _SLOTS[j, q]
                if m >= 0:
                    D[j, m] = 0.0 * rj
            for a in range(3):
                s = _REACTANTS[j, a]
                if s < 0:
                    continue
                prod = kn[j]
                for b in range(3):
                    t = _REACTANTS[j, b]
                    if b != a and t >= 0:
                        prod = prod * x[t]
                D[j, s] = D[j, s] + prod
            dj = dkn[j]
            for a in range(3):
                s = _REACTANTS[j, a]
                if s >= 0:
                    dj = dj * x[s]
            D[j, 6] = dj


# ---------------------------------------------------------------------- thermal
@register_jitable
def continuum_escape(tau, code):
    """Continuum escape probability beta(tau) and d beta / d tau (``ESCAPE_CODES``)."""
    if code == 0:  # min(1, tau^-2)
        thick = tau > 1.0
        t = np.maximum(tau, 1e-300)
        return select(thick, 1.0 / (t * t), 1.0 + 0.0 * tau), select(thick, -2.0 / (t * t * t), 0.0 * tau)
    if code == 1:  # (1 - e^-tau) / tau
        thin = tau <= 1e-6
        t = np.maximum(tau, 1e-300)
        em = np.expm1(-t)
        beta = select(thin, 1.0 - 0.5 * tau, -em / t)
        dbeta = select(thin, -0.5 + 0.0 * tau, (t * (em + 1.0) + em) / (t * t))
        return beta, dbeta
    e = np.exp(-tau)
    return e, -e


@register_jitable
def cooling_terms(x, c, p, escape):
    """Radiative cooling by process [erg cm^-3 s^-1] and the pieces their derivatives need.

    Returns ``(h2_line, lyman_alpha, h_recombination, h_free_free, hminus_continuum, cie, beta,
    tau, l_lte, l0, absorption, jeans)``: the first six already multiplied by their escape factors
    (H2 lines: the cell's beta_h2; continuum: beta(tau) with tau the Planck-mean absorption
    [cm^-1] over a Jeans length [cm]); ``l_lte`` and ``l0`` are the LTE and low-density H2
    cooling per molecule [erg s^-1]. Physics: :mod:`thermoemu.primordial.physics.cooling`.
    """
    n = p[0]
    rho = p[2]
    T = x[6]
    nH, nH2, ne, nHp, nHm = n * x[0], n * x[1], n * x[2], n * x[3], n * x[4]
    l_lte = c[_C_LTE]
    l0 = (c[_C_GAMMA] * nH + c[_C_GAMMA + 1] * nH2 + c[_C_GAMMA + 2] * (Y_HE * n) + c[_C_GAMMA + 3] * nHp
          + c[_C_GAMMA + 4] * ne)
    h2_line = p[3] * nH2 * l_lte * l0 / np.maximum(l_lte + l0, 1e-300)
    lya = p[4] * c[_C_LYA] * ne * nH
    sigma_t4 = FOUR_SIGMA_SB * (T * T) * (T * T)
    h_ff = c[_C_FF] * ne * nHp
    hm_ff = c[_C_HMFF] * nH * ne
    cie = c[_C_CIE] * rho * nH2
    absorption = (h_ff + hm_ff + cie) / sigma_t4 + c[_C_HMBF] * nHm
    total = x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + Y_HE
    jeans = np.sqrt(_JEANS_FACTOR * T * total / rho)
    tau = absorption * jeans
    beta, _ = continuum_escape(tau, escape)
    hm = hm_ff + c[_C_ATTACH] * nH * ne
    rec = c[_C_REC] * ne * nHp
    return (h2_line, lya, beta * rec, beta * h_ff, beta * hm, beta * cie, beta, tau, l_lte, l0,
            absorption, jeans)


@register_jitable
def thermalization(x, c, p):
    """Omukai (2000) factor on the heat of H2 formation and its derivatives d/dy(H), d/dy(H2), d/dT."""
    n = p[0]
    e1, e2, ncr0 = c[_C_FTH], c[_C_FTH + 1], c[_C_FTH + 2]
    nd = n * (1.6 * x[0] * e1 + 1.4 * x[1] * e2)
    denom = nd + ncr0
    f = nd / denom
    d_nd = ncr0 / (denom * denom)
    return f, d_nd * 1.6 * n * e1, d_nd * 1.4 * n * e2, d_nd, nd


@register_jitable
def energy_rate(x, c, dc, p, r, D, thermalize, escape, f, J, jacobian):
    """``f[6] = dT/dt = (Gamma_chem - Lambda) / (n_H c_v)`` [K s^-1] and, with ``jacobian``,
    the temperature row ``J[6, m]`` (m = 0..6). ``r``, ``D`` from :func:`reaction_rates`."""
    n = p[0]
    rho = p[2]
    T = x[6]
    k = K_BOLTZMANN
    # --- chemical heating: n_H sum_j q_j r_j, thermalized for H2 formation
    plain = 0.0 * T
    therm = 0.0 * T
    for j in range(N_REACTIONS):
        plain = plain + _PLAIN_HEAT[j] * r[j]
        therm = therm + _THERMALIZED_HEAT[j] * r[j]
    fth, dfth_h, dfth_h2, d_nd, nd = thermalization(x, c, p)
    if not thermalize:
        fth = 1.0 + 0.0 * T
    gamma = n * (plain + fth * therm)
    # --- cooling
    (h2_line, lya, rec_c, hff_c, hm_c, cie_c, beta, tau, l_lte, l0, absorption,
     jeans) = cooling_terms(x, c, p, escape)
    lam = h2_line + lya + rec_c + hff_c + hm_c + cie_c
    # --- heat capacity per H nucleus
    atoms = x[0] + x[2] + x[3] + x[4] + x[5] + Y_HE
    cv = 1.5 * k * atoms + c[_C_CVH2] * x[1]
    ncv = n * cv
    fT = (gamma - lam) / ncv
    f[6] = fT
    if not jacobian:
        return
    # d(Gamma)/dx_m
    for m in range(7):
        J[6, m] = 0.0 * T
    for j in range(N_REACTIONS):
        q = _PLAIN_HEAT[j] + fth * _THERMALIZED_HEAT[j]
        for s in range(3):
            m = _SLOTS[j, s]
            if m >= 0:
                J[6, m] = J[6, m] + n * q * D[j, m]
        J[6, 6] = J[6, 6] + n * q * D[j, 6]
    if thermalize:
        dnd_dT = n * (1.6 * x[0] * dc[_C_FTH] + 1.4 * x[1] * dc[_C_FTH + 1])
        denom = nd + c[_C_FTH + 2]
        dfth_dT = d_nd * dnd_dT - nd * dc[_C_FTH + 2] / (denom * denom)
        J[6, 0] = J[6, 0] + n * therm * dfth_h
        J[6, 1] = J[6, 1] + n * therm * dfth_h2
        J[6, 6] = J[6, 6] + n * therm * dfth_dT
    # d(Lambda)/dx_m: H2 lines
    nH, nH2, ne, nHp = n * x[0], n * x[1], n * x[2], n * x[3]
    den = np.maximum(l_lte + l0, 1e-300)
    share = l_lte * l0 / den
    dshare_dl0 = l_lte * l_lte / (den * den)
    dshare_dlte = l0 * l0 / (den * den)
    b2 = p[3] * nH2
    g = _C_GAMMA
    dl0_dT = (dc[g] * nH + dc[g + 1] * nH2 + dc[g + 2] * (Y_HE * n) + dc[g + 3] * nHp + dc[g + 4] * ne)
    dlam0 = b2 * dshare_dl0 * c[g] * n
    dlam1 = p[3] * n * share + b2 * dshare_dl0 * c[g + 1] * n
    dlam2 = b2 * dshare_dl0 * c[g + 4] * n
    dlam3 = b2 * dshare_dl0 * c[g + 3] * n
    dlam4 = 0.0 * T
    dlam5 = 0.0 * T
    dlamT = b2 * (dshare_dlte * dc[_C_LTE] + dshare_dl0 * dl0_dT)
    # Lyman alpha: trap c n^2 y(e) y(H)
    ly = p[4] * n * n
    dlam0 = dlam0 + ly * c[_C_LYA] * x[2]
    dlam2 = dlam2 + ly * c[_C_LYA] * x[0]
    dlamT = dlamT + ly * dc[_C_LYA] * x[0] * x[2]
    # continuum: beta(tau) * C with C = rec + ff + H- (ff + attachment) + CIE
    nn = n * n
    c_rec, c_ff, c_hmff, c_att, c_cie, c_bf = (c[_C_REC], c[_C_FF], c[_C_HMFF], c[_C_ATTACH], c[_C_CIE],
                                               c[_C_HMBF])
    cont = (c_rec + c_ff) * ne * nHp + (c_hmff + c_att) * nH * ne + c_cie * rho * nH2
    _, dbeta = continuum_escape(tau, escape)
    sigma_t4 = FOUR_SIGMA_SB * (T * T) * (T * T)
    lte_emission = c_ff * ne * nHp + c_hmff * nH * ne + c_cie * rho * nH2
    # d(absorption)/dx_m
    da0 = c_hmff * nn * x[2] / sigma_t4
    da1 = c_cie * rho * n / sigma_t4
    da2 = (c_ff * nn * x[3] + c_hmff * nn * x[0]) / sigma_t4
    da3 = c_ff * nn * x[2] / sigma_t4
    da4 = c_bf * n
    daT = ((dc[_C_FF] * ne * nHp + dc[_C_HMFF] * nH * ne + dc[_C_CIE] * rho * nH2) / sigma_t4
           - 4.0 * lte_emission / (sigma_t4 * T) + dc[_C_HMBF] * n * x[4])
    # d(jeans)/dy_m = jeans / (2 (sum y + y_He)) for every species; d/dT = jeans / (2 T)
    total = x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + Y_HE
    dj_dy = jeans / (2.0 * total)
    ctau = cont * dbeta
    dlam0 = dlam0 + ctau * (da0 * jeans + absorption * dj_dy) + beta * (c_hmff + c_att) * nn * x[2]
    dlam1 = dlam1 + ctau * (da1 * jeans + absorption * dj_dy) + beta * c_cie * rho * n
    dlam2 = dlam2 + ctau * (da2 * jeans + absorption * dj_dy) + beta * ((c_rec + c_ff) * nn * x[3]
                                                                      + (c_hmff + c_att) * nn * x[0])
    dlam3 = dlam3 + ctau * (da3 * jeans + absorption * dj_dy) + beta * (c_rec + c_ff) * nn * x[2]
    dlam4 = dlam4 + ctau * (da4 * jeans + absorption * dj_dy)
    dlam5 = dlam5 + ctau * (absorption * dj_dy)
    dcont_dT = ((dc[_C_REC] + dc[_C_FF]) * ne * nHp + (dc[_C_HMFF] + dc[_C_ATTACH]) * nH * ne
                + dc[_C_CIE] * rho * nH2)
    dlamT = dlamT + ctau * (daT * jeans + absorption * jeans / (2.0 * T)) + beta * dcont_dT
    # assemble: d f_T / dx_m = (dGamma - dLambda - f_T n dc_v) / (n c_v)
    kk = 1.5 * k * n
    J[6, 0] = (J[6, 0] - dlam0 - fT * kk) / ncv
    J[6, 1] = (J[6, 1] - dlam1 - fT * n * c[_C_CVH2]) / ncv
    J[6, 2] = (J[6, 2] - dlam2 - fT * kk) / ncv
    J[6, 3] = (J[6, 3] - dlam3 - fT * kk) / ncv
    J[6, 4] = (J[6, 4] - dlam4 - fT * kk) / ncv
    J[6, 5] = (J[6, 5] - dlam5 - fT * kk) / ncv
    J[6, 6] = (J[6, 6] - dlamT - fT * n * dc[_C_CVH2] * x[1]) / ncv


@register_jitable
def rhs_jacobian(x, c, dc, p, thermalize, escape, kn, dkn, r, D, f, J, jacobian):
    """The whole right-hand side ``f`` (7) and, with ``jacobian``, ``J`` (7 x 7) at ``x``.

    ``kn``, ``dkn``, ``r`` (18) and ``D`` (18 x 7) are work arrays; ``c``, ``dc`` the coefficients
    at T and their derivatives. ``thermalize``: Omukai factor on H2-formation heat; ``escape``: a
    code of :data:`ESCAPE_CODES`.
    """
    T = x[6]
    rate_constants(c, dc, p, T, kn, dkn)
    reaction_rates(kn, dkn, x, r, D, jacobian)
    assemble_species(r, D, f, J, jacobian)
    energy_rate(x, c, dc, p, r, D, thermalize, escape, f, J, jacobian)
