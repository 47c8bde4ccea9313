"""Update rules (thermoemu.update_rules): eq. 8's chord and the shaped chord."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thermoemu.update_rules import SHAPE_MAX, SHAPE_PROBE, _path, chord_fraction, shape_parameter, shaped_fraction


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
