"""Fixed-density tests of Ono & Sugimura (2025) Figs. 2 and 6c-d (values: primordial.md section 8.1)."""

import pytest

import thermoemu as te

TRACE = {"H2": 5.7e-5, "H+": 6.6e-6, "H-": 4e-14, "H2+": 1e-16}


@pytest.mark.parametrize("dt, T_ref", [(2.7e6, 1458.0), (1.2e7, 1993.0), (2.3e8, 1976.0),
                                       (1.0e9, 1919.0), (4.4e9, 1033.0)])
def test_three_body_heating_plateau_then_h2_cooling(dt, T_ref):
    state = te.primordial_state(1e12, 23.0, TRACE, complete=True)
    out = te.integrate_state(state, dt)
    assert bool(out.success)
    assert float(out.temperature) == pytest.approx(T_ref, rel=0.01)
    if dt == 4.4e9:
        assert float(out.abundance.sel(species="H2")) == pytest.approx(0.47, abs=0.01)


def test_near_equilibrium_state_stays_put():
    state = te.primordial_state(1e3, 300.0, TRACE, complete=True)
    out = te.integrate_state(state, 4e10)
    assert float(out.temperature) == pytest.approx(300.0, rel=1e-3)
    assert float(out.abundance.sel(species="H2")) == pytest.approx(5.707e-5, rel=1e-3)
    assert float(out.abundance.sel(species="H-")) == pytest.approx(4.7e-13, rel=0.05)
