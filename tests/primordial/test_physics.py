"""Cooling functions, heat capacity and the chemical energy bookkeeping."""

import numpy as np
import pytest

from thermoemu.constants import EV
from thermoemu.primordial.physics import cooling
from thermoemu.primordial.physics.network import CONSERVATION_MATRIX, REACTION_ENERGY, STOICHIOMETRY, hminus_coefficients
from thermoemu.primordial.physics.rates import k10
from thermoemu.primordial.physics.thermo import cv_h2
from thermoemu.primordial.physics.network import free_fall_time


def test_h2_lte_cooling_reference_values():
    got = cooling.h2_lte_cooling(np.array([200.0, 1000.0, 2000.0]))
    np.testing.assert_allclose(got, [1.78e-24, 2.61e-21, 4.85e-20], rtol=5e-3)


def test_cie_table_check_value_and_extrapolation():
    assert cooling.cie_coefficient(np.array([1000.0]))[0] == pytest.approx(7.28e-14, rel=2e-3)
    lo = cooling.cie_coefficient(np.array([200.0, 400.0]))
    assert lo[1] / lo[0] == pytest.approx(16.0, rel=1e-6)  # T^4 below the table


@pytest.mark.parametrize("T, cv", [(20, 1.500), (50, 1.505), (100, 1.710), (200, 2.270), (300, 2.459),
                                   (500, 2.501), (1000, 2.591), (2000, 2.998), (5000, 3.389), (1e4, 3.446)])
def test_cv_h2_frozen_ortho_para(T, cv):
    # 1e4 K differs by 0.4 %: we sum rotational levels up to J = 31 (the bound levels of H2)
    assert cv_h2(np.array([float(T)]))[0] == pytest.approx(cv, rel=5e-3)


def test_cv_h2_alternatives_limits():
    T = np.array([30.0, 3000.0])
    assert cv_h2(T, "tgchem")[0] == pytest.approx(2.5, abs=1e-6)
    eq = cv_h2(T, "equilibrium")
    assert eq[1] == pytest.approx(cv_h2(T)[1], rel=1e-3)  # the same once rotation is excited


def test_reaction_energies_match_kida_table():
    q_ev = REACTION_ENERGY / EV
    expected = [-13.598, 13.598, 3.724, -1.827, -4.478, -4.478, 4.478, 4.478, -4.478,
                0.754, -13.598, -0.754, 1.896, 12.844, 2.651, 1.827, 10.948, 14.671]
    np.testing.assert_allclose(q_ev, expected, atol=2e-3)


def test_every_reaction_conserves_hydrogen_and_charge():
    np.testing.assert_array_equal(CONSERVATION_MATRIX @ STOICHIOMETRY, 0.0)


def test_free_fall_time_reference_values():
    got = free_fall_time(np.array([1.0, 1e4, 1e12, 1e18]))
    np.testing.assert_allclose(got, [1.378e15, 1.378e13, 1.378e9, 1.378e6], rtol=1e-3)


def test_hminus_attachment_cooling_matches_attachment_rate():
    """Milne-relation cooling per (n_H n_e) equals k10 times a few kT of electron energy."""
    T = np.array([400.0, 1000.0, 3000.0])
    _, g_attach, _ = hminus_coefficients(T)
    mean_energy = g_attach / k10(T) / (1.380649e-16 * T)
    assert np.all((mean_energy > 1.0) & (mean_energy < 5.0))


def test_escape_probabilities():
    assert cooling.h2_escape_ra04(np.array([1e9]))[0] == 1.0
    assert cooling.h2_escape_ra04(np.array([8e11]))[0] == pytest.approx(100**-0.45)
    tau = np.array([0.01, 1.0, 10.0])
    np.testing.assert_allclose(cooling.continuum_escape_diffusion(tau), [1.0, 1.0, 0.01])
    np.testing.assert_allclose(cooling.continuum_escape_slab(tau), -np.expm1(-tau) / tau)
