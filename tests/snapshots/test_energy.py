"""The compiled internal energy <-> temperature of the Grackle adapter against the numpy definitions."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import thermoemu as te
from thermoemu.snapshots import energy
from thermoemu.snapshots.grackle import fields_to_state, internal_energy, temperature_from_energy

pytestmark = pytest.mark.skipif(not energy.available("frozen"), reason="numba is not installed")


def _states(n, seed):
    """Temperatures across the whole bracket and abundances from fully atomic to fully molecular."""
    rng = np.random.default_rng(seed)
    T = 10 ** rng.uniform(-0.9, 8.9, n)
    y = 10 ** rng.uniform(-12, 0, (6, n))
    y[1] = rng.choice([0.0, 1e-6, 0.5], n)   # no H2, trace H2, fully molecular gas
    return T, y, rng.uniform(0.0, 0.1, n), rng.uniform(0.0, 0.01, n)


@pytest.mark.parametrize("model", ["frozen", "tgchem"])
def test_compiled_energy_and_temperature_agree_with_the_numpy_definitions(model):
    T, y, y_He, y_x = _states(20000, seed=1)
    E = internal_energy(T, y, y_He, y_x, model)
    np.testing.assert_allclose(energy.internal_energy_cells(T, y, y_He, y_x, model), E, rtol=1e-14, atol=0)
    T_back, bad = energy.temperature_cells(E, y, y_He, y_x, model)
    assert bad == -1
    np.testing.assert_allclose(T_back, T, rtol=2e-14, atol=0)
    np.testing.assert_allclose(T_back, temperature_from_energy(E, y, y_He, y_x, model), rtol=2e-14, atol=0)
    # the round trip through the compiled functions is exact to rounding
    np.testing.assert_allclose(energy.internal_energy_cells(T_back, y, y_He, y_x, model), E, rtol=1e-14, atol=0)


@settings(max_examples=200, deadline=None)
@given(log_T=st.floats(-1.0, 9.0), h2=st.floats(0.0, 0.5), ion=st.floats(0.0, 1.0))
def test_temperature_inverts_the_energy_anywhere_in_the_bracket(log_T, h2, ion):
    T = np.array([10.0 ** log_T])
    y = np.array([[1.0 - 2 * h2 - ion], [h2], [ion], [ion], [0.0], [0.0]])
    E = internal_energy(T, y, 0.079, 0.0)
    T_back, bad = energy.temperature_cells(E, y, np.array([0.079]), np.array([0.0]))
    assert bad == -1
    np.testing.assert_allclose(T_back, np.clip(T, 0.1, 1e9), rtol=2e-14)


def test_an_energy_without_a_temperature_names_its_cell():
    T, y, y_He, y_x = _states(4, seed=2)
    E = internal_energy(T, y, y_He, y_x)
    E[2] = np.nan
    assert energy.temperature_cells(E, y, y_He, y_x)[1] == 2
    E[2], E[1] = 1.0, -1.0
    assert energy.temperature_cells(E, y, y_He, y_x)[1] == 1
    f = xr.Dataset({k: ("cell", v) for k, v in {
        "density": [1.0, 1.0], "HI_density": [1.0, 1.0], "HII_density": [0.0, 0.0], "H2I_density": [0.0, 0.0],
        "e_density": [0.0, 0.0], "internal_energy": [1e10, -5.0]}.items()})
    with pytest.raises(te.StateError, match=r"energy -8.\d+e-24 erg per H nucleus \(cell 1\) has no temperature"):
        fields_to_state(f).load()


def test_the_equilibrium_model_stays_with_numpy():
    assert not energy.available("equilibrium")
