"""Heat capacity and chemical energies of primordial gas (PM sections 4.4 and 5).

c_v is per hydrogen nucleus [erg K^-1]:
``c_v = (3/2) k_B (y(H) + y(e) + y(H+) + y(H-) + y(H2+) + y_He) + c_v,H2(T) y(H2)``
(Omukai & Nishi 1998; Ono & Sugimura 2025 eq. 2 and B2; H2+ treated as structureless).
"""

from __future__ import annotations

import numpy as np

from ...constants import KJ_PER_MOL

#: Rotational temperature of H2 [K] and vibrational temperature (fundamental 4161 cm^-1) [K].
THETA_ROT_H2 = 85.3
THETA_VIB_H2 = 5987.0
#: Highest rotational level summed. H2 (v=0) has bound levels up to J ~ 31 (Le Roy et al.).
J_MAX = 31

#: Chemical energies relative to H2 from KIDA (Wakelam et al. 2012), as listed by Ono & Sugimura
#: (2025, Appendix B), in kJ/mol, in the network's species order H, H2, e-, H+, H-, H2+.
CHI_KJ_PER_MOL = (216.034, 0.0, 0.0, 1528.084, 143.246, 1488.365)
#: The same per particle [erg].
CHI_ERG = tuple(c * KJ_PER_MOL for c in CHI_KJ_PER_MOL)


def _rotational_moments(T, odd):
    J = np.arange(1 if odd else 0, J_MAX + 1, 2, dtype=float)
    e0 = 2.0 if odd else 0.0  # energy of the lowest level of the species, in units of theta_r
    E = (J * (J + 1.0) - e0) * THETA_ROT_H2  # [K]
    w = (2.0 * J + 1.0) * np.exp(-E[None, :] / T[:, None])
    Z = w.sum(axis=1)
    e1 = (w * E).sum(axis=1) / Z
    e2 = (w * E**2).sum(axis=1) / Z
    return Z, e1, e2


def cv_h2_rotational(T, ortho_para="frozen"):
    """Rotational heat capacity of H2 per molecule in units of k_B.

    ``ortho_para="frozen"`` (default): a 3:1 ortho:para mixture that does not convert,
    ``c_rot = 0.25 c_para + 0.75 c_ortho`` (PM section 5; KROME ``gamma_rotop``).
    ``"equilibrium"``: ortho and para in thermal equilibrium, ``Z = Z_p + 3 Z_o`` with a common zero
    of energy. Levels up to ``J_MAX``.
    """
    T = np.atleast_1d(np.asarray(T, dtype=float))
    if ortho_para == "frozen":
        _, p1, p2 = _rotational_moments(T, odd=False)
        _, o1, o2 = _rotational_moments(T, odd=True)
        return (0.25 * (p2 - p1**2) + 0.75 * (o2 - o1**2)) / T**2
    if ortho_para == "equilibrium":
        J = np.arange(0, J_MAX + 1, dtype=float)
        E = J * (J + 1.0) * THETA_ROT_H2
        g = np.where(J % 2 == 1, 3.0, 1.0) * (2.0 * J + 1.0)
        w = g * np.exp(-E[None, :] / T[:, None])
        Z = w.sum(axis=1)
        e1 = (w * E).sum(axis=1) / Z
        e2 = (w * E**2).sum(axis=1) / Z
        return (e2 - e1**2) / T**2
    raise ValueError(f"ortho_para must be 'frozen' or 'equilibrium', got {ortho_para!r}")


def cv_h2_vibrational(T):
    """Harmonic-oscillator vibrational heat capacity of H2 per molecule in units of k_B."""
    x = THETA_VIB_H2 / np.asarray(T, dtype=float)
    em = np.exp(-np.minimum(x, 700.0))
    return x**2 * em / (1.0 - em) ** 2


def cv_h2(T, model="frozen"):
    """Heat capacity at constant volume of one H2 molecule in units of k_B.

    Parameters
    ----------
    T : array_like
        Temperature [K].
    model : {"frozen", "equilibrium", "tgchem"}
        ``"frozen"`` (default): 3/2 + rigid-rotor rotation with ortho:para frozen at 3:1 +
        harmonic vibration (theta_r = 85.3 K, theta_v = 5987 K), PM section 5 (a documented
        stand-in for the non-public Sugimura et al. 2023 c_v). ``"equilibrium"``: ortho/para in
        equilibrium. ``"tgchem"``: the cruder ``5/2 + x^2 e^x/(e^x-1)^2`` with theta_v = 6100 K
        (rotation always excited).
    """
    T = np.atleast_1d(np.asarray(T, dtype=float))
    if model == "tgchem":
        x = 6100.0 / T
        em = np.exp(-np.minimum(x, 700.0))
        return 2.5 + x**2 * em / (1.0 - em) ** 2
    return 1.5 + cv_h2_rotational(T, ortho_para=model) + cv_h2_vibrational(T)


def energy_h2(T, model="frozen"):
    """Internal energy of one H2 molecule, ``int_0^T c_v,H2(T') dT'``, in units of k_B K.

    The exact integral of :func:`cv_h2` for the same ``model`` (Ono & Sugimura 2025, eq. B2):
    translation ``(3/2) T``, rotation the mean level energy above each species' ground level
    (``"frozen"``: ``0.25 <E>_para + 0.75 <E>_ortho``; ``"equilibrium"``: the equilibrium
    mixture), vibration ``theta_v / (exp(theta_v/T) - 1)``. For ``"tgchem"`` rotation is always
    excited: ``(5/2) T`` plus vibration with theta_v = 6100 K.

    Parameters
    ----------
    T : array_like
        Temperature [K].
    model : {"frozen", "equilibrium", "tgchem"}
    """
    T = np.atleast_1d(np.asarray(T, dtype=float))
    if model == "tgchem":
        return 2.5 * T + _vibrational_energy(T, 6100.0)
    if model == "frozen":
        _, p1, _ = _rotational_moments(T, odd=False)
        _, o1, _ = _rotational_moments(T, odd=True)
        rot = 0.25 * p1 + 0.75 * o1
    elif model == "equilibrium":
        J = np.arange(0, J_MAX + 1, dtype=float)
        E = J * (J + 1.0) * THETA_ROT_H2
        g = np.where(J % 2 == 1, 3.0, 1.0) * (2.0 * J + 1.0)
        w = g * np.exp(-E[None, :] / T[:, None])
        rot = (w * E).sum(axis=1) / w.sum(axis=1)
    else:
        raise ValueError(f"model must be 'frozen', 'equilibrium' or 'tgchem', got {model!r}")
    return 1.5 * T + rot + _vibrational_energy(T, THETA_VIB_H2)


def _vibrational_energy(T, theta):
    """Harmonic-oscillator energy above the ground level [k_B K]: theta / (exp(theta/T) - 1)."""
    x = np.minimum(theta / T, 700.0)
    return theta / np.expm1(x)
