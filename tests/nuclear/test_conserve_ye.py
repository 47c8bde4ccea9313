"""Ye through the clip (issue 27; docs/nuclear.md, "Ye through the clip"): a physics step's answer clipped at zero
and renormalized is given back the Ye of its unclipped result (``restore_ye``; ``physics.conserve_ye``)."""

import json
from pathlib import Path

import numpy as np
import pytest

from thermoemu.core.artifacts import ArtifactError
from thermoemu.core.emulator import resolve_model
from thermoemu.nuclear.emulator import default_nnn_dir
from thermoemu.nuclear.nnn import load_nnn_set
from thermoemu.nuclear.physics_first import PhysicsFirstNNN, parse_conserve_ye, physics_settings
from thermoemu.nuclear.physics_step import restore_ye

#: Four successful states of the seed test catalog (31, 157, 723, 972) at 1e-3 s, with the mesa80 burner's end
#: composition: Ye moves by 8e-10..1e-7 there, and the accurate set lost to persistence on Ye before conserve_ye
#: (the step's result, 5e-8..2e-5 of it clipped below zero, from the retry or the first step).
STATES = Path(__file__).resolve().parent / "data" / "ye_clip_states.json"


def test_restore_ye_conserves_mass_and_ye_and_keeps_zeros():
    rng = np.random.default_rng(3)
    q = np.array([0.0, 1.0, 0.5, 0.5, 26 / 56, 28 / 56, 13 / 27, 14 / 30])
    X = rng.dirichlet(np.ones(q.size), size=50)
    X[:, 0] -= 1e-7   # free neutrons and protons a little below zero, as a step leaves them
    X[:10, 1] = -3e-7
    ye = (X @ q) / X.sum(axis=1)
    Xc = np.maximum(X, 0.0)
    Xc /= Xc.sum(axis=1, keepdims=True)
    assert np.abs(Xc @ q - ye).max() > 1e-9   # the plain clip moves Ye
    Xr = restore_ye(Xc, ye, q)
    assert np.abs(Xr.sum(axis=1) - 1.0).max() <= 1e-12 and np.abs(Xr @ q - ye).max() <= 1e-12
    assert (Xr >= 0).all() and ((Xr == 0) == (Xc == 0)).all()
    assert np.abs(Xr - Xc).sum(axis=1).max() < 1e-5   # a correction of the clip's size
    # a composition of one Z/A cannot take another Ye: left as given (as are non-finite targets)
    flat = np.array([[0.5, 0.5, 0.0]])
    assert np.array_equal(restore_ye(flat, 0.49, np.array([0.5, 0.5, 0.0])), flat)
    assert np.array_equal(restore_ye(Xc[:2], np.array([np.nan, ye[1]]), q)[0], Xc[0])


def test_conserve_ye_read_back_and_refused():
    assert parse_conserve_ye(True) is True and parse_conserve_ye(False) is False and parse_conserve_ye(0) is False
    for bad in ("yes", 2, 0.5, None):
        with pytest.raises(ValueError, match=rf"conserve_ye = {bad!r}: true or false"):
            parse_conserve_ye(bad)
    with pytest.raises(ValueError, match=r"conserve_ye = 'true': true or false"):
        PhysicsFirstNNN(None, 1e-3, "mesa80", True, conserve_ye="true")
    entry = {"physics": {"substeps": 8, "ratio": 4.0, "trust": "inf", "conserve_ye": "yes"}}
    with pytest.raises(ArtifactError, match=r"here: the physics record .*conserve_ye = 'yes': true or false"):
        physics_settings(entry, "here")
    entry["physics"]["conserve_ye"] = True
    assert physics_settings(entry, "here")["conserve_ye"] is True
    del entry["physics"]["conserve_ye"]
    assert physics_settings(entry, "here")["conserve_ye"] is False   # sets recorded before: the plain clip


def test_shipped_sets_load_with_their_clip():
    accurate = load_nnn_set(resolve_model("nnn-mesa80-accurate", default_nnn_dir()))[0]
    fast = load_nnn_set(resolve_model("default", default_nnn_dir()))[0]
    assert sorted(accurate) == sorted(fast) == [1e-3, 0.1, 10.0]
    assert all(m.conserve_ye for m in accurate.values()) and all(m.conserve_ye for m in fast.values())


@pytest.mark.slow
def test_accurate_set_keeps_the_steps_ye_on_real_states():
    """On the four states the accurate set answers with its step, clipped 5e-8..2e-5: sum X = 1 and Ye equal to
    the unclipped result's to 1e-12 (the plain clip moved Ye by 4e-9..3.5e-7, 3-40x the true change), and now
    closer to the reference Ye than persistence; the composition as close as before (within 1 % of its error)."""
    d = json.loads(STATES.read_text())
    T, rho = np.array(d["temperature"]), np.array(d["density"])
    X0, X_ref = np.array(d["initial_mass_fraction"]), np.array(d["mass_fraction"])
    model = load_nnn_set(resolve_model("nnn-mesa80-accurate", default_nnn_dir()))[0][1e-3]
    assert list(model.isotopes) == d["isotopes"] and model.conserve_ye
    net = model.kernel.network
    q = np.asarray(net.Z, float) / np.asarray(net.A, float)
    r = model.step(T, rho, X0)
    X, _, _, use_net = model.predict(T, rho, X0, return_source=True)
    assert not use_net.any() and (r["negative"] > 1e-8).all()
    assert np.abs(X.sum(axis=1) - 1.0).max() <= 1e-12 and np.abs(X @ q - r["ye"]).max() <= 1e-12
    assert (X >= 0).all()
    ye0, ye_ref = X0 @ q, X_ref @ q
    assert (np.abs(X @ q - ye_ref) < np.abs(ye0 - ye_ref)).all()
    # the same set with the plain clip: the step's own answer, Ye off by more than persistence
    plain = PhysicsFirstNNN(model.net, 1e-3, "mesa80", True, substeps=8, ratio=4.0, trust=np.inf, abort=1e-6,
                            screen_rtol=1e-8, retry=model.retry, max_negative=1e-3, isotopes=model.isotopes)
    plain._kernel = model.kernel
    X_old = plain.predict(T, rho, X0)[0]
    assert np.array_equal(X_old, r["mass_fraction"])
    assert (np.abs(X_old @ q - ye_ref) >= np.abs(ye0 - ye_ref)).all()
    err, err_old = np.abs(X - X_ref).sum(axis=1), np.abs(X_old - X_ref).sum(axis=1)
    assert (np.abs(err - err_old) < 0.01 * err_old).all(), (err, err_old)
