"""Physical constants in cgs units.

Values follow ``../shared/physics/primordial.md`` section 1 (CODATA 2018 where exact), so the
numbers printed there as unit-test values are reproduced exactly.
"""

#: Boltzmann constant [erg K^-1] (CODATA 2018, exact).
K_BOLTZMANN = 1.380649e-16
#: Mass of a hydrogen atom [g].
M_HYDROGEN = 1.6735575e-24
#: Electron mass [g].
M_ELECTRON = 9.1093837e-28
#: Gravitational constant [cm^3 g^-1 s^-2].
G_NEWTON = 6.674e-8
#: Planck constant [erg s] (CODATA 2018, exact).
H_PLANCK = 6.62607015e-27
#: Speed of light [cm s^-1] (exact).
C_LIGHT = 2.99792458e10
#: Stefan-Boltzmann constant [erg cm^-2 s^-1 K^-4].
SIGMA_SB = 5.670374419e-5
#: One electron volt [erg] (exact).
EV = 1.602176634e-12
#: One kJ/mol expressed per particle [erg].
KJ_PER_MOL = 1.66053907e-14
#: Kelvin per electron volt (T_eV = T / KELVIN_PER_EV).
KELVIN_PER_EV = 11604.518
#: Helium abundance by number relative to hydrogen nuclei (Ono & Sugimura 2025, section 2.1).
Y_HE = 0.097
#: Mass per hydrogen nucleus including helium, (1 + 4 y_He) m_H [g].
MASS_PER_H = (1.0 + 4.0 * Y_HE) * M_HYDROGEN
