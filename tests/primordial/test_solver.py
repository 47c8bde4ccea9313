"""The batched Rosenbrock solver, on both backends (compiled per cell, vectorized over cells):
conservation, step-control modes, failure flags, chunking, and agreement with per-cell scipy
Radau (rtol 1e-8) on a real dask cluster."""

import numpy as np
import pytest

from conftest import region_states
from thermoemu.primordial.physics.network import conservation_residual
from thermoemu.primordial.physics.network import free_fall_time
from thermoemu.solvers.linalg import lu_factor, lu_solve
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.primordial.validation import REQUIRED_FRACTION, TOLERANCE_DEX, validate_solver

REGIONS = [0, 1, 2, 3, 4]
BACKENDS = ["compiled", "vectorized"]


def test_batched_lu_matches_lapack():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(7, 7, 500))
    b = rng.normal(size=(7, 500))
    lu, perm = lu_factor(A.copy())
    x = lu_solve(lu, perm, b.copy())
    ref = np.linalg.solve(A.transpose(2, 0, 1), b.T[..., None])[..., 0].T
    np.testing.assert_allclose(x, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("region", REGIONS)
def test_conservation_after_integration(network, region, backend):
    n_H, x = region_states(region, 64, seed=10 + region)
    dt = 10**0.5 * free_fall_time(n_H)
    res = integrate(network, x, network.cell_parameters(n_H), dt, SolverSettings(backend=backend))
    assert res.success.all(), res.reasons[~res.success]
    r = conservation_residual(res.x[:6])
    assert np.abs(r[0]).max() <= 1e-12  # hydrogen nuclei, relative to 1
    charged = res.x[[2, 3, 4, 5]].sum(axis=0)
    assert (np.abs(r[1]) / charged).max() <= 1e-12
    assert np.isfinite(res.x).all() and (res.x > 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("region", [1, 3])
def test_integrator_itself_conserves_before_projection(network, region, backend):
    """Rosenbrock stages are linear in f and J, and every reaction conserves H nuclei and charge,
    so the unprojected result conserves them up to round-off in the linear solves; the final
    projection is then tiny."""
    n_H, x = region_states(region, 64, seed=30 + region)
    dt = 10**0.5 * free_fall_time(n_H)
    res = integrate(network, x, network.cell_parameters(n_H), dt, SolverSettings(project=False, backend=backend))
    assert res.success.all()
    r = conservation_residual(res.x[:6])
    assert np.abs(r[0]).max() <= 1e-8
    charged = res.x[[2, 3, 4, 5]].sum(axis=0)
    assert np.abs(r[1]).max() <= 1e-13  # absolute, per H nucleus
    assert (np.abs(r[1]) / charged).max() <= 1e-4


def test_bad_dt_is_refused(network):
    n_H, x = region_states(0, 2, seed=7)
    with pytest.raises(ValueError, match=r"dt = -1 s is not allowed"):
        integrate(network, x, network.cell_parameters(n_H), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"dt = nan s is not allowed"):
        integrate(network, x, network.cell_parameters(n_H), np.nan)


@pytest.mark.parametrize("backend", BACKENDS)
def test_relative_change_mode_limits_every_substep(network, backend):
    n_H, x = region_states(1, 16, seed=3)
    dt = 0.1 * free_fall_time(n_H)
    cell = network.cell_parameters(n_H)
    err = integrate(network, x, cell, dt, SolverSettings(rtol=1e-6, backend=backend))
    rel = integrate(network, x, cell, dt, SolverSettings(step_control="relative_change", backend=backend))
    assert rel.success.all()
    # the 10 % rule takes at least ln(final/initial)/ln(1.1) substeps for the fastest-changing variable
    growth = np.abs(np.log(np.maximum(err.x, 1e-20) / np.maximum(x, 1e-20)))
    growth[:6][np.maximum(err.x[:6], x[:6]) < 1e-20] = 0.0
    assert (rel.substeps >= np.floor(growth.max(axis=0) / np.log(1.1))).all()
    d = np.abs(np.log10(rel.x[6] / err.x[6]))
    assert np.median(d) < 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_cells_are_flagged_not_nan(network, backend):
    n_H, x = region_states(2, 8, seed=4)
    dt = 10**0.5 * free_fall_time(n_H)
    res = integrate(network, x, network.cell_parameters(n_H), dt, SolverSettings(max_substeps=5, backend=backend))
    assert (~res.success).all()
    assert (res.status == 1).all() and set(res.reasons) == {"maximum number of substeps reached"}
    assert np.isfinite(res.x).all()
    assert (res.time_reached < dt).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunking_does_not_change_results(network, backend):
    n_H, x = region_states(1, 40, seed=5)
    dt = 0.1 * free_fall_time(n_H)
    cell = network.cell_parameters(n_H)
    a = integrate(network, x, cell, dt, SolverSettings(chunk_size=7, backend=backend))
    b = integrate(network, x, cell, dt, SolverSettings(chunk_size=1000, backend=backend))
    # matrix products of different shapes round differently: equal to well within the tolerance
    np.testing.assert_allclose(a.x, b.x, rtol=1e-4)
    assert np.abs(a.substeps - b.substeps).max() <= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_dt_returns_input(network, backend):
    n_H, x = region_states(0, 5, seed=6)
    res = integrate(network, x, network.cell_parameters(n_H), 0.0, SolverSettings(backend=backend))
    assert res.success.all() and (res.substeps == 0).all()
    np.testing.assert_allclose(res.x, x, rtol=1e-14)


# States per region compared with Radau in `make test`. The full figure (200 per region) comes from
# `thermoemu validate --states 200` (docs/solver.md: ~8 minutes on this 2-core machine
# for all five regions); the test suite uses a subset.
VALIDATION_STATES = {0: 6, 1: 6, 2: 6, 3: 6, 4: 6}


@pytest.mark.slow
@pytest.mark.parametrize("region", REGIONS)
def test_batched_solver_matches_per_cell_radau(dask_client, region):
    ds = validate_solver(VALIDATION_STATES[region], regions=(region,), seed=100 + region,
                         client=dask_client, block=1, progress=False)
    assert ds["radau_success"].all()
    assert ds["batched_success"].all()
    frac = float((ds["max_dlog10"] <= TOLERANCE_DEX).mean())
    assert frac >= REQUIRED_FRACTION, ds["max_dlog10"].values


# ---------------------------------------------------------------- timescales tau_eps
@pytest.mark.parametrize("region", [1, 2])
def test_timescales_bracket_the_crossing_of_a_fine_integration(dask_client, region):
    """tau_eps (eps 0.1) vs scipy Radau (rtol 1e-8) with one event per variable: the reference
    crossing lies inside the batched substep [tau_lower, tau_upper], with the same sign; variables
    that never cross before dt_max are capped there. The 100-state figure: docs/catalogs.md."""
    from thermoemu.primordial.validation import validate_timescales
    ds = validate_timescales(3, regions=(region,), seed=40 + region, client=dask_client, block=1, progress=False)
    assert np.isfinite(ds["tau_radau"]).sum() >= 6  # real crossings were tested
    assert bool(ds["passed"].all()), ds["passed"].values
    assert (ds["tau_lower"] <= ds["tau_batched"]).all() and (ds["tau_batched"] <= ds["tau_upper"]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_timescales_do_not_change_the_state_after_dt(network, backend):
    n_H, x = region_states(1, 40, seed=9)
    dt_max = 10**0.5 * free_fall_time(n_H)
    dt = dt_max * np.linspace(0.0, 1.0, 40)
    cell = network.cell_parameters(n_H)
    settings = SolverSettings(backend=backend)
    plain = integrate(network, x, cell, dt, settings)
    timed = integrate(network, x, cell, dt, settings, timescale_eps=0.1, timescale_horizon=dt_max)
    assert timed.success.all()
    # substeps end exactly at dt in both; the paths differ only in where the step control lands
    np.testing.assert_allclose(np.log10(timed.x), np.log10(plain.x), atol=2e-3)
    assert (timed.tau <= dt_max * (1 + 1e-12)).all()
    capped = timed.tau_lower == timed.tau_upper
    np.testing.assert_allclose(timed.tau[capped], np.broadcast_to(dt_max, timed.tau.shape)[capped])
    with pytest.raises(ValueError, match="timescale_eps"):
        integrate(network, x, cell, dt, timescale_eps=-0.1)


def test_dense_cells_use_the_tighter_tolerance():
    s = SolverSettings()
    np.testing.assert_array_equal(s.rtol_for([1e14, 1e15, 1e17]), [1e-4, 1e-6, 1e-6])
    assert (SolverSettings(rtol_dense=None).rtol_for([1e17]) == 1e-4).all()
    with pytest.raises(ValueError, match="rtol_dense"):
        SolverSettings(rtol_dense=0.0)
