"""Saha equilibrium and total energy of primordial gas (Ono & Sugimura 2025, Appendix B).

Above n_H = 1e18 cm^-3 reactions are fast enough for chemical equilibrium and the gas is
adiabatic, so the state follows from (n_H, E_tot) alone, with the total energy per H nucleus

    E_tot = U(T, y) + E_chem(y)                                   (OS25 eq. B1)
    U = (3/2) k_B T (sum_i y(i) + y_He) + (int_0^T c_v,H2 dT' - (3/2) k_B T) y(H2)   (B2)
    E_chem = sum_i y(i) chi(i)                                    (B3)

with chi(i) from KIDA (Wakelam et al. 2012) measured from H2. The equilibrium constants
(PM = ``../shared/physics/primordial.md`` section 7.2; OS25 do not list their partition functions):

    n_H^2 / n_H2    = K_H2  = (4 / z_H2)  Lambda_2 exp(-D0 / kT),   D0 = 2 chi(H)
    n_H+ n_e / n_H  = K_H   =             Lambda_e exp(-I_H / kT),  I_H = chi(H+) - chi(H)
    n_H n_e / n_H-  = K_H-  = 4           Lambda_e exp(-A / kT),    A = chi(H) - chi(H-)
    n_H n_H+ / n_H2+ = K_H2+ = (1 / z_H2+) Lambda_2 exp(-D+ / kT),  D+ = chi(H) + chi(H+) - chi(H2+)

``Lambda_e = (2 pi m_e k T / h^2)^{3/2}``, ``Lambda_2 = (pi m_H k T / h^2)^{3/2}`` (reduced mass
m_H / 2). The energies come from the same chi table as E_chem, so equilibrium and energy
bookkeeping are consistent. Everything is done in logarithms: at T < 300 K the constants
under- or overflow double precision.

Partition functions ``z`` (ro-vibrational, normalized so that the atoms' nuclear-spin weights
cancel): ``"omukai"`` (default) uses the fitted z_H2 of the Omukai-group code
(lovetomatoes/OneZone ``react_coef.f``), 15-20% above the rigid rotor at 1000-5000 K because it
includes anharmonic levels; ``"rigid_rotor"`` sums rigid-rotor levels with ortho weight 3 and
multiplies a harmonic vibration (H2: theta_r = 85.3 K, theta_v = 5987 K). H2+ is always the
rigid rotor with theta_r = 43 K, theta_v = 3340 K (PM section 7.2, gap 9). We default to the
Omukai fit because it agrees with the network's own steady state: at n_H = 1e18 cm^-3 and the
collapse's E_tot the network relaxes to 3049 K; Saha gives 3052 K with the Omukai z and 3028 K
with the rigid rotor (see docs/saha.md). The fit is meant for ~1e3-1e4 K; below, H2 is fully
molecular and above, fully dissociated, so z_H2 does not matter there.
"""

from __future__ import annotations

import numpy as np

from ...constants import H_PLANCK, K_BOLTZMANN, M_ELECTRON, M_HYDROGEN, Y_HE
from .thermo import CHI_ERG, J_MAX, THETA_ROT_H2, THETA_VIB_H2, energy_h2

__all__ = ["PARTITION_FUNCTIONS", "log_partition_h2", "log_partition_h2plus", "log_equilibrium_constants",
           "saha_abundances", "total_energy", "saha_state", "SahaError"]

PARTITION_FUNCTIONS = ("omukai", "rigid_rotor")
DEFAULT_PARTITION_FUNCTIONS = "omukai"
#: H2+ rotational and (harmonic, omega_e) vibrational temperatures [K] (PM section 7.2).
THETA_ROT_H2P = 43.0
THETA_VIB_H2P = 3340.0
#: Dissociation energy of H2, ionization energy of H, electron affinity of H- and dissociation
#: energy of H2+ [erg], all from the chi table (PM section 7.2: 4.478, 13.598, 0.754, 2.651 eV).
D0_H2 = 2.0 * CHI_ERG[0]
I_H = CHI_ERG[3] - CHI_ERG[0]
A_HM = CHI_ERG[0] - CHI_ERG[4]
D_H2P = CHI_ERG[0] + CHI_ERG[3] - CHI_ERG[5]
#: Abundances below this are reported as zero (their logarithms are still finite).
ABUNDANCE_UNDERFLOW = 1e-300


class SahaError(ValueError):
    """Inputs outside what the Saha solve accepts; the message names the variable and value."""


def _log_rigid_rotor(T, theta_r, theta_v):
    """ln z = ln[(1/4) sum_J g_ns (2J+1) exp(-J(J+1) theta_r / T)] - ln(1 - exp(-theta_v / T))."""
    J = np.arange(0, J_MAX + 1, dtype=float)
    g = np.where(J % 2 == 1, 3.0, 1.0) * (2.0 * J + 1.0)
    E = J * (J + 1.0) * theta_r
    z_rot = (g * np.exp(-E / T[..., None])).sum(axis=-1) / 4.0
    return np.log(z_rot) - np.log1p(-np.exp(-np.minimum(theta_v / T, 700.0)))


def log_partition_h2(T, model=DEFAULT_PARTITION_FUNCTIONS):
    """ln z_H2(T); ``model`` is ``"rigid_rotor"`` or ``"omukai"`` (see the module docstring)."""
    T = np.asarray(T, dtype=float)
    if model == "rigid_rotor":
        return _log_rigid_rotor(T, THETA_ROT_H2, THETA_VIB_H2)
    if model == "omukai":
        lt = np.log10(T)
        return np.log(10.0) * (2.20859 - 1.8089 * lt + 0.451858 * lt**2)
    raise ValueError(f"partition_functions must be one of {PARTITION_FUNCTIONS}, got {model!r}")


def log_partition_h2plus(T):
    """ln z_H2+(T): rigid rotor (theta_r = 43 K) times harmonic vibration (theta_v = 3340 K)."""
    return _log_rigid_rotor(np.asarray(T, dtype=float), THETA_ROT_H2P, THETA_VIB_H2P)


def log_equilibrium_constants(T, partition_functions=DEFAULT_PARTITION_FUNCTIONS):
    """ln of K_H2, K_H, K_H-, K_H2+ [cm^-3] at temperature ``T`` [K] (module docstring)."""
    T = np.asarray(T, dtype=float)
    kT = K_BOLTZMANN * T
    log_lambda_e = 1.5 * np.log(2.0 * np.pi * M_ELECTRON * kT / H_PLANCK**2)
    log_lambda_2 = 1.5 * np.log(np.pi * M_HYDROGEN * kT / H_PLANCK**2)
    ln_k_h2 = np.log(4.0) - log_partition_h2(T, partition_functions) + log_lambda_2 - D0_H2 / kT
    ln_k_h = log_lambda_e - I_H / kT
    ln_k_hm = np.log(4.0) + log_lambda_e - A_HM / kT
    ln_k_h2p = -log_partition_h2plus(T) + log_lambda_2 - D_H2P / kT
    return ln_k_h2, ln_k_h, ln_k_hm, ln_k_h2p


def _log_densities(a, ln_k):
    """ln n of H, H2, e-, H+, H-, H2+ (and d ln n / d a) given ``a = ln n(H)``.

    Charge neutrality n_H+ + n_H2+ = n_e + n_H- gives
    ``n_e^2 = K_H x (1 + x/K_H2+) / (1 + x/K_H-)`` (PM section 7.2).
    """
    ln_k_h2, ln_k_h, ln_k_hm, ln_k_h2p = ln_k
    ln_e = 0.5 * (ln_k_h + a + np.logaddexp(0.0, a - ln_k_h2p) - np.logaddexp(0.0, a - ln_k_hm))
    ln_h2 = 2.0 * a - ln_k_h2
    ln_hp = ln_k_h + a - ln_e
    ln_hm = a + ln_e - ln_k_hm
    ln_h2p = a + ln_hp - ln_k_h2p
    return np.stack([np.broadcast_to(a, ln_e.shape), ln_h2, ln_e, ln_hp, ln_hm, ln_h2p])


#: Hydrogen nuclei per particle of each species (H, H2, e-, H+, H-, H2+).
_NUCLEI = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 2.0])
_LN_NUCLEI = np.log(np.where(_NUCLEI > 0, _NUCLEI, 1.0))


def _hydrogen_residual(a, ln_k, ln_n):
    """ln(H nuclei in all species) - ln n_H and its derivative in ``a = ln n(H)`` (increasing).

    With ``d ln n_e / d a = (1 + s(a - ln K_H2+) - s(a - ln K_H-)) / 2`` (s the logistic
    function), the slopes of the species' ln n are 1, 2, 1 - d, 1 + d, 2 - d.
    """
    ln = _log_densities(a, ln_k)
    weights = _LN_NUCLEI[[0, 1, 3, 4, 5]].reshape((5,) + (1,) * (ln.ndim - 1))
    terms = ln[[0, 1, 3, 4, 5]] + weights
    total = np.logaddexp.reduce(terms, axis=0)
    d_e = 0.5 * (1.0 + _logistic(a - ln_k[3]) - _logistic(a - ln_k[2]))
    slopes = np.stack([np.ones_like(d_e), 2.0 + 0.0 * d_e, 1.0 - d_e, 1.0 + d_e, 2.0 - d_e])
    return total - ln_n, (np.exp(terms - total) * slopes).sum(axis=0)


def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _solve_increasing(f, lo, hi, *, tol, maxiter=200, newton=False, bisections=8):
    """Root of increasing ``f`` in [lo, hi] per element, keeping a bracket.

    ``f(lo) <= 0 <= f(hi)`` must hold. With ``newton=True``, ``f`` returns (value, derivative)
    and Newton steps are taken from the current point; otherwise ``bisections`` bisections
    followed by the Illinois variant of regula falsi. Steps leaving the bracket are replaced by bisection. Stops where the last step or
    the bracket is below ``tol (1 + |x|)``.
    """
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    if newton:
        x = hi.copy()
        for _ in range(maxiter):
            fx, dfx = f(x)
            up = fx > 0
            hi = np.where(up, x, hi)
            lo = np.where(up, lo, x)
            with np.errstate(invalid="ignore", divide="ignore"):
                x_new = x - fx / dfx
            # a Newton point on or inside the bracket is kept (at convergence it sits on an end)
            x_new = np.where(np.isfinite(x_new) & (x_new >= lo) & (x_new <= hi), x_new, 0.5 * (lo + hi))
            x_new = np.where(fx == 0, x, x_new)
            step = np.abs(x_new - x)
            x = x_new
            if np.all((step < tol * (1.0 + np.abs(x))) | (hi - lo < tol * (1.0 + np.abs(x)))):
                break
        return x
    f_lo, f_hi = f(lo), f(hi)
    # a few bisections first: regula falsi is slow on a wide bracket of a curved function
    for _ in range(bisections):
        x = 0.5 * (lo + hi)
        fx = f(x)
        up = fx > 0
        hi, f_hi = np.where(up, x, hi), np.where(up, fx, f_hi)
        lo, f_lo = np.where(up, lo, x), np.where(up, f_lo, fx)
    side = np.zeros(lo.shape, dtype=np.int8)
    x = 0.5 * (lo + hi)
    for _ in range(maxiter):
        with np.errstate(invalid="ignore", divide="ignore"):
            x_new = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        x_new = np.where(np.isfinite(x_new) & (x_new > lo) & (x_new < hi), x_new, 0.5 * (lo + hi))
        step = np.abs(x_new - x)
        x = x_new
        fx = f(x)
        if np.all((step < tol * (1.0 + np.abs(x))) | (fx == 0) | (hi - lo < tol * (1.0 + np.abs(x)))):
            break
        up = fx > 0
        hi = np.where(up, x, hi)
        lo = np.where(up, lo, x)
        # Illinois: halve the retained end's value when the same end is kept twice
        f_lo_new = np.where(up, np.where(side == -1, 0.5 * f_lo, f_lo), fx)
        f_hi_new = np.where(up, fx, np.where(side == 1, 0.5 * f_hi, f_hi))
        f_lo, f_hi = f_lo_new, f_hi_new
        side = np.where(up, -1, 1).astype(np.int8)
    return x


def saha_abundances(n_H, temperature, partition_functions=DEFAULT_PARTITION_FUNCTIONS):
    """Equilibrium abundances n(i)/n_H of H, H2, e-, H+, H-, H2+ at given n_H and T.

    Parameters
    ----------
    n_H : array_like
        Number density of hydrogen nuclei [cm^-3].
    temperature : array_like
        Temperature [K], broadcast against ``n_H``.
    partition_functions : {"omukai", "rigid_rotor"}

    Returns
    -------
    numpy.ndarray
        Shape (6,) + broadcast shape. Hydrogen nuclei and charge are conserved to round-off;
        abundances below 1e-300 underflow to zero.
    """
    ln_y = log_saha_abundances(n_H, temperature, partition_functions)
    return np.where(ln_y > np.log(ABUNDANCE_UNDERFLOW), np.exp(ln_y), 0.0)


def log_saha_abundances(n_H, temperature, partition_functions=DEFAULT_PARTITION_FUNCTIONS):
    """Natural logarithms of :func:`saha_abundances` (finite even where the abundance underflows)."""
    n, T = np.broadcast_arrays(np.asarray(n_H, dtype=float), np.asarray(temperature, dtype=float))
    _check_positive(n, "n_H", "cm^-3")
    _check_positive(T, "temperature", "K")
    ln_n = np.log(n)
    ln_k = log_equilibrium_constants(T, partition_functions)
    # x <= n_H and 2 x^2 / K_H2 <= n_H bound the root from above; fully ionized or fully
    # molecular limits bound it from below
    hi = np.minimum(ln_n, 0.5 * (ln_k[0] + ln_n - np.log(2.0))) + 1.0
    lo = np.minimum(hi, 2.0 * ln_n - ln_k[1]) - 50.0
    lo = np.minimum(lo, hi - 50.0)
    a = _solve_increasing(lambda s: _hydrogen_residual(s, ln_k, ln_n), lo, hi, tol=1e-14, newton=True)
    return _log_densities(a, ln_k) - ln_n


def total_energy(temperature, abundance, cv_h2="frozen"):
    """Total energy per H nucleus ``E_tot = U + E_chem`` [erg] (OS25 eqs. B1-B3).

    Parameters
    ----------
    temperature : array_like
        Temperature [K].
    abundance : array_like
        Abundances shaped (6, ...) in species order H, H2, e-, H+, H-, H2+.
    cv_h2 : {"frozen", "equilibrium", "tgchem"}
        H2 heat-capacity model; its exact integral is used (:func:`thermo.energy_h2`).
    """
    T = np.asarray(temperature, dtype=float)
    y = np.asarray(abundance, dtype=float)
    kT = K_BOLTZMANN * T
    u_h2 = K_BOLTZMANN * energy_h2(T.ravel(), cv_h2).reshape(T.shape)
    internal = 1.5 * kT * (y.sum(axis=0) + Y_HE) + (u_h2 - 1.5 * kT) * y[1]
    chemical = np.tensordot(np.asarray(CHI_ERG), y, axes=1)
    return internal + chemical


def saha_state(n_H, total_energy_per_H, *, partition_functions=DEFAULT_PARTITION_FUNCTIONS, cv_h2="frozen",
               temperature_bounds=(1.0, 1e7)):
    """Temperature and equilibrium abundances with the given total energy (direct solve).

    E_tot(T) along Saha equilibrium increases with T at fixed n_H, so ln T is found by a
    bracketed root search (Illinois), each evaluation a Saha solve.

    Parameters
    ----------
    n_H : array_like
        [cm^-3].
    total_energy_per_H : array_like
        E_tot [erg per H nucleus], broadcast against ``n_H``.
    partition_functions, cv_h2 : str
        See :func:`saha_abundances` and :func:`total_energy`.
    temperature_bounds : (float, float)
        Bracket [K]; an E_tot outside E_tot(bracket) raises :class:`SahaError`.

    Returns
    -------
    (temperature, abundance) : numpy.ndarray
        Shapes (...) [K] and (6, ...).
    """
    n, E = np.broadcast_arrays(np.asarray(n_H, dtype=float), np.asarray(total_energy_per_H, dtype=float))
    _check_positive(n, "n_H", "cm^-3")
    _check_positive(E, "total_energy", "erg per H nucleus")
    ln_E = np.log(E)

    def residual(ln_T):
        T = np.exp(ln_T)
        y = saha_abundances(n, T, partition_functions)
        return np.log(total_energy(T, y, cv_h2)) - ln_E

    lo = np.full(n.shape, np.log(temperature_bounds[0]))
    hi = np.full(n.shape, np.log(temperature_bounds[1]))
    r_lo, r_hi = residual(lo), residual(hi)
    outside = (r_lo > 0) | (r_hi < 0)
    if outside.any():
        i = np.flatnonzero(outside.ravel())[0]
        raise SahaError(f"total_energy = {E.ravel()[i]:.6g} erg per H nucleus at n_H = {n.ravel()[i]:.6g} cm^-3 "
                        f"is outside the energies of {temperature_bounds[0]:g} K .. {temperature_bounds[1]:g} K "
                        f"in Saha equilibrium")
    ln_T = _solve_increasing(residual, lo, hi, tol=1e-12)
    T = np.exp(ln_T)
    return T, saha_abundances(n, T, partition_functions)


def _check_positive(a, name, units):
    bad = ~(np.isfinite(a) & (a > 0))
    if bad.any():
        raise SahaError(f"{name} = {float(a.ravel()[np.flatnonzero(bad.ravel())[0]])!r} {units} must be finite and > 0")
