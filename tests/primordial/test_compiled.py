"""The compiled backend (numba, cell by cell) against the vectorized one (numpy over cells): the
same kernel source, the same method, step control and flags, so the same results to round-off."""

import numpy as np
import pytest

from conftest import region_states
from thermoemu.primordial.physics.network import PrimordialNetwork
from thermoemu.primordial.physics.network import free_fall_time
from thermoemu.primordial.physics import compiled
from thermoemu.solvers.rosenbrock import SolverSettings, integrate
from thermoemu.primordial.validation import _dlog10

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

OPTIONS = [{}, {"continuum_escape": "slab", "thermalization": False},
           {"continuum_escape": "exponential", "k2": "case_a", "h2_escape": "thin"}]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "slab-nothermal", "exp-caseA-thin"])
@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_compiled_kernel_equals_vectorized_kernel(region, options):
    network = PrimordialNetwork(**options)
    n_H, x = region_states(region, 200, seed=70 + region)
    cell = network.cell_parameters(n_H)
    f_vec, J_vec = network.rhs_and_jacobian(x, cell)
    f_cmp, J_cmp = compiled.evaluate_cells(network, x, cell)
    size = np.abs(f_vec) + 1e-300
    assert np.max(np.abs(f_cmp - f_vec) / size) < 1e-11
    scale = np.abs(x)[None, :, :]
    dJ = np.abs(J_cmp - J_vec) * scale / (np.abs(f_vec)[:, None, :] + np.abs(J_vec) * scale + 1e-300)
    assert dJ.max() < 1e-11


@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_compiled_integration_matches_vectorized(network, region):
    n = 48 if region < 4 else 12
    n_H, x = region_states(region, n, seed=80 + region)
    cell = network.cell_parameters(n_H)
    dt = 10**0.5 * free_fall_time(n_H)
    vec = integrate(network, x, cell, dt, SolverSettings(backend="vectorized"))
    cmp = integrate(network, x, cell, dt, SolverSettings(backend="compiled"))
    assert vec.success.all() and cmp.success.all()
    d = _dlog10(cmp.x, vec.x).max(axis=0)
    # identical arithmetic up to the order of sums: most cells take the very same substeps; where
    # round-off moves a step-size decision the paths differ by about the tolerance
    assert np.median(d) < 1e-6, d
    assert d.max() < 5e-3, d
    # (region 4 takes thousands of substeps per cell, so a round-off decision is likelier there)
    assert np.mean(cmp.substeps == vec.substeps) >= (0.5 if region == 4 else 0.8)
    assert np.abs(cmp.substeps - vec.substeps).max() <= 0.05 * vec.substeps.max() + 2


def test_compiled_timescales_and_relative_change_match_vectorized(network):
    n_H, x = region_states(1, 32, seed=91)
    cell = network.cell_parameters(n_H)
    dt_max = 10**0.5 * free_fall_time(n_H)
    dt = dt_max * np.linspace(0.0, 1.0, 32)
    out = {b: integrate(network, x, cell, dt, SolverSettings(backend=b), timescale_eps=0.1,
                        timescale_horizon=dt_max) for b in ("vectorized", "compiled")}
    a, b = out["vectorized"], out["compiled"]
    assert a.success.all() and b.success.all()
    same = (a.substeps == b.substeps)
    assert same.mean() >= 0.8
    np.testing.assert_allclose(np.log10(b.tau[:, same]), np.log10(a.tau[:, same]), atol=1e-8)
    np.testing.assert_array_equal(a.tau_sign[:, same], b.tau_sign[:, same])
    capped_a = a.tau_lower == a.tau_upper
    np.testing.assert_array_equal(capped_a[:, same], (b.tau_lower == b.tau_upper)[:, same])
    rel = {b: integrate(network, x, cell, dt, SolverSettings(backend=b, step_control="relative_change"))
           for b in ("vectorized", "compiled")}
    assert rel["compiled"].success.all()
    assert np.median(_dlog10(rel["compiled"].x, rel["vectorized"].x).max(axis=0)) < 1e-8


def test_backend_choice_and_errors(network, exact_network):
    n_H, x = region_states(1, 4, seed=92)
    assert SolverSettings().resolved_backend(network, x) == "compiled"
    assert SolverSettings().resolved_backend(exact_network, x) == "vectorized"  # no table, no kernel
    assert SolverSettings(backend="vectorized").resolved_backend(network, x) == "vectorized"
    with pytest.raises(ValueError, match="backend must be one of"):
        SolverSettings(backend="gpu")
    with pytest.raises(ValueError, match="backend='compiled' cannot run here"):
        integrate(exact_network, x, exact_network.cell_parameters(n_H), 1e10, SolverSettings(backend="compiled"))


def test_stale_numba_cache_is_dropped(tmp_path):
    source = tmp_path / "kernel.py"
    source.write_text("a = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    index = cache / "compiled._integrate_cells-123.py311.nbi"
    index.write_text("index")
    compiled._drop_stale_cache([source], cache)          # no stamp yet: dropped, stamp written
    assert not index.exists() and (cache / "thermoemu-compiled.sha256").exists()
    index.write_text("index")
    compiled._drop_stale_cache([source], cache)          # unchanged sources: kept
    assert index.exists()
    source.write_text("a = 2\n")
    compiled._drop_stale_cache([source], cache)          # a source changed: dropped
    assert not index.exists()


def test_threads_give_the_same_result(network):
    n_H, x = region_states(1, 3 * 50, seed=93)
    cell = network.cell_parameters(n_H)
    dt = 0.1 * free_fall_time(n_H)
    seen = []
    one = integrate(network, x, cell, dt, SolverSettings(chunk_size=50))
    many = integrate(network, x, cell, dt, SolverSettings(chunk_size=50, threads=3),
                     progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(one.x, many.x)
    np.testing.assert_array_equal(one.substeps, many.substeps)
    assert sorted(seen) == [(50, 150), (100, 150), (150, 150)]
    with pytest.raises(ValueError, match="threads must be an integer >= 0"):
        SolverSettings(threads=-1)


def test_a_subclass_overriding_the_rhs_runs_vectorized():
    """The compiled kernel cannot see an override (here a constant heating term), so such a
    network says it has no kernel and the solver, and the per-cell scipy mode, use its methods."""
    from thermoemu.solvers.percell import integrate_per_cell

    class Heated(PrimordialNetwork):
        def _evaluate(self, x, cell, jacobian):
            f, J = super()._evaluate(x, cell, jacobian)
            f[6] += 1e-6  # K s^-1
            return f, J

    heated, plain = Heated(), PrimordialNetwork()
    n_H, x = region_states(1, 4, seed=94)
    dt = free_fall_time(n_H)
    assert heated.compiled_kernel() is None and not compiled.supports(heated, x)
    assert SolverSettings().resolved_backend(heated, x) == "vectorized"
    hot = integrate(heated, x, heated.cell_parameters(n_H), dt)
    cold = integrate(plain, x, plain.cell_parameters(n_H), dt)
    assert (hot.x[6] > 1.2 * cold.x[6]).all()  # 1e-6 K/s over t_ff ~ 1e12-1e14 s: hotter everywhere
    ref = integrate_per_cell(heated, x[:, :1], heated.cell_parameters(n_H[:1]), dt[:1], method="BDF", rtol=1e-6)
    assert abs(np.log10(ref.x[6, 0] / hot.x[6, 0])) < 0.01


@pytest.mark.parametrize("backend", ["compiled", "vectorized"])
def test_a_non_finite_start_is_flagged_at_once(network, backend):
    n_H, x = region_states(1, 5, seed=95)
    x[6, 0] = np.nan
    x[6, 1] = 0.0
    x[6, 2] = -5.0
    x[3, 3] = np.nan
    res = integrate(network, x, network.cell_parameters(n_H), 1e10, SolverSettings(backend=backend))
    np.testing.assert_array_equal(res.status, [3, 3, 3, 3, 0])
    np.testing.assert_array_equal(res.success, [False, False, False, False, True])
    assert (res.rejected[:4] <= 2).all()  # not spun to max_substeps


def test_the_cache_digest_covers_every_included_source():
    names = {p.name for p in compiled._sources()}
    assert {"compiled.py", "kernel.py", "layout.py", "rates.py", "thermo.py", "constants.py"} <= names
