"""Right-hand side and Jacobian of the primordial network."""

import numpy as np
import pytest

from conftest import region_states
from thermoemu.primordial.physics.network import PrimordialNetwork


@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_jacobian_matches_finite_differences(exact_network, region):
    n_H, x = region_states(region, 12, seed=region)
    cell = exact_network.cell_parameters(n_H)
    f0 = exact_network.rhs(x, cell)
    J = exact_network.jacobian(x, cell, f0)
    scale = np.abs(x)
    for m in range(7):
        dx = 1e-6 * scale[m]
        xp = x.copy()
        xp[m] += dx
        column = (exact_network.rhs(xp, cell) - f0) / dx
        # compare in scaled form J[:, m] * x[m] against the size of the rates
        err = np.abs(column - J[:, m]) * scale[m]
        size = np.abs(f0) + np.abs(J[:, m]) * scale[m] + 1e-300
        assert np.percentile(err / size, 95) < 1e-4
        assert np.max(err / size) < 1e-2


@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_analytic_jacobian_of_the_tabulated_network_matches_central_differences(network, region):
    """The temperature row and column are analytic too (the table's cubic pieces differentiated in
    closed form): central differences with a relative step 1e-5 agree to their own truncation
    and round-off, ~1e-10 of the rates."""
    n_H, x = region_states(region, 400, seed=50 + region)
    cell = network.cell_parameters(n_H)
    f0, J = network.rhs_and_jacobian(x, cell)
    np.testing.assert_array_equal(f0, network.rhs(x, cell))
    scale = np.abs(x)
    for m in range(7):
        dx = 1e-5 * scale[m]
        xp, xm = x.copy(), x.copy()
        xp[m] += dx
        xm[m] -= dx
        column = (network.rhs(xp, cell) - network.rhs(xm, cell)) / (2 * dx)
        err = np.abs(column - J[:, m]) * scale[m]
        size = np.abs(f0) + np.abs(J[:, m]) * scale[m] + 1e-300
        assert np.percentile(err / size, 99) < 1e-7, m
        assert np.max(err / size) < 1e-4, m


@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_tabulated_coefficients_match_exact(network, exact_network, region):
    n_H, x = region_states(region, 500, seed=20 + region)
    cell = network.cell_parameters(n_H)
    a = network.rhs(x, cell)
    b = exact_network.rhs(x, cell)
    rel = np.abs(a - b) / (np.abs(b) + 1e-300)
    assert np.median(rel) < 1e-9
    assert np.percentile(rel, 99) < 1e-3


def test_vectorized_over_cells(network):
    n_H, x = region_states(1, 10, seed=1)
    cell = network.cell_parameters(n_H)
    whole = network.rhs(x, cell)
    for i in range(10):
        one = network.rhs(x[:, i:i + 1], network.take_cells(cell, [i]))
        np.testing.assert_allclose(one[:, 0], whole[:, i], rtol=1e-12)


def test_options_are_validated_and_change_the_physics():
    with pytest.raises(ValueError, match=r"option k2='case_c' is not allowed; choose one of \('case_b', 'case_a'\)"):
        PrimordialNetwork(k2="case_c")
    a, b = PrimordialNetwork(), PrimordialNetwork(k2="case_a")
    n_H, x = region_states(0, 5, seed=2)
    assert not np.allclose(a.rhs(x, a.cell_parameters(n_H)), b.rhs(x, b.cell_parameters(n_H)))


def test_table_does_not_overshoot_where_coefficients_switch_on(network, exact_network):
    """The H2-H and H2-e cooling rates jump from 0 to ~1e-26 at 100 K: the monotone table stays
    between the exact values (a cubic Hermite table went negative and 2.7x too high here)."""
    T = 100.0 * np.linspace(0.99, 1.01, 401)
    table = network._coefficients(T)
    exact = exact_network.temperature_coefficients(T)
    step = np.abs(np.diff(exact, axis=1)).max(axis=1)
    jumps = step > 0.5 * (exact.max(axis=1) - exact.min(axis=1))  # one sample carries most of the change
    assert jumps.sum() >= 2
    lo, hi = exact[jumps].min(axis=1)[:, None], exact[jumps].max(axis=1)[:, None]
    assert (table[jumps] >= lo).all()
    assert (table[jumps] <= hi * (1 + 1e-3)).all()  # interpolation error only, not overshoot
    # away from the jump the table is accurate
    far = np.abs(T / 100.0 - 1) > 0.005
    rel = np.abs(table[:, far] - exact[:, far]) / (np.abs(exact[:, far]) + 1e-30)
    relevant = np.abs(exact[:, far]) > 1e-60
    assert np.percentile(rel[relevant], 99) < 1e-3
