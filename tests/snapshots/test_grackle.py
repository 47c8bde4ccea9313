"""Grackle's field conventions <-> state grids: exact round trips, helium, code units, errors."""

import numpy as np
import pytest
import xarray as xr

import thermoemu as te
from thermoemu.constants import K_BOLTZMANN, M_HYDROGEN
from thermoemu.snapshots.conventions import detect_convention
from thermoemu.snapshots.examples import collapse_cube, grackle_cube
from thermoemu.snapshots.grackle import (GrackleUnits, fields_from_state, fields_to_state, internal_energy,
                                         state_to_fields, temperature_from_energy)

COMOVING = GrackleUnits(density_units=6.2e-24, length_units=3e18, time_units=3.15e13, a_units=1 / 31,
                        a_value=31 / 16, comoving_coordinates=True)


def _fields(units, shape=(5, 4, 3), seed=0, X=0.76):
    """Grackle fields of partly molecular, partly ionized gas with ionized helium, in code units."""
    rng = np.random.default_rng(seed)
    rho = 1.67e-24 * 10 ** rng.uniform(-1, 3, shape) / units.density_units   # 0.1 .. 1000 m_H per cm^3
    h2, hii = rng.uniform(1e-6, 0.3, shape), 10 ** rng.uniform(-8, -2, shape)
    f = {"density": rho, "HI_density": X * rho * (1 - h2 - hii - 1e-10), "H2I_density": X * rho * h2,
         "HII_density": X * rho * hii, "HM_density": X * rho * 5e-11, "H2II_density": X * rho * 5e-11,
         "HeI_density": (1 - X) * rho * 0.98, "HeII_density": (1 - X) * rho * 0.015,
         "HeIII_density": (1 - X) * rho * 0.005}
    f["e_density"] = (f["HII_density"] + f["H2II_density"] / 2 - f["HM_density"] + f["HeII_density"] / 4
                      + 2 * f["HeIII_density"] / 4)
    f["internal_energy"] = 10 ** rng.uniform(-1, 1.5, shape) * (1e5 / units.velocity_units) ** 2
    return xr.Dataset({k: (("x", "y", "z"), v, {"units": "code"}) for k, v in f.items()}, attrs=units.as_attrs())


@pytest.mark.parametrize("units", [GrackleUnits(), COMOVING], ids=["cgs", "comoving"])
@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_fields_state_fields_round_trip_to_float_rounding(units, lazy):
    fields = _fields(units)
    if lazy:
        fields = fields.chunk({"x": 2})
    state = fields_to_state(fields)
    # conserving (the helium electrons taken out of e_density cost digits where H+ is rare), in range
    te.validate_state(state[["n_H", "temperature", "abundance"]], tolerance=1e-9)
    back = state_to_fields(state, fields).compute()
    assert detect_convention(fields).name == "grackle"
    for name in fields.data_vars:
        np.testing.assert_allclose(back[name].values, fields[name].values, rtol=4e-15, atol=0, err_msg=name)
        assert back[name].attrs == fields[name].attrs


def test_number_densities_helium_electrons_and_temperature_follow_the_conventions():
    units = COMOVING
    fields = _fields(units, shape=(3, 2, 2))
    state = fields_to_state(fields)
    du = units.density_units
    f = {k: fields[k].values * du for k in fields.data_vars}
    n_H = (f["HI_density"] + f["HII_density"] + f["HM_density"] + f["H2I_density"] + f["H2II_density"]) / M_HYDROGEN
    np.testing.assert_allclose(state["n_H"].values, n_H, rtol=1e-14)
    y = state["abundance"]
    np.testing.assert_allclose(y.sel(species="H2").values, f["H2I_density"] / (2 * M_HYDROGEN) / n_H, rtol=1e-14)
    # electrons: e_density is n_e m_H; helium's (n_HeII + 2 n_HeIII) are taken out, so charge balances hydrogen
    e_He = (f["HeII_density"] + 2 * f["HeIII_density"]) / (4 * M_HYDROGEN)
    np.testing.assert_allclose(y.sel(species="e-").values, (f["e_density"] / M_HYDROGEN - e_He) / n_H, rtol=1e-10)
    charge = y.sel(species="e-") - y.sel(species="H+") - y.sel(species="H2+") + y.sel(species="H-")
    assert float(abs(charge / y.sel(species="e-")).max()) < 1e-9
    # the specific energy in velocity_units^2 = (length / (a_value time))^2 gives back the energy per H nucleus
    assert units.velocity_units == pytest.approx(units.length_units / (units.a_value * units.time_units), rel=1e-15)
    y_arr = np.moveaxis(y.values, -1, 0)
    E = internal_energy(state["temperature"].values, y_arr, state["y_He"].values, state["y_e_helium"].values)
    np.testing.assert_allclose(E * n_H, fields["internal_energy"].values * units.velocity_units ** 2 * f["density"],
                               rtol=1e-13)


def test_atomic_gas_temperature_is_two_thirds_of_the_energy_per_particle():
    """No H2: T = (2/3) rho e / (k sum n) with every free particle counted (H, ions, electrons, helium)."""
    T = np.array([50.0, 800.0, 9000.0])
    y = np.zeros((6, 3))
    y[0], y[3], y[2] = 0.99, 0.01, 0.01
    E = internal_energy(T, y, 0.08, 0.0)
    np.testing.assert_allclose(E, 1.5 * K_BOLTZMANN * T * (1.0 + 0.01 + 0.08), rtol=1e-15)
    np.testing.assert_allclose(temperature_from_energy(E, y, 0.08), T, rtol=1e-14)
    with pytest.raises(te.StateError, match="has no temperature in"):
        temperature_from_energy(np.array([-1.0, 1e-14, 1e-14]), y, 0.08)


def test_a_step_carries_helium_and_density_unchanged():
    fields = grackle_cube(6, seed=3)
    state = fields_to_state(fields)
    new = state.emu.step("3e10 s")
    back = state_to_fields(new, fields)
    for name in ("density", "HeI_density", "HeII_density", "HeIII_density"):
        np.testing.assert_array_equal(back[name].values, fields[name].values)
    hydrogen = sum(back[k] for k in ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density"))
    before = sum(fields[k] for k in ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density"))
    np.testing.assert_allclose(hydrogen.values, before.values, rtol=1e-12)
    assert not np.allclose(back["H2I_density"].values, fields["H2I_density"].values, rtol=1e-6)   # chemistry ran


def test_fields_from_state_gives_the_state_back():
    state = collapse_cube(4, seed=1)
    fields = fields_from_state(state, COMOVING)
    again = fields_to_state(fields)
    np.testing.assert_allclose(again["n_H"].values, state["n_H"].values, rtol=1e-14)
    np.testing.assert_allclose(again["temperature"].values, state["temperature"].values, rtol=1e-13)
    np.testing.assert_allclose(again["abundance"].values, state["abundance"].values, rtol=1e-12, atol=1e-30)
    assert float(again["y_He"].mean()) == pytest.approx(0.097, rel=1e-12)


def test_bad_fields_name_the_field_and_the_convention():
    fields = _fields(GrackleUnits(), shape=(2, 2, 2))
    with pytest.raises(te.StateError, match=r"Grackle convention detected, but the field\(s\) \['H2I_density'\] are missing"):
        fields_to_state(fields.drop_vars("H2I_density"))
    # the trace species may be absent: zero in the state, written back beside the others
    no_trace = fields.drop_vars(["HM_density", "H2II_density"])
    state = fields_to_state(no_trace)
    assert float(state["abundance"].sel(species=["H-", "H2+"]).max()) == 0.0
    back = state_to_fields(state, no_trace)
    assert back["HM_density"].dims == no_trace["HI_density"].dims and float(back["HM_density"].max()) == 0.0
    with pytest.raises(te.StateError, match="no known snapshot convention matches the fields"):
        detect_convention(fields.drop_vars(["e_density"]))
    bad = fields.copy(deep=True)
    bad["HII_density"][0, 0, 0] = -1.0
    with pytest.raises(te.StateError, match=r"HII_density = -1 at \{'x': 0, 'y': 0, 'z': 0\} is below the allowed range"):
        fields_to_state(bad)
    bad["HII_density"][0, 0, 0] = np.nan
    with pytest.raises(te.StateError, match="HII_density has non-finite value nan"):
        fields_to_state(bad)
    with pytest.raises(ValueError, match="density_units = -1.0; Grackle's code units must be finite and > 0"):
        GrackleUnits(density_units=-1.0)
