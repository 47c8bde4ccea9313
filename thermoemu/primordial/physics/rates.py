"""Rate coefficients of the 18 reactions of the primordial network (Ono & Sugimura 2025, Table 4).

Every function takes the gas temperature ``T`` [K] as an array (numpy or cupy; plain numpy
ufuncs dispatch to cupy) and returns the coefficient in cm^3 s^-1 (two-body) or cm^6 s^-1
(three-body). Density-dependent coefficients also take ``n_H`` [cm^-3], the number density of
hydrogen nuclei. Formulas, sources and the alternatives for documented gaps are those of
``../shared/physics/primordial.md`` section 3 (hereafter PM); each docstring names its source.
"""

from __future__ import annotations

import numpy as np

from ...constants import KELVIN_PER_EV

__all__ = [
    "k1", "k2_case_b", "k2_case_a", "k3", "k4", "k5", "k6_martin96", "k7", "k8_pss83",
    "k8_forrey", "k9", "k10", "k11_pss83", "k11_lenzuni", "k12", "k13", "k14", "k15", "k16",
    "k17", "k18_abel97", "k18_glover_abel08", "martin96_terms",
]

_K1_COEFFS = (-32.71396786, 13.5365560, -5.73932875, 1.56315498, -0.28770560,
              3.48255977e-2, -2.63197617e-3, 1.11954395e-4, -2.03914985e-6)
_K12_COEFFS = (-18.01849334, 2.3608522, -0.28274430, 1.62331664e-2, -3.36501203e-2,
               1.17832978e-2, -1.65619470e-3, 1.06827520e-4, -2.63128581e-6)


def _poly(x, coeffs):
    """Horner evaluation of ``sum_i coeffs[i] x**i``."""
    out = np.zeros_like(x) + coeffs[-1]
    for c in coeffs[-2::-1]:
        out = out * x + c
    return out


def k1(T):
    """H + e- -> H+ + 2e-  [cm^3 s^-1].

    Abel et al. (1997) nine-term fit in ln(T_eV) to the Janev et al. (1987) data (PM section 3.2,
    as in Grackle ``k1_rate``). Decays monotonically to zero at low T.
    """
    x = np.log(T / KELVIN_PER_EV)
    return np.exp(_poly(x, _K1_COEFFS))


def k2_case_b(T):
    """H+ + e- -> H + photon, case B  [cm^3 s^-1] (default).

    Glover & Jappsen (2007) as cited by Ono & Sugimura (2025): Ferland et al. (1992) data fitted by
    Hui & Gnedin (1997), ``2.753e-14 (315614/T)^1.5 [1 + (115188/T)^0.407]^-2.242`` (PM section 3.1).
    """
    lam = 315614.0 / T
    return 2.753e-14 * lam**1.5 * (1.0 + (115188.0 / T) ** 0.407) ** -2.242


def k2_case_a(T):
    """H+ + e- -> H + photon, case A  [cm^3 s^-1] (selectable alternative).

    Hui & Gnedin (1997) case-A fit as listed by Glover & Abel (2008, Table A1),
    ``1.269e-13 (315614/T)^1.503 [1 + (604625/T)^0.470]^-1.923`` (PM section 3.3).
    """
    lam = 315614.0 / T
    return 1.269e-13 * lam**1.503 * (1.0 + (604625.0 / T) ** 0.470) ** -1.923


def k3(T):
    """H- + H -> H2 + e-  [cm^3 s^-1].

    Kreckel et al. (2010) fit to merged-beam measurements (PM section 3.2; Grackle ``k8_rate``).
    """
    num = T**0.098493 + 0.32852 * T**0.5561 + 2.771e-7 * T**2.1826
    den = 1.0 + 6.191e-3 * T**1.0461 + 8.9712e-11 * T**3.0424 + 3.2576e-14 * T**3.7741
    return 1.35e-9 * num / den


def k4(T):
    """H2 + H+ -> H2+ + H  [cm^3 s^-1].

    Galli & Palla (1998), reaction H15: ``3.0e-10 exp(-21050/T)`` for T <= 1e4 K,
    ``1.5e-10 exp(-14000/T)`` above.
    """
    return np.where(T <= 1.0e4, 3.0e-10 * np.exp(-21050.0 / T), 1.5e-10 * np.exp(-14000.0 / T))


def k5(T):
    """H2 + e- -> 2H + e-  [cm^3 s^-1].

    Galli & Palla (1998), reaction H17: ``4.4e-10 T^0.35 exp(-102000/T)``.
    """
    return 4.4e-10 * T**0.35 * np.exp(-102000.0 / T)


# Martin, Schwarz & Mandy (1996) parameter sets a1..a21 for collision-induced dissociation (CD)
# and dissociative tunnelling (DT); PM section 3.2 (Grackle, KROME and the Omukai-group file agree).
_MSM96_CD = (-178.4239, -68.42243, 43.20243, -4.633167, 69.70086, 40870.38, -23705.70,
             128.8953, -53.91334, 5.315517, -19.73427, 16780.95, -25786.11,
             14.82123, -4.890915, 0.4749030, -133.8283, -1.164408,
             0.8227443, 0.5864073, -2.056313)
_MSM96_DT = (-142.7664, 42.70741, -2.027365, -0.2582097, 21.36094, 27535.31, -21467.79,
             60.34928, -27.43096, 2.676150, -11.28215, 14254.55, -23125.20,
             9.305564, -2.464009, 0.1985955, 743.0600, -1.174242,
             0.7502286, 0.2358848, 2.937507)

#: Below this temperature [K] k6 is set to zero: the MSM96 fit's exponent p changes sign near
#: 200 K and the rate is < 1e-90 cm^3 s^-1 there anyway (PM section 3.1, row 6).
K6_MIN_TEMPERATURE = 300.0


def martin96_terms(T):
    """Temperature-only parts of the Martin, Schwarz & Mandy (1996) fit.

    Returns, for the CD and DT sets in turn, ``(A_h, A_l, B_h, B_l, log10 nc1, log10 nc2, p)``
    so that ``log10 k = A_h - (A_h - A_l)/(1 + (n/nc1)^p) + B_h - (B_h - B_l)/(1 + (n/nc2)^p)``.
    Used by :func:`k6_martin96` and by the tabulated network.
    """
    L = np.log10(T)
    out = []
    for a in (_MSM96_CD, _MSM96_DT):
        a_h = a[0] + a[1] * L + a[2] * L**2 + a[3] * L**3 + a[4] * np.log10(1.0 + a[5] / T)
        a_l = a[7] + a[8] * L + a[9] * L**2 + a[10] * np.log10(1.0 + a[11] / T)
        b_h = a[6] / T
        b_l = a[12] / T
        log_nc1 = a[13] + a[14] * L + a[15] * L**2 + a[16] / T
        log_nc2 = a[17] + log_nc1
        p = a[18] + a[19] * np.exp(-T / 1850.0) + a[20] * np.exp(-T / 440.0)
        out.extend([a_h, a_l, b_h, b_l, log_nc1, log_nc2, p])
    return out


def k6_from_terms(terms, log_n_H, T):
    """Combine :func:`martin96_terms` with the density; zero below ``K6_MIN_TEMPERATURE``."""
    total = 0.0
    for s in (0, 7):
        a_h, a_l, b_h, b_l, log_nc1, log_nc2, p = terms[s:s + 7]
        x1 = 10.0 ** np.minimum(p * (log_n_H - log_nc1), 300.0)
        x2 = 10.0 ** np.minimum(p * (log_n_H - log_nc2), 300.0)
        log_k = a_h - (a_h - a_l) / (1.0 + x1) + b_h - (b_h - b_l) / (1.0 + x2)
        total = total + 10.0 ** log_k
    return np.where(T >= K6_MIN_TEMPERATURE, total, 0.0)


def k6_martin96(T, n_H):
    """H2 + H -> 3H  [cm^3 s^-1], density dependent.

    Martin, Schwarz & Mandy (1996): sum of collision-induced dissociation and dissociative
    tunnelling, each interpolated between its low- and high-density limits, with the density
    taken as ``n_H`` (PM section 3.2). Zero below 300 K (see ``K6_MIN_TEMPERATURE``).
    """
    return k6_from_terms(martin96_terms(T), np.log10(n_H), T)


def k7(T):
    """3H -> H2 + H  [cm^6 s^-1].

    Forrey (2013): ``6e-32 T^-0.25 + 2e-31 T^-0.5`` (Grackle ``k22_rate``, three_body_rate = 5).
    """
    return 6.0e-32 * T**-0.25 + 2.0e-31 * T**-0.5


def k8_pss83(T):
    """2H + H2 -> 2H2  [cm^6 s^-1] (default).

    Palla, Salpeter & Stahler (1983) three-body rate with H as third body, ``5.5e-29/T``, divided
    by 8 for H2 as third body: ``6.875e-30 / T`` (PM section 3.3, "PSS83/8").
    """
    return 5.5e-29 / (8.0 * T)


def k8_forrey(T):
    """2H + H2 -> 2H2  [cm^6 s^-1] (selectable alternative): Forrey (2013) rate divided by 8.

    As used by KROME's react_primordial3 and Glover & Abel (2008) (PM section 3.3).
    """
    return k7(T) / 8.0


def k9_terms(T):
    """Temperature-only parts of :func:`k9`: ``(ln kH, ln kL, log10 n_cr)``."""
    ln_kh = np.log(8.125e-8) - 0.5 * np.log(T) - 52000.0 / T + np.log1p(-np.exp(-6000.0 / T))
    ln_kl = np.log(1.18e-10) - 69500.0 / T
    log_t4 = np.log10(T / 1.0e4)
    log_ncr = 4.845 - 1.3 * log_t4 + 1.62 * log_t4**2
    return ln_kh, ln_kl, log_ncr


def k9_from_terms(ln_kh, ln_kl, log_ncr, log_n_H):
    """Combine :func:`k9_terms` with the density."""
    a = 1.0 / (1.0 + 10.0 ** np.minimum(log_n_H - log_ncr, 300.0))
    return np.exp((1.0 - a) * ln_kh + a * ln_kl)


def k9(T, n_H):
    """2H2 -> 2H + H2  [cm^3 s^-1], density dependent.

    ``kH^(1-a) kL^a`` with ``a = 1/(1 + n_H/n_cr)``: high-density limit from Palla, Salpeter &
    Stahler (1983) by detailed balance, ``kH = 8.125e-8 T^-1/2 exp(-52000/T)[1 - exp(-6000/T)]``;
    low-density limit and critical density from Shapiro & Kang (1987),
    ``kL = 1.18e-10 exp(-69500/T)``, ``log n_cr = 4.845 - 1.3 log T4 + 1.62 (log T4)^2``
    (PM section 3.1; KROME react_primordial3 #28, labelled Omukai 2001).
    """
    return k9_from_terms(*k9_terms(T), np.log10(n_H))


def k10(T):
    """H + e- -> H- + photon  [cm^3 s^-1].

    Galli & Palla (1998), reaction H3: ``1.4e-18 T^0.928 exp(-T/16200)``.
    """
    return 1.4e-18 * T**0.928 * np.exp(-T / 16200.0)


def k11_pss83(T):
    """2H -> H+ + e- + H  [cm^3 s^-1] (default): ``1.7e-4 k1(T)``.

    Palla, Salpeter & Stahler (1983)-style scaling of the electron-impact rate, the documented
    choice of PM section 3.3 (a gap: not seen in public code).
    """
    return 1.7e-4 * k1(T)


def k11_lenzuni(T):
    """2H -> H+ + e- + H  [cm^3 s^-1] (selectable alternative).

    Lenzuni, Chernoff & Salpeter (1991): ``1.2e-17 T^1.2 exp(-157800/T)``, zero below 3000 K as in
    Grackle ``k57_rate`` (PM section 3.3).
    """
    return np.where(T > 3000.0, 1.2e-17 * T**1.2 * np.exp(-157800.0 / T), 0.0)


def k12(T):
    """H- + e- -> H + 2e-  [cm^3 s^-1].

    Abel et al. (1997) nine-term fit in ln(T_eV) to Janev et al. (1987) (PM section 3.2).
    """
    x = np.log(T / KELVIN_PER_EV)
    return np.exp(_poly(x, _K12_COEFFS))


def k13(T):
    """H- + H+ -> H2+ + e-  [cm^3 s^-1].

    Galli & Palla (1998), reaction H6: ``6.9e-9 T^-0.35`` (T <= 8000 K), ``9.6e-7 T^-0.9`` above.
    """
    return np.where(T <= 8000.0, 6.9e-9 * T**-0.35, 9.6e-7 * T**-0.9)


def k14(T):
    """H- + H+ -> 2H  [cm^3 s^-1].

    Galli & Palla (1998), reaction H7: ``5.7e-6 T^-1/2 + 6.3e-8 - 9.2e-11 T^1/2 + 4.4e-13 T``.
    """
    return 5.7e-6 / np.sqrt(T) + 6.3e-8 - 9.2e-11 * np.sqrt(T) + 4.4e-13 * T


def k15(T):
    """H + H+ -> H2+ + photon  [cm^3 s^-1].

    Galli & Palla (1998), reaction H8:
    ``10^(-19.38 - 1.523 log T + 1.118 (log T)^2 - 0.1269 (log T)^3)``.
    """
    L = np.log10(T)
    return 10.0 ** (-19.38 - 1.523 * L + 1.118 * L**2 - 0.1269 * L**3)


def k16(T):
    """H2+ + H -> H2 + H+  [cm^3 s^-1].

    Galli & Palla (1998), reaction H10: ``6.4e-10`` (constant).
    """
    return np.zeros_like(T) + 6.4e-10


def k17(T):
    """H2+ + e- -> 2H  [cm^3 s^-1].

    Galli & Palla (1998), reaction H11: ``2.0e-7 T^-1/2``.
    """
    return 2.0e-7 / np.sqrt(T)


def k18_abel97(T):
    """H2+ + H- -> H2 + H  [cm^3 s^-1] (default).

    Millar et al. (1991) as cited by Ono & Sugimura (2025); the public form is Abel et al. (1997)
    (Dalgarno & Lepp 1987), ``5.0e-7 (100/T)^1/2 = 5.0e-6 T^-1/2`` (Grackle ``k19_rate``;
    PM section 3.3).
    """
    return 5.0e-6 / np.sqrt(T)


def k18_glover_abel08(T):
    """H2+ + H- -> H2 + H  [cm^3 s^-1] (selectable alternative).

    Glover & Abel (2008): ``1.4e-7 (T/300)^-1/2`` (PM section 3.3).
    """
    return 1.4e-7 * np.sqrt(300.0 / T)
