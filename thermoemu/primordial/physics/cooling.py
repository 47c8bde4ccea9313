"""Radiative cooling of primordial gas (Ono & Sugimura 2025, section 2.1; PM section 4).

Functions here depend on temperature only (coefficients per unit collider density) or are the
small optical-depth helpers; :mod:`thermoemu.primordial.physics.network` multiplies them by
number densities. Units: T [K], rates per volume [erg cm^-3 s^-1], coefficients as stated.
PM = ``../shared/physics/primordial.md``.
"""

from __future__ import annotations

import numpy as np

from ...constants import C_LIGHT, G_NEWTON, H_PLANCK, K_BOLTZMANN, M_HYDROGEN, SIGMA_SB
from ._cie_table import CIE_COEFFICIENT, CIE_TEMPERATURE


def _log_poly(x, coeffs):
    out = np.zeros_like(x) + coeffs[-1]
    for c in coeffs[-2::-1]:
        out = out * x + c
    return 10.0**out


# --- H2 line cooling: Glover (2015) LTE fit and Glover & Abel (2008) low-density rates -----------
# Coefficients as in Grackle's GA08 branch (src/clib/rate_functions.c), PM section 4.1.
_H2_LTE = (-20.584225, 5.0194035, -1.5738805, -4.7155769, 2.4714161, 5.4710750, -3.9467356,
           -2.2148338, 1.8161874)
_GAMMA_H_LIQUE = (-24.07950609, 4.54182810, -2.40206896, -0.75355292, 4.69258178, -2.79573574,
                  -3.14766075, 2.50751333)
_GAMMA_H2 = (-23.962112, 2.09433740, -0.77151436, 0.43693353, -0.14913216, -0.033638326)
_GAMMA_HE = (-23.689237, 2.1892372, -0.81520438, 0.29036281, -0.16596184, 0.19191375)
_GAMMA_HP = (-22.089523, 1.5714711, 0.015391166, -0.23619985, -0.51002221, 0.32168730)
_GAMMA_E_LOW = (-21.928796, 16.815730, 96.743155, 343.19180, 734.71651, 983.67576, 801.81247,
                364.14446, 70.609154)
_GAMMA_E_HIGH = (-22.921189, 1.6802758, 0.93310622, 4.0406627, -4.7274036, -8.8077017, 8.9167183,
                 6.4380698, -6.3701156)


def _h2_fit_temperature(T):
    tm = np.clip(T, 10.0, 1.0e4)
    return tm, np.log10(tm / 1000.0)


def h2_lte_cooling(T):
    """H2 ro-vibrational cooling per molecule in LTE [erg s^-1].

    Glover (2015, MNRAS 451, 2082) fit for T >= 100 K; below, the crude extrapolation
    ``7.0e-27 T^1.5 exp(-512/T)`` (Grackle). T is clamped to [10, 1e4] K (PM section 4.1).
    """
    tm, x = _h2_fit_temperature(T)
    return np.where(tm >= 100.0, _log_poly(np.maximum(x, -1.0), _H2_LTE), 7.0e-27 * tm**1.5 * np.exp(-512.0 / tm))


def h2_collision_rates(T):
    """Low-density H2 cooling rates per H2 molecule per collider [erg cm^3 s^-1].

    Returns ``(gamma_H, gamma_H2, gamma_He, gamma_Hp, gamma_e)``: H from the Lique (2015) based fit
    (zero below 100 K), H2, He, H+ and e- from Glover & Abel (2008) (e- zero below 100 K; separate
    fits below and above 500 K). All assume ortho:para = 3:1 (PM section 4.1).
    """
    tm, x = _h2_fit_temperature(T)
    # fits used only above 100 K are evaluated there only (np.where computes both branches;
    # the polynomials overflow far outside their range)
    x100 = np.maximum(x, -1.0)
    g_h = np.where(tm >= 100.0, _log_poly(x100, _GAMMA_H_LIQUE), 0.0)
    g_h2 = _log_poly(x, _GAMMA_H2)
    g_he = _log_poly(x, _GAMMA_HE)
    g_hp = _log_poly(x, _GAMMA_HP)
    g_e = np.where(tm < 100.0, 0.0,
                   np.where(tm < 500.0, _log_poly(np.minimum(x100, np.log10(0.5)), _GAMMA_E_LOW),
                            _log_poly(np.maximum(x, np.log10(0.5)), _GAMMA_E_HIGH)))
    return g_h, g_h2, g_he, g_hp, g_e


def h2_escape_ra04(n_H):
    """Averaged H2 line escape probability, Ripamonti & Abel (2004) density fit (default).

    ``beta = min[1, (n_H / 8e9 cm^-3)^-0.45]`` (Grackle ``h2_optical_depth_approximation = 1``).
    This stands in for the Fukushima et al. (2018) average used by Ono & Sugimura (2025), which is
    not public (PM section 4.1 and gap 1).
    """
    return np.minimum(1.0, (n_H / 8.0e9) ** -0.45)


def h2_escape_thin(n_H):
    """Optically thin H2 lines (escape probability 1); a selectable alternative."""
    return np.ones_like(n_H)


# --- Lyman alpha ---------------------------------------------------------------------------------

def lyman_alpha_coefficient(T):
    """Collisional excitation of H(n=2), Cen (1992) [erg cm^3 s^-1].

    ``7.5e-19 exp(-118348/T) / (1 + sqrt(T/1e5))``; multiply by n_e n_H (Grackle ``ceHI_rate``).
    """
    return 7.5e-19 * np.exp(-118348.0 / T) / (1.0 + np.sqrt(T / 1.0e5))


def lyman_alpha_trapping_none(n_H):
    """Lyman-alpha photons escape freely (default; as Grackle)."""
    return np.ones_like(n_H)


def lyman_alpha_trapping_tgchem(n_H):
    """Ad hoc trapping factor ``exp(-n_H / 1e7 cm^-3)`` of AREPO's TGCHEM (PM section 4.2)."""
    return np.exp(-n_H / 1.0e7)


# --- Continuum -----------------------------------------------------------------------------------

def recombination_cooling_case_b(T):
    """H+ case-B recombination cooling, Hui & Gnedin (1997) [erg cm^3 s^-1] (times n_e n_H+).

    ``3.435e-30 T lam^1.970 [1 + (lam/2.25)^0.376]^-3.720`` with ``lam = 2 x 157807/T``
    (Grackle ``reHII_rate``; PM section 4.3).
    """
    lam = 2.0 * 157807.0 / T
    return 3.435e-30 * T * lam**1.970 * (1.0 + (lam / 2.25) ** 0.376) ** -3.720


def recombination_cooling_case_a(T):
    """H+ case-A recombination cooling, Hui & Gnedin (1997) [erg cm^3 s^-1] (times n_e n_H+)."""
    lam = 2.0 * 157807.0 / T
    return 1.778e-29 * T * lam**1.965 * (1.0 + (lam / 0.541) ** 0.502) ** -2.697


def free_free_coefficient(T):
    """H+ bremsstrahlung, Black (1981) [erg cm^3 s^-1] (times n_e n_H+).

    ``1.43e-27 sqrt(T) [1.1 + 0.34 exp(-(5.5 - log T)^2 / 3)]`` (Grackle ``brem_rate``).
    """
    return 1.43e-27 * np.sqrt(T) * (1.1 + 0.34 * np.exp(-((5.5 - np.log10(T)) ** 2) / 3.0))


def cie_coefficient(T):
    """Thin H2-H2 + He-H2 collision-induced emission coefficient L(T) [erg s^-1 cm^3 g^-1].

    Ripamonti & Abel (2004) table as carried by Grackle, interpolated linearly in log-log;
    extrapolated as T^4 below 400 K and T^3 above 6955 K (Grackle). Use ``L * rho * n_H2``.
    """
    logT = np.log10(T)
    inside = np.interp(logT, np.log10(CIE_TEMPERATURE), np.log10(CIE_COEFFICIENT))
    low = np.log10(CIE_COEFFICIENT[0]) + 4.0 * (logT - np.log10(CIE_TEMPERATURE[0]))
    high = np.log10(CIE_COEFFICIENT[-1]) + 3.0 * (logT - np.log10(CIE_TEMPERATURE[-1]))
    return 10.0 ** np.where(T < CIE_TEMPERATURE[0], low,
                            np.where(T > CIE_TEMPERATURE[-1], high, inside))


# H- opacities of John (1988), PM section 4.3.
_LAMBDA0_HM = 1.6419  # photo-detachment threshold [micron]
_HM_BF = (152.519, 49.534, -118.858, 92.536, -34.194, 4.982)
_HM_FF_LONG = {  # lambda > 0.3645 micron
    "A": (0.0, 2483.346, -3449.889, 2200.040, -696.271, 88.283),
    "B": (0.0, 285.827, -1158.382, 2427.719, -1841.400, 444.517),
    "C": (0.0, -2054.291, 8746.523, -13651.105, 8624.970, -1863.864),
    "D": (0.0, 2827.776, -11485.632, 16755.524, -10051.530, 2095.288),
    "E": (0.0, -1341.537, 5303.609, -7510.494, 4400.067, -901.788),
    "F": (0.0, 208.952, -812.939, 1132.738, -655.020, 132.985),
}
_HM_FF_SHORT = {  # 0.1823 < lambda < 0.3645 micron
    "A": (518.1021, 473.2636, -482.2089, 115.5291, 0.0, 0.0),
    "B": (-734.8666, 1443.4137, -737.1616, 169.6374, 0.0, 0.0),
    "C": (1021.1775, -1977.3395, 1096.8827, -245.6490, 0.0, 0.0),
    "D": (-479.0721, 922.3575, -521.1341, 114.2430, 0.0, 0.0),
    "E": (93.1373, -178.9275, 101.7963, -21.9972, 0.0, 0.0),
    "F": (-6.4285, 12.3600, -7.0571, 1.5097, 0.0, 0.0),
}


def hminus_bound_free_cross_section(wavelength_um):
    """H- photo-detachment cross-section of John (1988) [cm^2 per H-], lambda in micron.

    Valid for 0.125 um < lambda < 1.6419 um; zero outside (PM section 4.3).
    """
    lam = np.asarray(wavelength_um, dtype=float)
    u = np.clip(1.0 / lam - 1.0 / _LAMBDA0_HM, 0.0, None)
    s = sum(c * u ** (0.5 * n) for n, c in enumerate(_HM_BF))
    sigma = 1.0e-18 * lam**3 * u**1.5 * s
    return np.where((lam > 0.125) & (lam < _LAMBDA0_HM), sigma, 0.0)


def hminus_free_free_coefficient(wavelength_um, T):
    """H- free-free absorption of John (1988) [cm^4 dyn^-1 per H atom per electron pressure].

    Stimulated emission included; multiply by n_H P_e. theta = 5040/T is clamped to John's
    range [0.5, 3.6] (1400-10080 K) so that the polynomial is not extrapolated; the Planck
    weighting outside uses the true T. Zero below 0.1823 um.
    """
    lam = np.asarray(wavelength_um, dtype=float)
    theta = np.clip(5040.0 / np.asarray(T, dtype=float), 0.5, 3.6)

    def _sum(coef):
        total = 0.0
        for n in range(6):
            poly = (coef["A"][n] * lam**2 + coef["B"][n] + coef["C"][n] / lam
                    + coef["D"][n] / lam**2 + coef["E"][n] / lam**3 + coef["F"][n] / lam**4)
            total = total + theta ** (0.5 * (n + 2)) * poly
        return total

    kff = np.where(lam > 0.3645, _sum(_HM_FF_LONG), np.where(lam > 0.1823, _sum(_HM_FF_SHORT), 0.0))
    return 1.0e-29 * np.maximum(kff, 0.0)


def _planck_lambda(lam_cm, T):
    x = H_PLANCK * C_LIGHT / (lam_cm * K_BOLTZMANN * T)
    return 2.0 * H_PLANCK * C_LIGHT**2 / lam_cm**5 / np.expm1(np.minimum(x, 700.0)) * (x < 700.0)


def hminus_emission_coefficients(T):
    """Thin H- continuum coefficients from the John (1988) opacities.

    Returns
    -------
    g_bf : ndarray
        ``4 pi int sigma_bf (1 - e^-x) B_nu dnu`` per H- ion [erg s^-1]: Kirchhoff emission of an
        LTE H- population, i.e. ``4 sigma T^4 kappa_P rho / n_H-`` for the bound-free absorption
        (used for the optical depth, with the actual n_H-).
    g_attach : ndarray
        Thermal cooling by radiative attachment per (n_H n_e) [erg cm^3 s^-1]. The spontaneous
        bound-free emission is attachment H + e -> H- + photon, whose rate follows from the
        Milne relation with the Saha H- population ``n_H n_e / K_H-``,
        ``K_H- = 4 (2 pi m_e k T / h^2)^1.5 exp(-A/kT)`` (A = 0.754 eV, PM section 7.2); only the
        photon energy above the threshold h nu_0 is taken from the gas (the binding energy is
        booked by the chemistry, reaction 10 being radiative). Computed without underflow.
    g_ff : ndarray
        Free-free emission per (n_H n_e) [erg cm^3 s^-1], ``4 pi k T int k_ff B_nu dnu``.

    Notes
    -----
    Kirchhoff's law with the *actual* n_H- would overestimate bound-free emission wherever H- is
    above its Saha value (low density, where it is set by formation against associative
    detachment); the Milne form does not. The wavelength integral runs on a log grid
    0.1-3e4 um (2000 points).
    """
    T = np.atleast_1d(np.asarray(T, dtype=float))
    lam_um = np.logspace(-1, 4.5, 2000)
    lam_cm = lam_um * 1.0e-4
    kT = K_BOLTZMANN * T[:, None]
    x = H_PLANCK * C_LIGHT / (lam_cm[None, :] * kT)
    x0 = H_PLANCK * C_LIGHT / (_LAMBDA0_HM * 1.0e-4 * kT)
    B = _planck_lambda(lam_cm[None, :], T[:, None])
    stim = -np.expm1(-x)
    sigma_bf = hminus_bound_free_cross_section(lam_um)[None, :]
    kff = hminus_free_free_coefficient(lam_um[None, :], T[:, None])
    dlnlam = np.log(lam_cm)
    g_bf = 4.0 * np.pi * np.trapezoid(sigma_bf * stim * B * lam_cm, dlnlam, axis=1)
    g_ff = 4.0 * np.pi * K_BOLTZMANN * T * np.trapezoid(kff * B * lam_cm, dlnlam, axis=1)
    # B_lambda * exp(x0) without overflow, for x >= x0 where sigma_bf > 0
    with np.errstate(over="ignore", invalid="ignore"):
        b_scaled = (2.0 * H_PLANCK * C_LIGHT**2 / lam_cm[None, :] ** 5
                    * np.exp(-np.clip(x - x0, 0.0, 700.0)) / stim)
    excess = np.clip(1.0 - x0 / x, 0.0, None)  # (h nu - h nu0) / h nu
    integral = 4.0 * np.pi * np.trapezoid(sigma_bf * stim * b_scaled * excess * lam_cm, dlnlam, axis=1)
    from ...constants import M_ELECTRON
    from .thermo import CHI_ERG
    affinity = CHI_ERG[0] - CHI_ERG[4]
    lambda_e = (2.0 * np.pi * M_ELECTRON * K_BOLTZMANN * T / H_PLANCK**2) ** 1.5
    g_attach = integral * np.exp(-(x0[:, 0] - affinity / (K_BOLTZMANN * T))) / (4.0 * lambda_e)
    return g_bf, g_attach, g_ff


def jeans_length(T, rho, mu):
    """Jeans length with the isothermal sound speed [cm]: ``sqrt(pi k T / (G rho mu m_H))``.

    Used as the length for the continuum optical depth (Tanaka & Omukai 2014 use a Jeans length;
    their exact definition is not public, PM section 4.5).
    """
    return np.sqrt(np.pi * K_BOLTZMANN * T / (G_NEWTON * rho * mu * M_HYDROGEN))


def continuum_escape_diffusion(tau):
    """``min(1, tau^-2)``: Omukai (2000)-style diffusion limit (default; PM section 4.3)."""
    return np.minimum(1.0, 1.0 / np.maximum(tau, 1e-300) ** 2)


def continuum_escape_slab(tau):
    """``(1 - exp(-tau)) / tau`` (Grackle, Clark et al. 2011); selectable alternative."""
    return np.where(tau > 1e-6, -np.expm1(-tau) / np.maximum(tau, 1e-300), 1.0 - 0.5 * tau)


def continuum_escape_exponential(tau):
    """``exp(-tau)`` (TGCHEM); selectable alternative."""
    return np.exp(-tau)


#: 4 sigma_SB [erg cm^-2 s^-1 K^-4], used to turn emission into a Planck-mean absorption.
FOUR_SIGMA_SB = 4.0 * SIGMA_SB
