"""Physics-first NNN sets (issue 27): the network's own physics step where it is good, the net elsewhere.

Per cell and dt, :func:`thermoemu.nuclear.physics_step.physics_step` advances the composition with a
few linearly implicit substeps of the reference network and estimates its own error. Where that
estimate is below the set's ``trust`` [mass fraction] the step is the answer (composition, Ye, e_nuc
and eps_nu); elsewhere, or where the step fails, the NNN of the set answers. ``trust`` is chosen per
dt on the validation splits of the training catalogs (:func:`choose_trust`), among
:data:`TRUST_CANDIDATES`, including 0 (the net everywhere) and infinity (the step everywhere).

The step needs the network's compiled kernel (:func:`thermoemu.nuclear.network.load_burner_kernel`),
loaded on first use. A set is made physics-first by recording ``physics`` = {substeps, ratio, trust}
in its manifest entries (:func:`attach_physics`); :func:`thermoemu.nuclear.nnn.load_nnn_set` then
returns :class:`PhysicsFirstNNN` models, which predict as the plain ones do.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.artifacts import MANIFEST
from ..core.files import write_json_atomic
from .physics_step import DEFAULT_RATIO, DEFAULT_ROS2_MAX_STEPS, DEFAULT_SUBSTEPS, physics_step, restore_ye

__all__ = ["PhysicsFirstNNN", "attach_physics", "choose_trust", "normalize_retry", "parse_abort", "parse_conserve_ye",
           "parse_max_negative", "parse_retry", "TRUST_CANDIDATES"]

#: Thresholds of the step's error estimate [mass fraction] a set may choose between.
TRUST_CANDIDATES = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, math.inf)
#: A step result whose mass fractions fell below zero by more than this in sum is not used (the net answers).
MAX_NEGATIVE = 1e-6


def physics_settings(entry, where):
    """The checked ``physics`` record of a manifest entry as keyword arguments of :class:`PhysicsFirstNNN`:
    substeps, ratio, trust, retry (None or :func:`normalize_retry`'s dict) and abort (0 when not recorded);
    raises ArtifactError naming ``where`` when a field is missing or out of range."""
    from ..core.artifacts import ArtifactError

    physics = entry.get("physics")
    try:
        substeps, ratio, trust = physics["substeps"], float(physics["ratio"]), float(physics["trust"])
        abort = float(physics.get("abort", 0.0))
        screen_rtol = float(physics.get("screening_rtol", 0.0))
        retry = normalize_retry(physics.get("retry"))
        max_negative = parse_max_negative(physics.get("max_negative", MAX_NEGATIVE))
        conserve_ye = parse_conserve_ye(physics.get("conserve_ye", False))
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise ArtifactError(f"{where}: the physics record {physics!r} needs substeps, ratio and trust, a retry "
                            f"substeps and ratio (or method 'ros2' and tol), abort must be >= 0, max_negative in [0, "
                            f"{MAX_NEGATIVE_LIMIT:g}] and conserve_ye true or false ({err})") from None
    steps = [(substeps, ratio)]
    if retry is not None and retry["method"] == "euler":
        steps.append((retry["substeps"], retry["ratio"]))
    for n, r in steps:
        if not (isinstance(n, int) and n >= 1 and r >= 1.0 and trust >= 0.0):
            raise ArtifactError(f"{where}: physics substeps = {n!r} (an integer >= 1), ratio = {r!r} (>= 1) "
                                f"and trust = {trust!r} (>= 0 or 'inf') are out of range")
    if not 0.0 <= abort < 1.0:
        raise ArtifactError(f"{where}: physics abort = {abort!r} is out of range [0, 1)")
    if not 0.0 <= screen_rtol < 1e-3:
        raise ArtifactError(f"{where}: physics screening_rtol = {screen_rtol!r} is out of range [0, 1e-3)")
    return {"substeps": substeps, "ratio": ratio, "trust": trust, "retry": retry, "abort": abort,
            "screen_rtol": screen_rtol, "max_negative": max_negative, "conserve_ye": conserve_ye}


def normalize_retry(retry):
    """A retry step as a dict: ``(substeps, ratio)`` or {"substeps", "ratio"} -> {"method": "euler", "substeps",
    "ratio"}; {"method": "ros2", "tol"[, "max_steps"]} -> that, checked; None -> None. Raises ValueError naming
    the value and the allowed range."""
    if retry is None:
        return None
    if not isinstance(retry, dict):
        n, r = retry
        retry = {"substeps": n, "ratio": r}
    method = retry.get("method", "euler")
    if method == "euler":
        n, r = retry["substeps"], float(retry["ratio"])
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if not (isinstance(n, (int, np.integer)) and n >= 1 and r >= 1.0):
            raise ValueError(f"physics retry {retry!r}: substeps must be an integer >= 1 and the ratio >= 1")
        return {"method": "euler", "substeps": int(n), "ratio": r}
    if method == "ros2":
        tol, max_steps = float(retry["tol"]), retry.get("max_steps", DEFAULT_ROS2_MAX_STEPS)
        if not (0.0 < tol < 1.0 and isinstance(max_steps, (int, np.integer)) and max_steps >= 1):
            raise ValueError(f"physics retry {retry!r}: ROS2 tol must be in (0, 1) [mass fraction per step] and "
                             f"max_steps an integer >= 1")
        out = {"method": "ros2", "tol": tol, "max_steps": int(max_steps)}
        if "redo_rtol" in retry or "redo_floor" in retry:
            try:
                rtol, floor = float(retry["redo_rtol"]), float(retry["redo_floor"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"physics retry {retry!r}: the ROS2 redo needs both redo_rtol (in (0, 1]) and "
                                 f"redo_floor (in (0, tol = {tol:g}])") from None
            if not 0.0 < rtol <= 1.0:
                raise ValueError(f"physics retry redo_rtol = {retry['redo_rtol']!r} is out of range (0, 1] (the redo's "
                                 f"tol over the first ROS2 result's change in mass fraction)")
            if not 0.0 < floor <= tol:
                raise ValueError(f"physics retry redo_floor = {retry['redo_floor']!r} is out of range (0, tol = "
                                 f"{tol:g}] [mass fraction per step]")
            out.update(redo_rtol=rtol, redo_floor=floor)
        return out
    raise ValueError(f"physics retry method = {method!r}: one of 'euler', 'ros2'")


def parse_retry(text):
    """``"32:2"`` -> the linearly implicit Euler retry with 32 substeps growing by 2; ``"ros2:0.01"`` -> ROS2
    with adaptive steps at a local error of 0.01 per step; ``"ros2:0.01:0.01:1e-4"`` -> the same with its redo
    (``redo_rtol`` 0.01, ``redo_floor`` 1e-4; :class:`PhysicsFirstNNN`); None or "" -> None (as
    :func:`normalize_retry`)."""
    if not text:
        return None
    try:
        parts = str(text).split(":")
        if parts[0].strip().lower() == "ros2" and len(parts) in (2, 4):
            spec = {"method": "ros2", "tol": float(parts[1])}
            if len(parts) == 4:
                spec.update(redo_rtol=float(parts[2]), redo_floor=float(parts[3]))
        else:
            a, b = parts
            spec = {"substeps": int(a), "ratio": float(b)}
    except ValueError:
        raise ValueError(f"physics retry = {text!r}: write SUBSTEPS:RATIO (e.g. 32:2), ros2:TOL (e.g. ros2:0.01) or "
                         f"ros2:TOL:REDO_RTOL:REDO_FLOOR (e.g. ros2:0.01:0.01:1e-4)") from None
    try:
        return normalize_retry(spec)
    except ValueError as err:
        raise ValueError(f"physics retry = {text!r}: {err}") from None


def parse_abort(value):
    """The first step's abort threshold [mass fraction below zero after a substep]: a float in [0, 1); 0: off."""
    try:
        abort = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"physics abort = {value!r}: a mass fraction in [0, 1) (0: never abort)") from None
    if not 0.0 <= abort < 1.0:
        raise ValueError(f"physics abort = {value!r} is out of range: a mass fraction in [0, 1) (0: never abort)")
    return abort


def retry_record(retry):
    """A normalized retry as the manifest records it: {"substeps", "ratio"} for the Euler step (the record
    of sets shipped before the ROS2 option), {"method": "ros2", "tol", "max_steps"} for ROS2."""
    if retry["method"] == "euler":
        return {"substeps": int(retry["substeps"]), "ratio": float(retry["ratio"])}
    return dict(retry)


def _usable(r, max_negative=MAX_NEGATIVE):
    """Cells where a physics-step result can be used: finite, in the rate tables, at most ``max_negative``
    clipped."""
    return ((r["status"] == 0) & np.isfinite(r["mass_fraction"]).all(axis=1) & np.isfinite(r["e_nuc"])
            & np.isfinite(r["eps_nu"]) & (r["negative"] <= max_negative))


#: The largest ``max_negative`` a set may record [mass fraction clipped at the end of a step].
MAX_NEGATIVE_LIMIT = 1e-2


def parse_max_negative(value):
    """The mass fraction below zero (clipped) up to which a step's result answers: a float in [0, 1e-2]."""
    try:
        limit = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"physics max_negative = {value!r}: a mass fraction in [0, {MAX_NEGATIVE_LIMIT:g}]") from None
    if not 0.0 <= limit <= MAX_NEGATIVE_LIMIT:
        raise ValueError(f"physics max_negative = {value!r} is out of range: a mass fraction in [0, "
                         f"{MAX_NEGATIVE_LIMIT:g}] (the default {MAX_NEGATIVE:g})")
    return limit


def parse_conserve_ye(value):
    """Whether a step's answer keeps the Ye of its unclipped result (:func:`restore_ye`): true or false (a JSON
    boolean; also 0 / 1)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"physics conserve_ye = {value!r}: true or false (give the step's answer the Ye of its unclipped "
                     f"result)")


class PhysicsFirstNNN:
    """An NNN behind the physics step: ``predict(T, rho, X0)`` as :meth:`NNN.predict`.

    Parameters
    ----------
    net : thermoemu.nuclear.nnn.NNN
    dt : float
        The step [s] the net was trained for.
    network, screening : str, bool
        The reference network the set was trained on.
    substeps, ratio : int, float
        The physics step's geometric substeps.
    trust : float
        Error-estimate threshold [mass fraction] below which the step answers.
    retry : (int, float) or dict, optional
        (substeps, ratio) of a second, finer step on the cells whose first step is not usable (it
        overshot: fresh mixtures' first microseconds), or {"method": "ros2", "tol": ...} (adaptive ROS2;
        :func:`normalize_retry`); where that one is not usable either, the net answers. A ROS2 retry with
        ``redo_rtol`` and ``redo_floor`` steps the cells whose ROS2 result ended below zero by more than
        MAX_NEGATIVE (ROS2 is not positive; at tol 1e-2 this happens on cool states whose composition barely
        moves, where the net is poor) once more, at tol = min(tol, max(redo_floor, redo_rtol x sum_i |X_i -
        X0_i| of that result)): the tolerance relative to the cell's own change (docs/nuclear.md, "An
        accurate set").
    abort : float
        Stop a cell's first step once more than this mass fraction is below zero after a substep (it
        will overshoot: the retry takes it at once); 0: never. Only with a retry.
    screen_rtol : float
        The steps keep their screening factors while the electron density moves by at most this, relative
        (:func:`physics_step`); 0: evaluated at every substep.
    max_negative : float
        A step's result answers where at most this mass fraction ended below zero (clipped; in [0, 1e-2]);
        the retry and the redo are still taken where more than MAX_NEGATIVE (1e-6) is. The accurate set
        records 1e-3: a clipped ROS2 result is far closer than the net there (docs/nuclear.md).
    conserve_ye : bool
        Where the step answers, give its clipped, renormalized mass fractions back the Ye of the unclipped
        result (:func:`~thermoemu.nuclear.physics_step.restore_ye`; sum X = 1 and Ye to rounding): the clip
        otherwise moves Ye by up to the clipped mass fraction, more than a slow cell's true change
        (docs/nuclear.md, "Ye through the clip"). The step itself (its retry and redo decisions) is unchanged.
    """

    def __init__(self, net, dt, network, screening, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO, trust=0.0,
                 isotopes=None, retry=None, abort=0.0, screen_rtol=0.0, max_negative=MAX_NEGATIVE, conserve_ye=False):
        self.net, self.dt = net, float(dt)
        self.network_name, self.screening = network, bool(screening)
        self.substeps, self.ratio, self.trust = int(substeps), float(ratio), float(trust)
        self.retry = normalize_retry(retry)
        self.abort = parse_abort(abort)
        self.max_negative = parse_max_negative(max_negative)
        self.conserve_ye = parse_conserve_ye(conserve_ye)
        self.screen_rtol = float(screen_rtol)
        if not 0.0 <= self.screen_rtol < 1e-3:
            raise ValueError(f"physics screen_rtol = {screen_rtol!r} is out of range [0, 1e-3) (relative change of "
                             f"the electron density; 0: screening evaluated at every substep)")
        self.isotopes = None if isotopes is None else tuple(isotopes)
        self._kernel = None

    def to(self, device):
        """Move the net (the physics step runs on the CPU)."""
        self.net = self.net.to(device)
        return self

    @property
    def config(self):
        return self.net.config

    @property
    def kernel(self):
        if self._kernel is None:
            from .network import load_burner_kernel, load_network
            network = load_network(self.network_name, screening=self.screening)
            if self.isotopes is not None and tuple(network.isotopes) != self.isotopes:
                raise ValueError(f"the set's isotopes differ from those of the built network {network.name} "
                                 f"(another pynucastro version?); the physics step needs them in one order")
            self._kernel = load_burner_kernel(network)
        return self._kernel

    def step(self, temperature, density, mass_fraction):
        """The physics step's result (see :func:`physics_step`) at this model's dt; where a ``retry`` is set,
        cells whose first result is not usable (:func:`_usable`; aborted ones among them) are stepped again
        with the retry's step, and ``retried`` (bool per cell) says where."""
        rho = np.atleast_1d(np.asarray(density, float))
        T = np.broadcast_to(np.asarray(temperature, float), rho.shape)
        X0 = np.atleast_2d(np.asarray(mass_fraction, float))
        base = self.kernel.base_rates(T) if len(rho) else None   # the temperature-only rates, for both steps
        spec = self.retry
        fused = spec is not None and spec["method"] == "euler" and self.abort > 0   # aborted cells: retried at once
        r = physics_step(self.kernel, rho, T, X0, self.dt, substeps=self.substeps, ratio=self.ratio,
                         abort=self.abort if spec is not None else 0.0, screen_rtol=self.screen_rtol, base=base,
                         retry=(spec["substeps"], spec["ratio"]) if fused else None)
        if spec is not None:
            again = np.flatnonzero(~_usable(r) & ~r["retried"])
            if again.size:
                r2 = self._retry_step(T[again], rho[again], X0[again], base=base[again])
                for key, value in r2.items():
                    r[key][again] = value
                r["retried"][again] = True
            r["redone"] = np.zeros(len(rho), dtype=bool)
            if spec["method"] == "ros2" and "redo_rtol" in spec and again.size:
                # the ROS2 results that ended below zero: again, at a tolerance scaled by their own change
                redo = again[(r["status"][again] == 0) & ~_usable(r)[again]]
                if redo.size:
                    change = np.abs(r["mass_fraction"][redo] - X0[redo]).sum(axis=1)
                    tol = np.minimum(spec["tol"], np.maximum(spec["redo_floor"], spec["redo_rtol"] * change))
                    r3 = self._retry_step(T[redo], rho[redo], X0[redo], base=base[redo], tol=tol)
                    for key, value in r3.items():
                        if key != "retried":
                            r[key][redo] = value
                    r["redone"][redo] = True
        return r

    def _retry_step(self, temperature, density, mass_fraction, base=None, tol=None):
        """The retry step alone on these cells (ROS2: at ``tol``, per cell, if given)."""
        spec = self.retry
        if spec["method"] == "ros2":
            return physics_step(self.kernel, density, temperature, mass_fraction, self.dt, method="ros2",
                                tol=spec["tol"] if tol is None else tol, max_steps=spec["max_steps"],
                                screen_rtol=self.screen_rtol, base=base)
        return physics_step(self.kernel, density, temperature, mass_fraction, self.dt, substeps=spec["substeps"],
                            ratio=spec["ratio"], screen_rtol=self.screen_rtol, base=base)

    def predict(self, temperature, density, mass_fraction, *, return_source=False):
        """Mass fractions (N, isotopes), e_nuc [erg g^-1], eps_nu [erg g^-1 s^-1] after dt; with
        ``return_source``, also a bool (N,) that is True where the net answered."""
        T = np.atleast_1d(np.asarray(temperature, float))
        rho = np.atleast_1d(np.asarray(density, float))
        X0 = np.atleast_2d(np.asarray(mass_fraction, float))
        if self.trust > 0:
            r = self.step(T, rho, X0)
            X, e, nu = r["mass_fraction"].copy(), r["e_nuc"].copy(), r["eps_nu"].copy()
            use_net = ~_usable(r, self.max_negative) | ~(r["error"] < self.trust)
            if self.conserve_ye and not use_net.all():
                step = np.flatnonzero(~use_net)
                net = self.kernel.network
                X[step] = restore_ye(X[step], r["ye"][step], np.asarray(net.Z, float) / np.asarray(net.A, float))
        else:
            X, e, nu = np.empty_like(X0), np.empty(len(T)), np.empty(len(T))
            use_net = np.ones(len(T), dtype=bool)
        if use_net.any():
            X[use_net], e[use_net], nu[use_net] = self.net.predict(T[use_net], rho[use_net], X0[use_net])
        return (X, e, nu, use_net) if return_source else (X, e, nu)


def _relative_errors(X, X_true, X0):
    """Per state: sum_i |X - X_true| over the persistence error sum_i |X0 - X_true| (+ 1e-12, so states
    where nothing moves but round-off count as matched), capped at 10."""
    return np.minimum(np.abs(X - X_true).sum(axis=1) / (np.abs(X0 - X_true).sum(axis=1) + 1e-12), 10.0)


def choose_trust(model, arrays):
    """The trust of ``model`` (a :class:`PhysicsFirstNNN`) on held-out ``arrays`` (log10 T, log10 rho,
    X0, outcome as :func:`thermoemu.nuclear.nnn._catalog_arrays` gives them): of
    :data:`TRUST_CANDIDATES`, the one with the smallest mean error relative to persistence (per state,
    capped at 10x), ties to the smaller. Returns (trust, {candidate: score})."""
    logT, logr, X0, raw = arrays
    T, rho = 10.0**logT, 10.0**logr
    n = X0.shape[1]
    X_true = raw[:, :n]
    r = model.step(T, rho, X0)
    X_net = model.net.predict(T, rho, X0)[0]
    if len(T) == 0:
        raise ValueError("choose_trust needs held-out states; the split given is empty")
    usable = _usable(r, model.max_negative)
    rel_step = np.where(usable, _relative_errors(r["mass_fraction"], X_true, X0), np.inf)
    rel_net = np.nan_to_num(_relative_errors(X_net, X_true, X0), nan=10.0)
    scores = {}
    for trust in TRUST_CANDIDATES:
        use_step = usable & (r["error"] < trust)
        scores[trust] = float(np.where(use_step, rel_step, rel_net).mean())
    best = min(TRUST_CANDIDATES, key=lambda t: (scores[t], t))
    return best, scores


def attach_physics(model_dir, catalogs, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO, retry=None, abort=0.0,
                   screen_rtol=0.0, max_negative=MAX_NEGATIVE, conserve_ye=False, fractions=None):
    """Make the NNN set ``model_dir`` physics-first: choose each dt's trust on the validation splits of
    ``catalogs`` (of the set's network and isotopes; pass those it was trained on, so the validation
    states are held out) and record ``physics`` (substeps, ratio, ``retry`` = (substeps, ratio) if given,
    trust) in its manifest, written once at the end. Returns {dt: (trust, scores)}."""
    from ..core.artifacts import ArtifactError, load_weights, read_manifest
    from ..core.catalog import SPLIT_FRACTIONS
    from .nnn import NNN, NNN_FORMAT, NNN_FORMAT_VERSION, NNNConfig, _catalog_arrays

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, fmt=NNN_FORMAT, version=NNN_FORMAT_VERSION)
    chosen = {}
    for entry in manifest["models"].values():
        dt = float(entry["dt_s"])
        net = NNN(NNNConfig(**entry["config"]))
        net.load_state_dict(load_weights(model_dir / entry["file"], entry["sha256"]))
        isotopes, arrays, _ = _catalog_arrays(list(catalogs), dt, fractions or SPLIT_FRACTIONS)
        if isotopes != manifest["isotopes"]:
            raise ArtifactError(f"{catalogs} hold other isotopes than the set {model_dir}")
        model = PhysicsFirstNNN(net.eval(), dt, manifest["network"], entry.get("screening", True),
                                substeps=substeps, ratio=ratio, retry=retry, abort=abort, screen_rtol=screen_rtol,
                                max_negative=max_negative, conserve_ye=conserve_ye, isotopes=manifest["isotopes"])
        trust, scores = choose_trust(model, arrays["validation"])
        chosen[dt] = (trust, scores)
        entry["physics"] = {"substeps": int(substeps), "ratio": float(ratio),
                            **({"retry": retry_record(model.retry)} if model.retry else {}),
                            **({"abort": model.abort} if model.abort > 0 else {}),
                            **({"screening_rtol": model.screen_rtol} if model.screen_rtol > 0 else {}),
                            **({"max_negative": model.max_negative} if model.max_negative != MAX_NEGATIVE else {}),
                            **({"conserve_ye": True} if model.conserve_ye else {}),
                            "trust": trust if math.isfinite(trust) else "inf",
                            "validation_scores": {f"{k:g}": round(v, 5) for k, v in scores.items()}}
    write_json_atomic(model_dir / MANIFEST, manifest)
    return chosen
