"""State grids: construction from every input kind, validation errors, conservation, netCDF."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from thermoemu import StateError, UnitsError, open_state, primordial_state, ureg, write_state
from thermoemu.primordial.state import conservation_error, project_state

TRACE = {"H2": 5.7e-5, "H+": 6.6e-6, "H-": 4e-14, "H2+": 1e-16}


def full(H2=5.7e-5, Hp=6.6e-6, Hm=4e-14, H2p=1e-16):
    return {"H": 1 - 2 * H2 - Hp - Hm - 2 * H2p, "H2": H2, "e-": Hp + H2p - Hm, "H+": Hp, "H-": Hm, "H2+": H2p}


def test_scalar_state_has_no_cell_dims_and_canonical_units():
    ds = primordial_state(1e3, 300.0, full())
    assert ds["n_H"].dims == ()
    assert ds["abundance"].dims == ("species",)
    assert list(ds["species"].values) == ["H", "H2", "e-", "H+", "H-", "H2+"]
    assert ds["n_H"].attrs["units"] == "cm^-3" and ds["temperature"].attrs["units"] == "K"


def test_pint_quantities_are_converted():
    ds = primordial_state(ureg.Quantity(np.array([1e9, 1e10]), "m^-3"),
                          ureg.Quantity(np.array([20.0, 30.0]), "degC"), TRACE, complete=True)
    np.testing.assert_allclose(ds["n_H"].values, [1e3, 1e4])
    np.testing.assert_allclose(ds["temperature"].values, [293.15, 303.15])


def test_broadcast_over_user_dims_from_xarray():
    n = xr.DataArray(np.logspace(0, 3, 4), dims="x")
    T = xr.DataArray(np.linspace(100, 400, 3), dims="y")
    ds = primordial_state(n, T, TRACE, complete=True)
    assert ds["abundance"].dims == ("x", "y", "species")
    assert ds["temperature"].shape == (4, 3)


def test_numpy_arrays_need_dims_beyond_1d():
    n = np.full((2, 3), 1e3)
    with pytest.raises(StateError, match="pass dims"):
        primordial_state(n, 300.0, TRACE, complete=True)
    ds = primordial_state(n, 300.0, TRACE, dims=("x", "y"), complete=True)
    assert ds["n_H"].dims == ("x", "y")


def test_dims_must_name_every_axis():
    with pytest.raises(StateError, match=r"n_H has 1 dimension\(s\) \(shape \(3,\)\) but dims=\('x', 'y'\) names 2"):
        primordial_state(np.full(3, 1e3), 300.0, TRACE, dims=("x", "y"), complete=True)


def test_abundance_array_with_species_last_axis():
    y = np.array([list(full().values())] * 5)
    ds = primordial_state(np.full(5, 1e2), np.full(5, 100.0), y)
    assert ds["abundance"].dims == ("cell", "species")


BAD_INPUTS = [
    ({"n_H": -1.0}, StateError, r"n_H = -1 .* below the allowed range \[1e-08, 1e\+22\] cm\^-3"),
    ({"n_H": 1e23}, StateError, r"n_H = 1e\+23 .* above the allowed range \[1e-08, 1e\+22\] cm\^-3"),
    ({"n_H": np.nan}, StateError, r"n_H has non-finite value nan"),
    ({"n_H": np.inf}, StateError, r"n_H has non-finite value inf"),
    ({"temperature": 0.0}, StateError, r"temperature = 0 .* below the allowed range \[1, 1e\+06\] K"),
    ({"temperature": 1e7}, StateError, r"temperature = 1e\+07 .* above the allowed range"),
    ({"n_H": ureg.Quantity(1.0, "g/cm^3")}, UnitsError, r"n_H has units .*expected units convertible to cm\^-3"),
    ({"temperature": ureg.Quantity(1.0, "m")}, UnitsError, r"temperature has units m .*convertible to K"),
    ({"temperature": "300 parsec_per_bogus"}, UnitsError, r"cannot parse"),
]


@pytest.mark.parametrize("override, error, message", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(override, error, message):
    kwargs = {"n_H": 1e3, "temperature": 300.0}
    kwargs.update(override)
    with pytest.raises(error, match=message):
        primordial_state(abundance=full(), **kwargs)


def test_unknown_and_missing_species():
    with pytest.raises(StateError, match=r"unknown species \['He'\]"):
        primordial_state(1e3, 300.0, {**full(), "He": 0.08})
    with pytest.raises(StateError, match=r"missing species \['H', 'e-'\].*complete=True"):
        primordial_state(1e3, 300.0, TRACE)


def test_negative_abundance_is_rejected():
    with pytest.raises(StateError, match=r"abundance\(H-\) = -1e-10 .* below the allowed range \[0, 1\]"):
        primordial_state(1e3, 300.0, full(Hm=-1e-10))


def test_conservation_violation_raises_or_projects():
    y = full()
    y["H"] = 0.9
    with pytest.raises(StateError, match="violate hydrogen nuclei conservation by 0.0999"):
        primordial_state(1e3, 300.0, y)
    ds = primordial_state(1e3, 300.0, y, project=True)
    assert np.abs(conservation_error(ds).values).max() < 1e-14


def test_projection_too_far_is_an_error():
    y = full()
    y["e-"] = 0.5  # wildly non-neutral
    with pytest.raises(StateError, match="cannot project"):
        primordial_state(1e3, 300.0, y, project=True)


@settings(max_examples=200, deadline=None)
@given(logs=st.lists(st.floats(-20, -0.5), min_size=6, max_size=6),
       scale=st.floats(0.98, 1.02))
def test_projection_restores_conservation_with_small_relative_change(logs, scale):
    y = np.array([10.0**v for v in logs])
    y[1] = min(y[1], 0.25)
    y[0] = 1 - 2 * y[1] - y[3] - y[4] - 2 * y[5]
    y[2] = y[3] + y[5] - y[4]
    if y[0] <= 0 or y[2] <= 0:
        return
    perturbed = y * scale * (1 + 1e-3 * np.sin(np.arange(6)))
    ds = xr.Dataset({"n_H": xr.DataArray(1e3, attrs={"units": "cm^-3"}),
                     "temperature": xr.DataArray(100.0, attrs={"units": "K"}),
                     "abundance": xr.DataArray(perturbed, dims="species",
                                               coords={"species": ["H", "H2", "e-", "H+", "H-", "H2+"]},
                                               attrs={"units": "1"})})
    out = project_state(ds)
    assert np.abs(conservation_error(out).values).max() < 1e-12
    rel = np.abs(out["abundance"].values / perturbed - 1)
    assert rel.max() < 0.1


def test_netcdf_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    n = xr.DataArray(10 ** rng.uniform(-3, 18, (3, 4)), dims=("x", "y"))
    ds = primordial_state(n, xr.DataArray(10 ** rng.uniform(1.3, 4, (3, 4)), dims=("x", "y")), TRACE, complete=True)
    path = tmp_path / "state.nc"
    write_state(ds, path)
    back = open_state(path)
    xr.testing.assert_identical(back, ds)
    raw = xr.open_dataset(path)
    assert raw["n_H"].attrs["units"] == "cm^-3" and raw["abundance"].attrs["units"] == "1"
    raw.close()
    assert ds.pint.quantify()["n_H"].pint.units == ureg.Unit("cm^-3")
