"""Saha equilibrium, the high-density table and the collapse above 1e18 cm^-3 (OS25 Appendix B)."""

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import thermoemu as te
from thermoemu.constants import K_BOLTZMANN
from thermoemu.primordial.physics import saha
from thermoemu.primordial.physics.thermo import cv_h2, energy_h2
from thermoemu.primordial.saha_table import SahaTable, SahaTableSpec, build_saha_table, check_table, load_saha_table, table_path

#: A small table (built in about a second) for tests; the 1000 x 1000 figures are in docs/saha.md.
SMALL = SahaTableSpec(n_points=120, e_points=160)


@pytest.fixture(scope="session")
def small_table(tmp_path_factory):
    return load_saha_table(SMALL, directory=tmp_path_factory.mktemp("saha"))


# ------------------------------------------------------------------ physics
def test_equilibrium_constants_match_reference_values():
    """PM section 7.2: rigid-rotor K_H2 and K_H at 1e3, 2e3, 3e3, 5e3, 1e4 K."""
    T = np.array([1e3, 2e3, 3e3, 5e3, 1e4])
    ln_k = saha.log_equilibrium_constants(T, "rigid_rotor")
    np.testing.assert_allclose(np.exp(ln_k[0]), [3.80e1, 9.99e12, 6.45e16, 6.90e19, 1.14e22], rtol=2e-3)
    np.testing.assert_allclose(np.exp(ln_k[1]), [2.24e-49, 1.17e-14, 5.68e-3, 1.68e7, 3.39e14], rtol=2e-3)


def test_omukai_partition_function_is_above_the_rigid_rotor():
    """PM section 7.2: the Omukai fit is 15-20% above the rigid rotor at 1000-5000 K."""
    T = np.array([1000.0, 2000.0, 3000.0, 5000.0])
    ratio = np.exp(saha.log_partition_h2(T, "omukai") - saha.log_partition_h2(T, "rigid_rotor"))
    assert np.all((ratio > 1.1) & (ratio < 1.25))


@settings(max_examples=60, deadline=None)
@given(log_n=st.floats(18, 22), log_T=st.floats(1, 5), pf=st.sampled_from(saha.PARTITION_FUNCTIONS))
def test_saha_conserves_and_satisfies_mass_action(log_n, log_T, pf):
    n, T = 10.0**log_n, 10.0**log_T
    y = saha.saha_abundances(n, T, pf)
    assert abs(y[0] + 2 * y[1] + y[3] + y[4] + 2 * y[5] - 1) < 1e-10
    assert abs(y[3] + y[5] - y[2] - y[4]) <= 1e-10 * max(y[2], 1e-300)
    ln_k = saha.log_equilibrium_constants(T, pf)
    ln_y = saha.log_saha_abundances(n, T, pf)
    ln_n = np.log(n) + ln_y
    # n_H^2 / n_H2 = K_H2, n_H+ n_e / n_H = K_H, n_H n_e / n_H- = K_H-, n_H n_H+ / n_H2+ = K_H2+
    np.testing.assert_allclose([2 * ln_n[0] - ln_n[1], ln_n[3] + ln_n[2] - ln_n[0], ln_n[0] + ln_n[2] - ln_n[4],
                                ln_n[0] + ln_n[3] - ln_n[5]], ln_k, rtol=1e-10, atol=1e-9)


def test_saha_limits():
    y_cold = saha.saha_abundances(1e20, 10.0)
    assert y_cold[1] == pytest.approx(0.5, rel=1e-12) and y_cold[2] == 0.0
    y_hot = saha.saha_abundances(1e18, 1e5)
    assert y_hot[3] > 0.99 and y_hot[2] == pytest.approx(y_hot[3], rel=1e-6)


@pytest.mark.parametrize("model", ["frozen", "equilibrium", "tgchem"])
def test_h2_energy_is_the_integral_of_cv(model):
    """OS25 eq. B2 uses int_0^T c_v,H2 dT: the derivative of energy_h2 is cv_h2."""
    T = np.geomspace(5.0, 1e5, 60)
    h = 1e-5 * T
    dEdT = (energy_h2(T + h, model) - energy_h2(T - h, model)) / (2 * h)
    np.testing.assert_allclose(dEdT, cv_h2(T, model), rtol=1e-6)
    assert energy_h2(np.array([1e-3]), model)[0] < 0.01  # starts at zero


def test_total_energy_of_known_states():
    """E_tot: atomic gas at 1e4 K holds chi(H) per H; molecular gas at 10 K only translation."""
    y_atomic = np.array([1.0, 0, 0, 0, 0, 0])
    E = saha.total_energy(1e4, y_atomic)
    assert E == pytest.approx(1.5 * K_BOLTZMANN * 1e4 * (1 + te.primordial.physics.network.Y_HE)
                              + 216.034 * 1.66053907e-14, rel=1e-12)
    y_mol = np.array([0, 0.5, 0, 0, 0, 0])
    assert saha.total_energy(10.0, y_mol) == pytest.approx(1.5 * K_BOLTZMANN * 10 * (0.5 + 0.097), rel=1e-3)


def test_saha_state_inverts_total_energy():
    rng = np.random.default_rng(3)
    n = 10 ** rng.uniform(18, 22, 300)
    T = 10 ** rng.uniform(1, 5, 300)
    E = saha.total_energy(T, saha.saha_abundances(n, T))
    T_back, y_back = saha.saha_state(n, E)
    np.testing.assert_allclose(T_back, T, rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_H=-1.0, total_energy_per_H=1e-12), "n_H = -1.0"),
    (dict(n_H=1e18, total_energy_per_H=np.nan), "total_energy = nan"),
    (dict(n_H=1e18, total_energy_per_H=1e-30), "outside the energies"),
])
def test_saha_state_bad_input(kwargs, match):
    with pytest.raises(saha.SahaError, match=match):
        saha.saha_state(**kwargs)


# ------------------------------------------------------------------ table
def test_table_against_direct_solve(small_table):
    """1000 off-grid points; the small table's errors bound the 1000 x 1000 table's (docs/saha.md)."""
    r = check_table(small_table, points=1000, seed=1)
    assert r["inside"] == 1000
    assert r["max_rel_err_temperature"] < 0.02
    assert r["max_rel_err_total_energy"] < 0.02
    assert all(r[f"max_rel_err_{s}"] < 0.3 for s in te.SPECIES)


def test_table_error_falls_with_resolution(small_table, tmp_path):
    coarse = load_saha_table(SahaTableSpec(n_points=60, e_points=80), directory=tmp_path)
    fine, rough = check_table(small_table, 500, seed=2), check_table(coarse, 500, seed=2)
    # bilinear interpolation: error ~ h^2, so halving h cuts it by ~4
    assert fine["max_rel_err_temperature"] < rough["max_rel_err_temperature"] / 2.5


def test_table_step_conserves_total_energy_and_reaches_equilibrium(small_table):
    rng = np.random.default_rng(4)
    n = 10 ** rng.uniform(18.01, 21.99, 200)
    T0 = 10 ** rng.uniform(2.5, 4.3, 200)
    x0 = np.concatenate([saha.saha_abundances(n, T0 * 1.3), T0[None]])  # out of equilibrium
    E0 = saha.total_energy(x0[6], x0[:6])
    x1, inside = small_table.step(n, x0)
    assert inside.all()
    np.testing.assert_allclose(saha.total_energy(x1[6], x1[:6]), E0, rtol=0.02)
    T_direct, _ = saha.saha_state(n, E0)
    np.testing.assert_allclose(x1[6], T_direct, rtol=0.02)
    x2, _ = small_table.step(n, x1)  # a second step changes (almost) nothing
    np.testing.assert_allclose(x2[6], x1[6], rtol=0.02)


def test_table_outside_is_flagged_and_solved_directly(small_table):
    n = np.array([1e19, 1e19])
    E_hi = small_table.energy_range[1] * 3  # above 1e5 K
    E = np.array([1e-12, E_hi])
    T_lookup, _, inside = small_table.lookup(n, E)
    assert inside.tolist() == [True, False]
    T, y, inside = small_table.state(n, E)
    T_direct, _ = saha.saha_state(n[1:], E[1:])
    assert T[1] == pytest.approx(T_direct[0], rel=1e-9) and T[1] > 1e5


def test_table_cache_is_keyed_by_parameters(small_table, tmp_path):
    assert small_table.path == table_path(SMALL, small_table.path.parent)
    assert load_saha_table(SMALL, directory=small_table.path.parent) is small_table
    other = SahaTableSpec(n_points=20, e_points=20, partition_functions="rigid_rotor")
    assert other.key() != SMALL.key()
    t = load_saha_table(other, directory=tmp_path)
    assert t.spec == other and t.dataset.attrs["spec_partition_functions"] == "rigid_rotor"
    assert [p.name for p in tmp_path.iterdir()] == [table_path(other, tmp_path).name]  # no temporaries left
    with pytest.raises(FileNotFoundError, match="thermoemu saha-table"):
        load_saha_table(SahaTableSpec(n_points=21, e_points=20), directory=tmp_path, build=False)


def test_table_file_round_trip(small_table):
    with xr.open_dataset(small_table.path) as ds:
        again = SahaTable(ds.load())
    n, E = np.array([3e19, 2e21]), np.array([2e-12, 8e-12])
    np.testing.assert_array_equal(again.lookup(n, E)[0], small_table.lookup(n, E)[0])
    assert again.spec == SMALL


@pytest.mark.parametrize("kwargs", [dict(n_points=1), dict(n_min=1e20, n_max=1e18), dict(t_min=0.1),
                                    dict(partition_functions="nope"), dict(cv_h2="x")])
def test_table_spec_bad_input(kwargs):
    with pytest.raises(ValueError):
        SahaTableSpec(**kwargs)


def test_table_on_cupy_matches_numpy(small_table):
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA device")
    n, E = np.geomspace(1e18, 1e22, 50), np.geomspace(1e-12, 1e-11, 50)
    T_np, y_np, _ = small_table.lookup(n, E)
    T_cp, y_cp, _ = small_table.lookup(cp.asarray(n), cp.asarray(E))
    np.testing.assert_allclose(cp.asnumpy(T_cp), T_np, rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(y_cp), y_np, rtol=1e-12)


# ------------------------------------------------------------------ state grids
def _mixed_grid():
    n = np.array([1e6, 1e17, 3e18, 1e21])
    T = np.array([300.0, 2000.0, 3500.0, 8000.0])
    y = np.array([saha.saha_abundances(1e19, t * 1.2) for t in T])  # off equilibrium on purpose
    y[0] = [0.99, 1e-4, 1e-4, 1e-4, 1e-12, 1e-14]
    y[0, 0] = 1 - 2 * y[0, 1] - y[0, 3] - y[0, 4] - 2 * y[0, 5]
    return te.primordial_state(n, T, y, dims="cell", project=True)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_integrate_state_uses_the_table_above_1e18(small_table, backend, dask_client):
    ds = _mixed_grid()
    if backend == "dask":
        ds = ds.chunk({"cell": 2})
    out = te.integrate_state(ds, 1e6, saha_table=small_table).compute()
    assert out["saha_equilibrium"].values.tolist() == [False, False, True, True]
    assert out["success"].all()
    hi = out["n_H"].values > 1e18
    E_in = saha.total_energy(ds["temperature"].values[hi], ds["abundance"].values[hi].T)
    E_out = saha.total_energy(out["temperature"].values[hi], out["abundance"].values[hi].T)
    np.testing.assert_allclose(E_out, E_in, rtol=0.02)
    T_direct, _ = saha.saha_state(ds["n_H"].values[hi], E_in)
    np.testing.assert_allclose(out["temperature"].values[hi], T_direct, rtol=0.02)
    assert out["substeps"].values[0] > 0  # the low-density cells went through the network


def test_emulator_step_uses_the_table_above_1e18(small_table):
    ds = _mixed_grid()
    out = ds.emu.step(1e6, saha_table=small_table)
    status = out["emu_status"].values
    assert status[2] == 6 and status[3] == 6 and not out["emu_out_of_domain"].values[2:].any()
    ref = te.integrate_state(ds, 1e6, saha_table=small_table)
    np.testing.assert_allclose(out["temperature"].values[2:], ref["temperature"].values[2:], rtol=1e-12)


# ------------------------------------------------------------------ collapse
@pytest.fixture(scope="module")
def high_collapse(small_table):
    """Collapse from 1e17 (near-equilibrium start at 3000 K) to 1e22, table and ground truth."""
    kw = dict(step_fraction=0.1, n_start=1e17, temperature=2600.0, y_e=1e-12, y_H2=0.45)
    return (te.collapse(high_density="table", saha_table=small_table, **kw),
            te.collapse(high_density="saha", **kw))


def test_collapse_runs_to_protostellar_density_with_landmarks(high_collapse):
    table, truth = high_collapse
    for ds in high_collapse:
        n, T = ds["n_H"].values, ds["temperature"].values
        assert n[-1] == pytest.approx(1e22)
        assert set(np.unique(ds["regime"].values[n > 1e18])) <= {1, 2}
        assert (ds["regime"].values[n <= 1e18] == 0).all()
        # a few thousand K at 1e18 rising past 1e4 K by 1e22 as H2 dissociates and H ionizes
        assert 1500 < T[np.argmin(np.abs(np.log(n / 1e18)))] < 5000
        assert T[-1] > 1e4
        assert ds["abundance"].sel(species="H2").values[-1] < 0.1
        assert ds["abundance"].sel(species="H+").values[-1] > 1e-3


def test_collapse_table_reproduces_the_saha_adiabat(high_collapse):
    table, truth = high_collapse
    hi = table["n_H"].values > 1e18
    np.testing.assert_allclose(table["n_H"].values, truth["n_H"].values)
    np.testing.assert_allclose(table["temperature"].values[hi], truth["temperature"].values[hi], rtol=0.02)
    assert table.attrs["saha_switch_dT_K"] == pytest.approx(truth.attrs["saha_switch_dT_K"], abs=30)


def test_collapse_high_density_bad_input():
    with pytest.raises(ValueError, match="high_density"):
        te.collapse(high_density="nope")
    with pytest.raises(ValueError, match="above the Saha table"):
        te.collapse(n_end=1e23)


def test_cli_saha_table(tmp_path, capsys):
    from thermoemu.cli import main
    assert main(["saha-table", "--out", str(tmp_path), "--n-points", "30", "--e-points", "40", "-q"]) == 0
    out = capsys.readouterr().out
    assert "30 x 40" in out and "built in" in out
    assert main(["saha-table", "--out", str(tmp_path), "--n-points", "30", "--e-points", "40", "-q"]) == 0
    assert "cached" in capsys.readouterr().out
    assert main(["saha-table", "--out", str(tmp_path), "--n-points", "1"]) == 2
