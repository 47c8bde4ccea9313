"""Update rules (thermoemu.primordial.update_rules): eq. 8's chord, the shaped chord and the tangent rule."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thermoemu.primordial.update_rules import BACKWARD_EULER_DENSITY, SHAPE_MAX, SHAPE_PROBE, _path, backward_euler_step, chord_fraction, implicit_slope, network_slope, shape_parameter, shaped_fraction, tangent_fraction, tangent_shape_parameter, update_fraction


def test_chord_is_eq_8():
    dt = np.array([1.0, 5.0, 10.0, 20.0])
    np.testing.assert_allclose(chord_fraction(dt, 10.0), [0.1, 0.5, 1.0, 1.0])


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-0.8 * SHAPE_MAX, 0.8 * SHAPE_MAX), u=st.floats(1e-4, 0.999),
       change=st.floats(-10.0, 10.0).filter(lambda c: abs(c) > 1e-6))
def test_shaped_fraction_recovers_an_exponential_path(a, u, change):
    """Changes sampled from an exponential path give back that path's fraction at any dt < tau."""
    tau = 3.0
    probe = change * _path(a, 1.0 / SHAPE_PROBE)
    w = shaped_fraction(u * tau, tau, probe, change)
    assert 0.0 <= w <= 1.0
    # the shape table has 4001 points in a; the fraction is smooth in a
    assert abs(w - _path(a, u)) <= 2e-3 + 2e-2 * _path(a, u)


def test_straight_path_is_eq_8_and_degenerate_cases():
    dt, tau = np.array([0.01, 0.3, 2.0, 5.0]), 2.0
    straight = shaped_fraction(dt, tau, np.full(4, 0.1 / SHAPE_PROBE), np.full(4, 0.1))
    np.testing.assert_allclose(straight, chord_fraction(dt, tau), rtol=1e-3)
    # no predicted change: the chord (nothing moves either way)
    np.testing.assert_allclose(shaped_fraction(dt, tau, np.zeros(4), np.zeros(4)), chord_fraction(dt, tau))
    # the change is all in before tau / q (a relaxation): most of it is reached early
    assert shaped_fraction(0.1 * tau, tau, 1.0, 1.0) > 0.99
    # no change before tau / q (or one of the other sign): almost nothing moves early
    assert shaped_fraction(0.1 * tau, tau, 0.0, 1.0) < 1e-3
    assert shaped_fraction(0.1 * tau, tau, -0.5, 1.0) < 1e-3
    # the fitted shape parameter is bounded
    assert shape_parameter(np.array([5.0, -5.0])).tolist() == [SHAPE_MAX, -SHAPE_MAX]


def test_shaped_fraction_rejects_bad_parameters():
    with pytest.raises(ValueError, match="q = 1"):
        shaped_fraction(1.0, 2.0, 0.1, 0.2, q=1)
    with pytest.raises(ValueError, match="a_max = 0"):
        shaped_fraction(1.0, 2.0, 0.1, 0.2, a_max=0)


def test_path_does_not_overflow():
    a = np.array([-1e3, -50.0, 0.0, 50.0, 1e3])
    for u in (0.0, 1e-3, 0.5, 1.0):
        w = _path(a, u)
        assert np.isfinite(w).all() and (w >= 0).all() and (w <= 1 + 1e-12).all()


# ----------------------------------------------------------------------------- the tangent rule
def _exponential_slope(a, change, tau):
    """x'(0) of the path x0 + change expm1(-a t/tau) / expm1(-a)."""
    return change / tau * (1.0 if a == 0 else a / -np.expm1(-a))


@settings(max_examples=80, deadline=None)
@given(a=st.one_of(st.floats(-40.0, 40.0), st.floats(40.0, 1e5)), u=st.floats(1e-4, 0.999),
       change=st.floats(-10.0, 10.0).filter(lambda c: abs(c) > 1e-6))
def test_tangent_fraction_recovers_an_exponential_path(a, u, change):
    """The exact initial slope of an exponential path gives back that path's fraction at any dt < tau."""
    tau = 3.0
    w = tangent_fraction(u * tau, tau, _exponential_slope(a, change, tau), change)
    assert 0.0 <= w <= 1.0
    assert abs(w - _path(a, u)) <= 2e-3 + 1e-2 * _path(a, u)


def test_tangent_fraction_limits():
    tau, change = 2.0, 0.1
    # a straight path (slope = change / tau) is eq. 8
    dt = np.array([0.01, 0.3, 1.9, 2.0, 5.0])
    np.testing.assert_allclose(tangent_fraction(dt, tau, change / tau, change), chord_fraction(dt, tau), rtol=1e-3)
    # a short step moves by the slope itself, whatever the predicted change (above the chord here)
    slope = 40 * change / tau
    step = tangent_fraction(1e-4, tau, slope, change) * change
    assert step == pytest.approx(slope * 1e-4, rel=1e-2)
    # a slope against the predicted change: the step follows the slope, bounded by that change
    assert tangent_fraction(1e-3, tau, -change / tau, change) == pytest.approx(-1e-3 / tau, rel=1e-9)
    assert tangent_fraction(1.0, tau, -1e3 * change / tau, change) == -1.0
    assert tangent_fraction(1.0, tau, -1e3 * change / tau, change, max_change=0.25 * change) == -0.25
    # no slope known (NaN) or no predicted change: eq. 8
    np.testing.assert_allclose(tangent_fraction(dt, tau, np.nan, change), chord_fraction(dt, tau))
    np.testing.assert_allclose(tangent_fraction(dt, tau, 1.0, 0.0), chord_fraction(dt, tau))
    assert tangent_shape_parameter(np.array([1.0, 1e9, -3.0])).tolist() == [0.0, 1e6, -1e6]
    with pytest.raises(ValueError, match="a_max = inf"):
        tangent_fraction(1.0, 2.0, 0.1, 0.2, a_max=np.inf)


def test_implicit_slope_damps_stiff_modes():
    """(I - dt J)^-1 f: the tangent for dt -> 0; a stiff mode's rate falls to what it reaches in dt."""
    f = np.array([[1.0, 1.0], [2.0, 2.0]])                      # (n = 2, N = 2)
    J = np.zeros((2, 2, 2))
    J[1, 1] = -1e6                                               # variable 1 relaxes in 1e-6
    slope = implicit_slope(f, J, np.array([1e-12, 1.0]))
    np.testing.assert_allclose(slope[0], [1.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(slope[1], [1.0, 2.0 / (1 + 1e6)], rtol=1e-12)


def test_network_slope_is_the_rate_equations_below_the_density_limit():
    from thermoemu.primordial.onezone import initial_collapse_state
    from thermoemu.primordial.physics.network import default_network

    network = default_network()
    n_H = np.array([1e2, 1e10])
    x = np.repeat(initial_collapse_state(300.0, 1e-4, 1e-3)[:, None], 2, axis=1)
    slope, backward_euler = network_slope(network, n_H, x, np.full(2, 1e-30))
    assert not backward_euler.any() and np.isfinite(slope).all()
    f = network.rhs(x, network.cell_parameters(n_H)).T
    slow = [0, 1, 6]                                             # H, H2, T (not the stiff H-, H2+)
    np.testing.assert_allclose(slope[:, slow], f[:, slow], rtol=1e-6)


@pytest.fixture(scope="module")
def region4_states():
    """Region-4 states as the collapse meets them: relaxed at fixed n_H for 1e4 s, then heated by
    0.2 % (one compression step), with the step dt = 1e-3 t_ff."""
    from thermoemu.primordial.physics.network import default_network, free_fall_time
    from thermoemu.solvers.rosenbrock import SolverSettings, integrate

    network, settings = default_network(), SolverSettings()
    n_H = np.array([3e15, 1e16, 1e17, 5e17])
    y_H2 = np.array([0.47, 0.49, 0.47, 0.43])
    T = np.array([2110.0, 2040.0, 2430.0, 2850.0])
    y_e = np.full(4, 1e-12)
    x = np.array([1 - 2 * y_H2 - y_e, y_H2, y_e, y_e, np.full(4, 1e-18), np.full(4, 1e-16), T])
    x = integrate(network, x, network.cell_parameters(n_H), np.full(4, 1e4), settings).x
    x[6] *= 1.002
    return network, settings, n_H, x, 1e-3 * free_fall_time(n_H)


def test_backward_euler_step_matches_the_reference_solver_in_region_4(region4_states):
    """Newton's backward-Euler step over 1e-3 t_ff at 3e15-5e17 cm^-3 is the solver's step to 1e-5 in
    T and 1e-4 in H and H2 (the linearly implicit step is off by more than the change near 1e17)."""
    from thermoemu.solvers.rosenbrock import integrate

    network, settings, n_H, x, dt = region4_states
    ref = integrate(network, x, network.cell_parameters(n_H), dt, settings).x
    x1, newton = backward_euler_step(network, n_H, x, dt)
    assert newton.all()
    np.testing.assert_allclose(x1[6], ref[6], rtol=1e-5)
    np.testing.assert_allclose(x1[:2], ref[:2], rtol=1e-4)
    assert np.abs(x1[6] / x[6] - 1).min() > 1e-4               # a real change, resolved to 1e-5
    slope, backward_euler = network_slope(network, n_H, x, dt)
    assert backward_euler.all() and (n_H > BACKWARD_EULER_DENSITY).all()
    np.testing.assert_allclose(x[:, :] + slope.T * dt, x1, rtol=1e-12)


def test_backward_euler_step_falls_back_to_the_reference_solver(region4_states):
    """Where Newton does not converge (here: one iteration allowed), or the step changes a variable by more
    than max_change, the reference solver's step is taken."""
    from thermoemu.solvers.rosenbrock import integrate

    network, settings, n_H, x, dt = region4_states
    x1, newton = backward_euler_step(network, n_H, x, dt, max_iterations=1, settings=settings)
    assert not newton.all()
    ref = integrate(network, x[:, ~newton], network.cell_parameters(n_H[~newton]), dt[~newton], settings).x
    np.testing.assert_array_equal(x1[:, ~newton], ref)
    # a step that changes a variable by more than max_change is the reference solver's too
    x1, newton = backward_euler_step(network, n_H, x, dt, max_change=1e-5, settings=settings)
    assert not newton.any()
    np.testing.assert_array_equal(x1, integrate(network, x, network.cell_parameters(n_H), dt, settings).x)


def test_update_fraction_takes_backward_euler_steps_unbounded():
    """update="tangent": where the slope is a backward-Euler step's, x' = x0 + slope dt for dt < tau,
    even beyond the predicted change; elsewhere the path bounds it; dt >= tau takes the prediction."""
    dt = np.array([1.0, 1.0, 10.0])
    tau = np.array([[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]])
    start = np.ones((3, 2))
    pred = np.array([[1.1, 0.9], [1.1, 0.9], [1.1, 0.9]])
    slope = np.array([[0.3, -0.3], [0.3, -0.3], [0.3, -0.3]])  # three times the predicted change
    frac = update_fraction("tangent", dt, tau, start, pred, None,
                           lambda rows: (slope[rows], np.array([True, False, True])[rows]))
    new = start + frac * (pred - start)
    np.testing.assert_allclose(new[0], [1.3, 0.7])              # backward Euler: x0 + slope dt
    assert 1.0 < new[1, 0] <= 1.1 and 0.9 <= new[1, 1] < 1.0    # bounded by the predicted change
    np.testing.assert_allclose(new[2], pred[2])                 # dt >= tau: the prediction
