"""Species, reactions and array layouts of the primordial network (shared by the network class and
its compiled kernel, :mod:`thermoemu.primordial.physics.kernel`).

State per cell ``x = (y(H), y(H2), y(e-), y(H+), y(H-), y(H2+), T)``; reactions in the order of
Ono & Sugimura (2025) Table 4; temperature-only coefficients in the column layout of
:data:`COEFFICIENT_COLUMNS`.
"""

from __future__ import annotations

import numpy as np

from .thermo import CHI_ERG

SPECIES = ("H", "H2", "e-", "H+", "H-", "H2+")
H, H2, E, HP, HM, H2P = range(6)
TEMP = 6
N_VARS = 7

#: Reactions as (reactants, products, radiative) in species indices, OS25 Table 4 order.
REACTIONS = (
    ((H, E), (HP, E, E), False),          # 1  H + e -> H+ + 2e
    ((HP, E), (H,), True),                # 2  H+ + e -> H + photon
    ((HM, H), (H2, E), False),            # 3  H- + H -> H2 + e
    ((H2, HP), (H2P, H), False),          # 4  H2 + H+ -> H2+ + H
    ((H2, E), (H, H, E), False),          # 5  H2 + e -> 2H + e
    ((H2, H), (H, H, H), False),          # 6  H2 + H -> 3H
    ((H, H, H), (H2, H), False),          # 7  3H -> H2 + H
    ((H, H, H2), (H2, H2), False),        # 8  2H + H2 -> 2H2
    ((H2, H2), (H, H, H2), False),        # 9  2H2 -> 2H + H2
    ((H, E), (HM,), True),                # 10 H + e -> H- + photon
    ((H, H), (HP, E, H), False),          # 11 2H -> H+ + e + H
    ((HM, E), (H, E, E), False),          # 12 H- + e -> H + 2e
    ((HM, HP), (H2P, E), False),          # 13 H- + H+ -> H2+ + e
    ((HM, HP), (H, H), False),            # 14 H- + H+ -> 2H
    ((H, HP), (H2P,), True),              # 15 H + H+ -> H2+ + photon
    ((H2P, H), (H2, HP), False),          # 16 H2+ + H -> H2 + H+
    ((H2P, E), (H, H), False),            # 17 H2+ + e -> 2H
    ((H2P, HM), (H2, H), False),          # 18 H2+ + H- -> H2 + H
)
N_REACTIONS = len(REACTIONS)


def _stoichiometry():
    nu = np.zeros((6, N_REACTIONS))
    for j, (reac, prod, _) in enumerate(REACTIONS):
        for s in reac:
            nu[s, j] -= 1
        for s in prod:
            nu[s, j] += 1
    return nu


#: Net stoichiometric matrix nu[i, j] (species x reactions).
STOICHIOMETRY = _stoichiometry()
#: Energy released per event Q_j [erg] from the KIDA chemical energies (PM section 4.4).
REACTION_ENERGY = np.array([sum(CHI_ERG[s] for s in reac) - sum(CHI_ERG[s] for s in prod)
                            for reac, prod, _ in REACTIONS])
RADIATIVE = np.array([rad for _, _, rad in REACTIONS])
#: Reactions whose heat is multiplied by the Omukai (2000) thermalization factor (H2 formation).
THERMALIZED = (2, 6, 7)  # 0-based indices of reactions 3, 7, 8

#: Conservation: C @ y = b. Row 0 hydrogen nuclei, row 1 charge (y(e) - y(H+) - y(H2+) + y(H-)).
CONSERVATION_MATRIX = np.array([[1.0, 2.0, 0.0, 1.0, 1.0, 2.0],
                                [0.0, 0.0, 1.0, -1.0, 1.0, -1.0]])
CONSERVATION_TARGET = np.array([1.0, 0.0])
CONSERVATION_NAMES = ("hydrogen nuclei", "charge")


# Column layout of the temperature-coefficient array.
_RATE_COLS = [j for j in range(N_REACTIONS) if j not in (5, 8)]  # all but k6 and k9
COEFFICIENT_COLUMNS = _COL = {}
_ncol = 0
for _name, _width in (("k", len(_RATE_COLS)), ("k6", 14), ("k9", 3), ("h2_lte", 1), ("h2_gamma", 5),
                      ("lya", 1), ("rec", 1), ("ff", 1), ("hm_bf", 1), ("hm_attach", 1), ("hm_ff", 1), ("cie", 1),
                      ("cv_h2", 1), ("fth", 3)):
    _COL[_name] = slice(_ncol, _ncol + _width)
    _ncol += _width
N_COEFFICIENTS = _ncol

_TABLE_LOGT_MIN, _TABLE_LOGT_MAX, _TABLE_PER_DEX = 0.0, 6.0, 400


