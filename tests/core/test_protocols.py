"""The two seams: the chemistry registry and the Stepper protocol, with the one xarray bridge and the shared
emulator policy, exercised on real steppers of both wings."""

import numpy as np
import pytest
import xarray as xr

import thermoemu as te
from thermoemu.core.emulator import FALLBACK_STATUS, OutOfDomainError, apply_fallback, check_choice
from thermoemu.core.grid import StateError, apply_stepper, flag_attrs
from thermoemu.core.protocols import Stepper, StepResult, chemistries, chemistry_of, get_chemistry
from thermoemu.primordial.reference import ReferenceStepper
from thermoemu.primordial.state import state_vector

from conftest import region_states


def _grid(n=6, region=1, seed=3):
    n_H, x = region_states(region, n, seed=seed)
    return te.primordial_state(n_H, x[6], x[:6].T, project=True)


def test_both_wings_are_registered_and_found_by_their_grids():
    assert {"primordial", "nuclear"} <= set(chemistries())
    assert chemistry_of(_grid()).kind == "primordial"
    nuclear = xr.Dataset({"density": 1e8, "temperature": 5e9,
                          "mass_fraction": ("isotope", [1.0], {"units": "1"})}, coords={"isotope": ["si28"]})
    assert chemistry_of(nuclear).kind == "nuclear"
    with pytest.raises(StateError, match=r"no chemistry recognizes this grid \(variables \['rho'\]\).*primordial: n_H"):
        chemistry_of(xr.Dataset({"rho": 1.0}))
    with pytest.raises(ValueError, match="unknown chemistry 'stellar'; available: nuclear, primordial"):
        get_chemistry("stellar")


def test_primordial_steppers_satisfy_the_protocol(network):
    table = te.SahaTable.__new__(te.SahaTable)  # attributes only: the table's stepper attributes are class-level
    for stepper in (ReferenceStepper(network), te.Emulator("default"), table):
        assert isinstance(stepper, Stepper)
        assert stepper.chemistry == "primordial" and len(stepper.variables) == 7
        assert 0 in stepper.status


def test_reference_stepper_through_the_bridge_is_the_solver_on_numpy_and_dask(network):
    ds = _grid(8)
    stepper = ReferenceStepper(network)
    dt = xr.DataArray(np.geomspace(1e8, 1e12, 8), dims="cell")
    x_np, ok, ood, status, extra = apply_stepper(stepper, {"n_H": ds["n_H"]}, state_vector(ds), dt,
                                                 vector_dim="variable", extra={"substeps": np.int64})
    direct = stepper.step_arrays({"n_H": ds["n_H"].values}, state_vector(ds).values.T, dt.values)
    np.testing.assert_array_equal(x_np.transpose("variable", "cell").values, direct.x)
    assert ok.all() and not ood.any() and (status == 0).all()
    np.testing.assert_array_equal(extra["substeps"].values, direct.extra["substeps"])
    lazy = ds.chunk({"cell": 3})
    x_dask, *_ = apply_stepper(stepper, {"n_H": lazy["n_H"]}, state_vector(lazy), dt.chunk({"cell": 3}),
                               vector_dim="variable")
    assert x_dask.chunks is not None
    np.testing.assert_array_equal(x_dask.compute().values, x_np.values)


def test_step_result_and_flag_attributes():
    res = StepResult(np.zeros((2, 3)), np.ones(3, bool), np.zeros(3, bool), np.array([0, 2, 5], np.int8))
    assert res.extra == {} and res.reason(2) == 5
    attrs = flag_attrs({0: "emulated", 2: "out of domain, advanced by the reference solver"}, "emulator status")
    assert attrs["flag_meanings"] == "emulated out_of_domain_advanced_by_the_reference_solver"
    np.testing.assert_array_equal(attrs["flag_values"], [0, 2])
    with pytest.raises(ValueError, match="update = 'x'; allowed: 'a', 'b'"):
        check_choice("update", "x", ("a", "b"))


@pytest.mark.parametrize("policy", ["reference", "flag"])
def test_the_shared_fallback_policy(policy):
    # cells: 0 emulated, 1 out of domain, 2 non-finite output, 3 out of domain and the reference fails
    x = np.array([[1.0, 1.0], [2.0, 2.0], [np.nan, 3.0], [4.0, 4.0]])
    success, status = np.ones(4, bool), np.zeros(4, np.int8)
    ood = np.array([False, True, False, True])
    nonfinite = np.array([False, False, True, False])
    energy = np.zeros(4)
    calls = []

    def reference(idx):
        calls.append(idx.tolist())
        return np.full((idx.size, 2), 9.0), idx != 3, (np.full(idx.size, 7.0),)

    apply_fallback(policy, x, success, status, ood, nonfinite, reference, extras=(energy,))
    if policy == "reference":
        assert calls == [[1, 2, 3]]
        np.testing.assert_array_equal(status, [0, 2, 4, 5])
        np.testing.assert_array_equal(success, [True, True, True, False])
        np.testing.assert_array_equal(x[:3], [[1, 1], [9, 9], [9, 9]])
        assert np.isnan(x[3]).all() and np.isnan(energy[3]) and energy[1] == 7.0
    else:
        assert calls == [[2]]  # only the non-finite cell; out-of-domain cells are flagged
        np.testing.assert_array_equal(status, [FALLBACK_STATUS["emulated"], 3, 4, 3])
        np.testing.assert_array_equal(success, [True, False, True, False])
        assert np.isnan(x[[1, 3]]).all() and np.isnan(energy[[1, 3]]).all()


def test_raise_policy_names_the_cell():
    emulator = te.Emulator("default", out_of_domain="raise")
    n_H = np.array([1e6, 1e6])
    x = np.repeat(np.array([0.9, 0.04, 1e-4, 1e-4, 1e-12, 1e-14, 1e5])[:, None], 2, axis=1)  # T = 1e5 K: outside
    x[:6] = te.PrimordialNetwork().project(x[:6].copy())
    with pytest.raises(OutOfDomainError, match=r"2 cell\(s\) outside the trained domain, e.g. cell 0: n_H = 1e\+06"):
        emulator.step_arrays({"n_H": n_H}, x, 1e9)
    copy = emulator.with_options(out_of_domain="flag")
    assert copy.regions is emulator.regions and emulator.out_of_domain == "raise"
    res = copy.step_arrays({"n_H": n_H}, x, 1e9)
    assert not res.success.any() and (res.status == 3).all() and np.isnan(res.x).all()
    with pytest.raises(TypeError, match="unknown option"):
        emulator.with_options(colour="red")


def test_cli_commands_come_from_the_wings_and_old_spellings_still_work():
    from thermoemu.cli import _legacy, build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    assert list(commands)[:2] == ["build", "collapse"]           # core's, then the primordial wing's first
    assert {"evaluate-nnn", "train-nnn", "burn", "validate", "saha-table"} <= set(commands)
    assert _legacy(["evaluate", "--model", "m", "--nuclear-test", "cat"]) == ["evaluate-nnn", "cat", "--model", "m"]
    assert _legacy(["evaluate", "--nuclear-test=cat"]) == ["evaluate-nnn", "cat"]
    assert _legacy(["evaluate", "--model", "m"]) == ["evaluate", "--model", "m"]


def test_a_primordial_catalog_spec_keeps_its_accessors():
    spec = te.load_spec("popiii-r2")
    assert spec.ranges["n_H"] == (8.0, 12.0) and spec.timescale_eps == 0.1
    assert spec.network_options().cv_h2 == "frozen" and spec.solver_settings().rtol > 0
    with pytest.raises(AttributeError, match="a nuclear CatalogSpec has no attribute 'ranges'"):
        te.load_spec("si-mesa80-test").ranges
