"""Rate coefficients at spot temperatures against the published fits.

Expected values are those computed from each published fit in ../shared/physics/primordial.md
section 8.4 (n_H = 1e10 cm^-3 for the density-dependent k6 and k9).
"""

import numpy as np
import pytest

from thermoemu.primordial.physics import rates

T_SPOT = np.array([100.0, 1000.0, 3000.0, 1.0e4])
N_SPOT = np.full(4, 1e10)

EXPECTED = {
    "k1": (8.56e-289, 1.887e-60, 1.268e-29, 7.247e-16),
    "k2_case_b": (6.939e-12, 1.499e-12, 6.735e-13, 2.592e-13),
    "k3": (4.461e-9, 2.557e-9, 1.753e-9, 1.037e-9),
    "k4": (1.143e-101, 2.164e-19, 2.690e-13, 3.655e-11),
    "k5": (0.0, 2.486e-53, 1.243e-23, 4.108e-13),
    "k7": (3.897e-32, 1.699e-32, 1.176e-32, 8.000e-33),
    "k8_pss83": (6.875e-32, 6.875e-33, 2.292e-33, 6.875e-34),
    "k10": (9.987e-17, 8.004e-16, 1.961e-15, 3.891e-15),
    "k11_pss83": (1.46e-292, 3.208e-64, 2.156e-33, 1.232e-19),
    "k12": (5.368e-48, 4.534e-13, 2.941e-10, 1.046e-8),
    "k13": (1.377e-9, 6.150e-10, 4.187e-10, 2.411e-10),
    "k14": (6.321e-7, 2.408e-7, 1.633e-7, 1.152e-7),
    "k15": (1.073e-19, 4.861e-18, 3.210e-17, 1.970e-16),
    "k16": (6.4e-10, 6.4e-10, 6.4e-10, 6.4e-10),
    "k17": (2.000e-8, 6.325e-9, 3.651e-9, 2.000e-9),
    "k18_abel97": (5.000e-7, 1.581e-7, 9.129e-8, 5.000e-8),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rate_at_spot_temperatures(name):
    got = getattr(rates, name)(T_SPOT)
    want = np.array(EXPECTED[name])
    # the reference values carry 3-4 significant digits
    np.testing.assert_allclose(got, want, rtol=4e-3, atol=0.0)


def test_k6_martin96_spot_values_and_density_dependence():
    got = rates.k6_martin96(T_SPOT[1:], N_SPOT[1:])
    np.testing.assert_allclose(got, [8.120e-31, 8.762e-16, 4.647e-11], rtol=2e-3)
    n = np.array([1.0, 1e4, 1e8, 1e12])
    got = rates.k6_martin96(np.full(4, 3000.0), n)
    np.testing.assert_allclose(got, [2.0e-19, 1.46e-16, 8.75e-16, 8.76e-16], rtol=1.5e-2)  # 2-3 digits given
    # zero below the temperature where the fit's exponent changes sign
    assert rates.k6_martin96(np.array([100.0]), np.array([1e10]))[0] == 0.0


def test_k9_spot_values_and_density_dependence():
    got = rates.k9(T_SPOT[1:], N_SPOT[1:])
    np.testing.assert_allclose(got, [5.939e-32, 3.802e-17, 2.022e-12], rtol=2e-3)
    lo, hi = rates.k9(np.full(2, 3000.0), np.array([1.0, 1e12]))
    np.testing.assert_allclose([lo, hi], [1.0e-20, 3.8e-17], rtol=3e-2)


@pytest.mark.parametrize("T, ratio", [(1e4, 1.66), (1e3, 1.35), (100.0, 1.23)])
def test_case_a_recombination_alternative(T, ratio):
    T = np.array([T])
    assert rates.k2_case_a(T)[0] / rates.k2_case_b(T)[0] == pytest.approx(ratio, rel=0.02)


def test_alternatives_follow_their_fits():
    T = np.array([1000.0, 5000.0, 1e4])
    np.testing.assert_allclose(rates.k8_forrey(T), rates.k7(T) / 8.0)
    np.testing.assert_allclose(rates.k11_lenzuni(T), 1.2e-17 * T**1.2 * np.exp(-157800.0 / T) * (T > 3000))
    # Lenzuni vs 1.7e-4 k1: within ~15 % at 1e4 K (PM section 3.3)
    assert rates.k11_lenzuni(np.array([1e4]))[0] / rates.k11_pss83(np.array([1e4]))[0] == pytest.approx(0.9, abs=0.15)
    np.testing.assert_allclose(rates.k18_glover_abel08(np.array([300.0])), [1.4e-7])


@pytest.mark.parametrize("T, K_saha", [(2000.0, 9.99e12), (3000.0, 6.45e16), (5000.0, 6.90e19)])
def test_dissociation_and_three_body_rates_obey_detailed_balance(T, K_saha):
    """k6(n -> inf) / k7 is close to the Saha constant K_H2 (PM section 3.3): a transcription
    error in either fit shows up as orders of magnitude."""
    T_ = np.array([T])
    ratio = rates.k6_martin96(T_, np.array([1e20]))[0] / rates.k7(T_)[0]
    assert 0.7 < ratio / K_saha < 1.4
