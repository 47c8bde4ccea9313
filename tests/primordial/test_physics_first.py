"""Physics-first emulators: trace-species closures, the physics step (numpy and compiled), and
residual models (real training on a small real catalog, artifacts, the plain update)."""

import copy

import numpy as np
import pytest
import scipy.linalg

from thermoemu.core.catalog import build_catalog
from thermoemu.core.spec import load_spec, validate_spec
from thermoemu.primordial.closures import _expm_2x2, close_trace_species, trace_equilibrium
from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import collapse_track_states
from thermoemu.primordial.models import NetConfig, TrainSettings, train_region
from thermoemu.primordial.physics.network import conservation_residual, free_fall_time
from thermoemu.primordial.physics_step import physics_step, substep_fractions
from thermoemu.primordial.reference import ReferenceStepper

TINY_RESIDUAL = NetConfig(kind="residual", layers=2, width=32, n_inputs=17, n_outputs=7, substeps=4,
                          uniform_substeps=2)


@pytest.fixture(scope="module")
def track():
    """300 snapshot-like states from the reference collapse track, and reference steps of 1e-2 t_ff."""
    n_H, x0 = collapse_track_states(300, seed=5)
    dt = 1e-2 * free_fall_time(n_H)
    return n_H, x0, dt, ReferenceStepper().step_arrays({"n_H": n_H}, x0, dt).x


@pytest.fixture(scope="module")
def residual_model(dask_client, tmp_path_factory):
    raw = copy.deepcopy(load_spec("popiii-r1").raw)
    raw.update(name="pf-test-r1", samples=600, shard_size=200, seed=12)
    spec = validate_spec(raw)
    catalog = tmp_path_factory.mktemp("catalog")
    build_catalog(spec, catalog, client=dask_client, progress=False)
    out = tmp_path_factory.mktemp("model")
    model = train_region(spec, catalog, out, predictor=TINY_RESIDUAL, timescale=None,
                         settings=TrainSettings(max_epochs=200, batch_size=64, seed=3, threads=1), progress=False)
    return out, model


# ----------------------------------------------------------------------------- closures
@pytest.mark.parametrize("seed", range(4))
def test_closed_form_matrix_exponential_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    M = -np.abs(rng.normal(size=(2, 2))) * 10 ** rng.uniform(-3, 3)
    M[0, 1], M[1, 0] = abs(M[0, 1]), abs(M[1, 0]) * rng.uniform(0, 1)  # destruction on the diagonal
    t = 10 ** rng.uniform(-3, 1)
    ours = np.array(_expm_2x2(*(np.array([v]) for v in M.ravel()), t)).reshape(2, 2)
    np.testing.assert_allclose(ours, scipy.linalg.expm(M * t), rtol=1e-9, atol=1e-14)


def test_trace_closure_reproduces_the_reference_trace_species(network, track):
    """H- and H2+ from their balance at the reference end state: within 1 % of the reference's own."""
    n_H, x0, dt, x_ref = track
    closed = close_trace_species(network, n_H, x_ref, x0, dt)
    for i in (4, 5):
        assert np.quantile(np.abs(closed[i] / x_ref[i] - 1), 0.99) < 0.01
    np.testing.assert_array_equal(closed[[0, 1, 2, 3, 6]], x_ref[[0, 1, 2, 3, 6]])


def test_trace_closure_keeps_the_start_values_at_zero_dt_and_reaches_balance_at_long_dt(network, track):
    n_H, x0, _, x_ref = track
    at_zero = close_trace_species(network, n_H, x_ref, x0, 0.0)
    np.testing.assert_allclose(at_zero[4:6], x0[4:6], rtol=1e-12)
    y_star, J = trace_equilibrium(network, n_H, x_ref)
    long = close_trace_species(network, n_H, x_ref, x0, 1e6 / np.abs(J[0, 0]).min())
    np.testing.assert_allclose(long[4:6], y_star, rtol=1e-9)


# ----------------------------------------------------------------------------- the physics step
@pytest.mark.parametrize("uniform", [1, 4])
def test_compiled_physics_step_equals_numpy(network, track, uniform):
    n_H, x0, dt, _ = track
    for f in (1.0, 100.0):  # 1e-2 and 1 t_ff
        a, ua, ea = physics_step(network, n_H, x0, f * dt, 8, uniform=uniform, compiled=False, return_substeps=True,
                                 return_error=True)
        b, ub, eb = physics_step(network, n_H, x0, f * dt, 8, uniform=uniform, compiled=True, return_substeps=True,
                                 return_error=True)
        np.testing.assert_array_equal(ua, ub)
        np.testing.assert_allclose(a, b, rtol=1e-9)
        np.testing.assert_allclose(ea, eb, rtol=1e-6)


def test_local_error_estimate_bounds_the_physics_step_error_where_it_trusts_it(network, track):
    """Where the estimated local error is below PHYSICS_TRUST (no net is applied there), the step is
    within 1 % of the reference in every slow variable; and the estimate shrinks as dt does."""
    from thermoemu.primordial.physics_step import PHYSICS_TRUST

    n_H, x0, dt, x_ref = track
    x, err = physics_step(network, n_H, x0, dt, 8, return_error=True)
    trusted = err < PHYSICS_TRUST
    assert trusted.mean() > 0.5
    slow = [0, 1, 2, 3, 6]
    assert np.abs(x[slow][:, trusted] / x_ref[slow][:, trusted] - 1).max() < 0.01
    _, err_short = physics_step(network, n_H, x0, dt / 100, 8, return_error=True)
    assert np.median(err_short[trusted]) < np.median(err[trusted]) / 10


@pytest.mark.parametrize("compiled", [False, True])
def test_physics_step_alone_follows_the_reference_near_the_collapse_track(network, track, compiled):
    """At 1e-2 t_ff the step is gentle everywhere (one substep) and within 5 % of the reference in
    >= 99 % of cells for every variable, the trace species included."""
    n_H, x0, dt, x_ref = track
    x, used = physics_step(network, n_H, x0, dt, 8, compiled=compiled, return_substeps=True)
    assert (used == 1).all()
    within = (np.abs(x / x_ref - 1) < 0.05).mean(axis=1)
    assert within.min() >= 0.99, within
    assert np.abs(conservation_residual(x[:6])).max() < 1e-12


def test_physics_step_changes_nothing_at_zero_dt(network, track):
    """dt = 0: the trace species keep their values; the others move only by the conservation
    projection after the trace species are put at their balance (~1e-12 absolute)."""
    n_H, x0, _, _ = track
    x = physics_step(network, n_H, x0, 0.0)
    np.testing.assert_allclose(x[4:6], x0[4:6], rtol=1e-12)
    np.testing.assert_allclose(x[[0, 1, 2, 3, 6]], x0[[0, 1, 2, 3, 6]], rtol=1e-5, atol=1e-11)


def test_substeps_grow_geometrically_and_bad_counts_are_refused(network, track):
    w = substep_fractions(4)
    np.testing.assert_allclose(w, np.array([1, 2, 4, 8]) / 15)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="substeps"):
            physics_step(network, track[0], track[1], track[2], bad)


def test_uniform_substeps_end_the_step_with_equal_ones(network, track):
    np.testing.assert_array_equal(substep_fractions(6, 1), substep_fractions(6))
    np.testing.assert_allclose(substep_fractions(6, 3), np.array([0.125, 0.25, 0.5, 1, 1, 1]) / 3.875)
    np.testing.assert_allclose(substep_fractions(4, 4), np.full(4, 0.25))
    for bad in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match="uniform substeps"):
            physics_step(network, track[0], track[1], track[2], 6, uniform=bad)
    with pytest.raises(ValueError, match="uniform_substeps"):
        NetConfig(kind="residual", substeps=4, uniform_substeps=5)


@pytest.mark.parametrize("fraction", [1e-3, 0.1])
def test_equal_final_substeps_bring_the_physics_step_closer_to_the_reference(network, fraction):
    """Random region-1 states (far from equilibrium): with the same 32 substeps, ending on 16 equal ones
    puts the temperature within 5 % of the reference in clearly more cells than geometric ones, whose
    last substep is dt / 2 (measured: 0.44 -> 0.52 at 0.1 t_ff, 0.55 -> 0.73 at 1e-3 t_ff)."""
    from thermoemu.primordial.sampling import sample_region

    n_H, x0 = sample_region(1, 300, np.random.default_rng(4))
    dt = fraction * free_fall_time(n_H)
    ref = ReferenceStepper().step_arrays({"n_H": n_H}, x0, dt).x
    with np.errstate(all="ignore"):
        within = {u: (np.abs(physics_step(network, n_H, x0, dt, 32, uniform=u)[6] / ref[6] - 1) < 0.05).mean()
                  for u in (1, 16)}
    assert within[16] > within[1] + 0.05, within


# ----------------------------------------------------------------------------- residual models
def test_residual_model_learns_round_trips_and_takes_the_plain_update(residual_model, track):
    out, model = residual_model
    emulator = Emulator(out)
    assert emulator.physics_first and emulator.default_update == "plain" and emulator.update == "plain"
    reloaded = emulator.regions[1]
    assert reloaded.timescale_net is None and reloaded.network is emulator.network
    n_H, x0, dt, _ = track
    inside = (n_H > 1e-2) & (n_H < 1e2)  # region 1
    np.testing.assert_allclose(reloaded.predict_log(n_H[inside], x0[:, inside], dt[inside]),
                               model.predict_log(n_H[inside], x0[:, inside], dt[inside]), rtol=1e-6, atol=1e-9)
    res = emulator.step_arrays({"n_H": n_H[inside]}, x0[:, inside], dt[inside])
    assert res.success.all()
    assert np.abs(conservation_residual(res.x[:6])).max() < 1e-12
    with pytest.raises(ValueError, match="physics-first.*update='plain'"):
        emulator.with_options(update="timescale")
    with pytest.raises(ValueError, match="physics-first"):
        Emulator(out, update="tangent")


def test_residual_training_beats_the_physics_step_alone_on_its_validation_split(residual_model):
    """The validation loss (mean |error| in dex, summed over variables) of physics step plus net is
    below that of the physics step and closures alone (zero correction), recorded in the manifest."""
    import json
    out, _ = residual_model
    entry = json.loads((out / "manifest.json").read_text())["regions"]["1"]
    training = entry["training"]
    assert training["predictor_best_validation_loss"] < 0.9 * training["physics_only_validation_loss"]
    assert entry["predictor"]["config"]["kind"] == "residual" and entry["timescale"] is None


def test_shipped_sets_are_found_by_name_and_folders_by_path(tmp_path, monkeypatch):
    from thermoemu.primordial.models.artifact import default_model_dir, resolve_model_dir

    assert resolve_model_dir("default") == default_model_dir()
    assert resolve_model_dir("os25-deeponet") == default_model_dir().parent / "os25-deeponet"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "os25-deeponet").mkdir()  # a folder of that name here wins over the shipped set
    assert resolve_model_dir("os25-deeponet") == tmp_path.joinpath("os25-deeponet").relative_to(tmp_path)
    assert resolve_model_dir(str(tmp_path / "mine")) == tmp_path / "mine"


@pytest.mark.parametrize("region", range(5))
def test_default_emulator_changes_nothing_at_zero_or_vanishing_dt(region):
    """dt = 0 and dt = 1e-30 s leave every variable as it was (to round-off), also for random states
    whose trace species are far from their balance."""
    from conftest import region_states

    n_H, x = region_states(region, 100, seed=40 + region)
    emulator = Emulator("default")
    for dt in (0.0, 1e-30):
        res = emulator.step_arrays(n_H, x, dt)
        assert res.success.all()
        np.testing.assert_allclose(res.x, x, rtol=1e-12, atol=0)


def test_physics_step_constants_are_recorded_and_a_mismatch_refused(residual_model, tmp_path):
    import json
    import shutil

    from thermoemu.core.artifacts import ArtifactError
    from thermoemu.primordial.physics_step import physics_constants

    out, _ = residual_model
    entry = json.loads((out / "manifest.json").read_text())["regions"]["1"]
    assert entry["physics_step"] == physics_constants()
    other = tmp_path / "other"
    shutil.copytree(out, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["regions"]["1"]["physics_step"]["PHYSICS_TRUST"] = 0.001
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="PHYSICS_TRUST = 0.001"):
        Emulator(other)


def test_a_region_records_its_own_physics_trust(residual_model, track, tmp_path):
    """A region's physics_trust is saved, read back and used: at infinity the net is never applied (the
    physics step with the trace closure is the answer), at the default it corrects some cells; a negative
    value in the manifest is refused, naming the region; the shipped set records the default everywhere."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from thermoemu.core.artifacts import ArtifactError
    from thermoemu.primordial.physics_step import PHYSICS_TRUST

    out, model = residual_model
    assert json.loads((out / "manifest.json").read_text())["regions"]["1"]["physics_trust"] == PHYSICS_TRUST
    n_H, x0, dt, _ = track
    inside = (n_H > 1e-2) & (n_H < 1e2)
    n_H, x0, dt = n_H[inside], x0[:, inside], 100 * dt[inside]   # 1 t_ff: many cells need the net
    x_base, _, error = model.physics_base(n_H, x0, dt)
    assert (error >= PHYSICS_TRUST).any()
    other = tmp_path / "trusting"
    shutil.copytree(out, other)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, str(root / "scripts" / "set_physics_trust.py"), str(other), "1", "inf"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    trusting = Emulator(other).regions[1]
    assert trusting.physics_trust == np.inf
    from thermoemu.primordial.models.features import log_state
    np.testing.assert_allclose(trusting.predict_log(n_H, x0, dt), log_state(x_base), rtol=1e-12)
    assert not np.allclose(Emulator(out).regions[1].predict_log(n_H, x0, dt), trusting.predict_log(n_H, x0, dt))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["regions"]["1"]["physics_trust"] = -1.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="region 1 physics_trust = -1.0"):
        Emulator(other)
    assert all(m.physics_trust == PHYSICS_TRUST for m in Emulator("default").regions.values())


# ----------------------------------------------------------------------------- backward Euler (region 4)
@pytest.fixture(scope="module")
def dense_track():
    """200 snapshot-like states of the collapse track at 3e15..8e17 cm^-3 (region 4), steps of 1e-2 t_ff."""
    n_H, x0 = collapse_track_states(200, log_n_range=(15.5, 17.9), seed=9)
    return n_H, x0, 1e-2 * free_fall_time(n_H)


def test_compiled_backward_euler_solves_the_implicit_equation(network, dense_track):
    """Where Newton converges, x1 - x0 - dt f(x1) is below 1e-4 of x1 (slow variables above 1e-12) and the
    root is the numpy Newton's (update_rules.backward_euler_step) to 1e-6 dex. From x0 it converges on a
    third or more of these perturbed states (the unscaled Jacobian's condition number reaches 1e20),
    from the physics step with 32 substeps on most."""
    from thermoemu.primordial.physics.compiled import backward_euler_cells
    from thermoemu.primordial.update_rules import backward_euler_step

    n_H, x0, dt = dense_track
    cell = network.cell_parameters(n_H)
    x1, converged = backward_euler_cells(network, x0, cell, dt)
    assert converged.mean() > 0.3
    slow = [0, 1, 2, 3, 6]
    guessed, from_guess = backward_euler_cells(network, x0, cell, dt, guess=physics_step(network, n_H, x0, dt, 32))
    assert from_guess.mean() > 0.8
    for x, ok in ((x1, converged), (guessed, from_guess)):
        residual = np.abs(x - x0 - dt * network.rhs(x, cell))[slow] / np.maximum(np.abs(x[slow]), np.abs(x0[slow]))
        tested = np.maximum(x0[slow], x[slow]) > 1e-12
        assert np.where(tested, residual, 0.0)[:, ok].max() < 1e-4  # round-off of dt f: cond(I - dt J) to 1e20
    with pytest.raises(ValueError, match="guess has shape"):
        backward_euler_cells(network, x0, cell, dt, guess=x0[:, :3])
    xb, newton = backward_euler_step(network, n_H, x0, dt)
    both = converged & newton
    assert both.sum() > 20
    dex = np.abs(np.log10(np.maximum(x1[slow][:, both], 1e-40) / np.maximum(xb[slow][:, both], 1e-40)))
    tested = np.maximum(x0[slow], x1[slow]) > 1e-12
    assert np.where(tested[:, both], dex, 0.0).max() < 1e-6


def test_backward_euler_answer_follows_the_reference_on_the_dense_collapse_track(network, dense_track):
    """Along the track above 3e15 cm^-3 at 1e-2 t_ff the backward-Euler answer is the reference solver's
    step to 1e-4 dex in T (the linearly implicit physics step alone, 32 substeps, is off by 1e-2 there),
    and zero dt changes nothing."""
    from thermoemu.primordial.physics_step import backward_euler_answer

    n_H, x0, dt = dense_track
    x1, answer = backward_euler_answer(network, n_H, x0, dt, 0.2)
    assert answer.mean() > 0.3
    ref = ReferenceStepper().step_arrays({"n_H": n_H}, x0, dt).x
    dT = np.abs(np.log10(x1[6, answer] / ref[6, answer]))
    assert dT.max() < 1e-4
    lie = physics_step(network, n_H, x0, dt, 32)
    assert np.abs(np.log10(lie[6, answer] / ref[6, answer])).max() > 30 * dT.max()
    same, at_rest = backward_euler_answer(network, n_H, x0, 0.0, 0.2)
    assert at_rest.all()
    np.testing.assert_allclose(same[[0, 1, 2, 3, 6]], x0[[0, 1, 2, 3, 6]], rtol=1e-12)
    with pytest.raises(ValueError, match="max_change = 0"):
        backward_euler_answer(network, n_H, x0, dt, 0)
    # Newton is tried only where the physics step changes nothing by more than BACKWARD_EULER_CANDIDATE x 0.2
    far = x0.copy()
    far[6, ::2] *= 3.0
    x2, tried = backward_euler_answer(network, n_H, x0, dt, 0.2, physics=far)
    assert not tried[::2].any()
    np.testing.assert_array_equal(tried[1::2], answer[1::2])
    np.testing.assert_allclose(x2[:, 1::2], x1[:, 1::2], rtol=1e-12)


def test_a_region_records_its_backward_euler_change(residual_model, track, tmp_path):
    """backward_euler_change is saved by the script, read back and used: the cells where backward Euler
    answers get its state, the others the net's; a bad value is refused naming the region; the shipped
    set records 0.2 for regions 3 and 4 only."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from thermoemu.core.artifacts import ArtifactError
    from thermoemu.primordial.models.features import log_state
    from thermoemu.primordial.physics_step import PHYSICS_TRUST, backward_euler_answer

    out, model = residual_model
    n_H, x0, dt, _ = track
    inside = (n_H > 1e-2) & (n_H < 1e2)
    n_H, x0, dt = n_H[inside], x0[:, inside], 100 * dt[inside]
    other = tmp_path / "backward-euler"
    shutil.copytree(out, other)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, str(root / "scripts" / "set_physics_trust.py"), str(other), "1",
                          str(PHYSICS_TRUST), "--backward-euler", "0.3"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    be_model = Emulator(other).regions[1]
    assert be_model.backward_euler_change == 0.3 and model.backward_euler_change is None
    _, _, error = model.physics_base(n_H, x0, dt)
    corrected = error >= PHYSICS_TRUST
    x_be, answer = backward_euler_answer(model.network, n_H, x0, dt, 0.3)
    answered = corrected & answer
    assert answered.any() and (corrected & ~answer).any()
    new, old = be_model.predict_log(n_H, x0, dt), model.predict_log(n_H, x0, dt)
    np.testing.assert_allclose(new[answered], log_state(x_be[:, answered]), rtol=1e-12)
    np.testing.assert_array_equal(new[~answered], old[~answered])
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["regions"]["1"]["backward_euler_change"] = -0.1
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="region 1 backward_euler_change = -0.1"):
        Emulator(other)
    shipped = Emulator("default").regions
    assert shipped[3].backward_euler_change == shipped[4].backward_euler_change == 0.2
    assert all(shipped[r].backward_euler_change is None for r in range(3))
