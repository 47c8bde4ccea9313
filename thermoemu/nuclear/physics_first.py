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
from .physics_step import DEFAULT_RATIO, DEFAULT_SUBSTEPS, physics_step

__all__ = ["PhysicsFirstNNN", "attach_physics", "choose_trust", "parse_retry", "TRUST_CANDIDATES"]

#: Thresholds of the step's error estimate [mass fraction] a set may choose between.
TRUST_CANDIDATES = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, math.inf)
#: A step result whose mass fractions fell below zero by more than this in sum is not used (the net answers).
MAX_NEGATIVE = 1e-6


def physics_settings(entry, where):
    """The checked ``physics`` record of a manifest entry: (substeps, ratio, trust, retry), ``retry`` None or
    (substeps, ratio); raises ArtifactError naming ``where`` when a field is missing or out of range."""
    from ..core.artifacts import ArtifactError

    physics = entry.get("physics")
    try:
        substeps, ratio, trust = physics["substeps"], float(physics["ratio"]), float(physics["trust"])
        retry = physics.get("retry")
        if retry is not None:
            retry = (retry["substeps"], float(retry["ratio"]))
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise ArtifactError(f"{where}: the physics record {physics!r} needs substeps, ratio and trust, and a retry "
                            f"needs substeps and ratio ({err})") from None
    for n, r in [(substeps, ratio)] + ([retry] if retry is not None else []):
        if not (isinstance(n, int) and n >= 1 and r >= 1.0 and trust >= 0.0):
            raise ArtifactError(f"{where}: physics substeps = {n!r} (an integer >= 1), ratio = {r!r} (>= 1) "
                                f"and trust = {trust!r} (>= 0 or 'inf') are out of range")
    return substeps, ratio, trust, retry


def parse_retry(text):
    """``"32:2"`` -> (32, 2.0) (substeps, ratio of a retry step); None or "" -> None."""
    if not text:
        return None
    try:
        n, r = str(text).split(":")
        n, r = int(n), float(r)
    except ValueError:
        raise ValueError(f"physics retry = {text!r}: write SUBSTEPS:RATIO, e.g. 32:2") from None
    if n < 1 or not r >= 1.0:
        raise ValueError(f"physics retry = {text!r}: substeps must be >= 1 and the ratio >= 1")
    return n, r


def _usable(r):
    """Cells where a physics-step result can be used: finite, in the rate tables, at most MAX_NEGATIVE clipped."""
    return ((r["status"] == 0) & np.isfinite(r["mass_fraction"]).all(axis=1) & np.isfinite(r["e_nuc"])
            & np.isfinite(r["eps_nu"]) & (r["negative"] <= MAX_NEGATIVE))


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
    retry : (int, float), optional
        (substeps, ratio) of a second, finer step on the cells whose first step is not usable (it
        overshot: fresh mixtures' first microseconds); where that one is not usable either, the net answers.
    """

    def __init__(self, net, dt, network, screening, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO, trust=0.0,
                 isotopes=None, retry=None):
        self.net, self.dt = net, float(dt)
        self.network_name, self.screening = network, bool(screening)
        self.substeps, self.ratio, self.trust = int(substeps), float(ratio), float(trust)
        self.retry = None if retry is None else (int(retry[0]), float(retry[1]))
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
        cells whose first result is not usable (:func:`_usable`) are stepped again with the retry's finer
        substeps, and ``retried`` (bool per cell) says where."""
        r = physics_step(self.kernel, density, temperature, mass_fraction, self.dt, substeps=self.substeps,
                         ratio=self.ratio)
        r["retried"] = np.zeros(len(r["status"]), dtype=bool)
        if self.retry is not None:
            again = np.flatnonzero(~_usable(r))
            if again.size:
                T = np.broadcast_to(np.asarray(temperature, float), np.shape(density))
                r2 = physics_step(self.kernel, np.asarray(density, float)[again], T[again],
                                  np.asarray(mass_fraction, float)[again], self.dt, substeps=self.retry[0],
                                  ratio=self.retry[1])
                for key, value in r2.items():
                    r[key][again] = value
                r["retried"][again] = True
        return r

    def predict(self, temperature, density, mass_fraction, *, return_source=False):
        """Mass fractions (N, isotopes), e_nuc [erg g^-1], eps_nu [erg g^-1 s^-1] after dt; with
        ``return_source``, also a bool (N,) that is True where the net answered."""
        T = np.atleast_1d(np.asarray(temperature, float))
        rho = np.atleast_1d(np.asarray(density, float))
        X0 = np.atleast_2d(np.asarray(mass_fraction, float))
        if self.trust > 0:
            r = self.step(T, rho, X0)
            X, e, nu = r["mass_fraction"].copy(), r["e_nuc"].copy(), r["eps_nu"].copy()
            use_net = ~_usable(r) | ~(r["error"] < self.trust)
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
    usable = _usable(r)
    rel_step = np.where(usable, _relative_errors(r["mass_fraction"], X_true, X0), np.inf)
    rel_net = np.nan_to_num(_relative_errors(X_net, X_true, X0), nan=10.0)
    scores = {}
    for trust in TRUST_CANDIDATES:
        use_step = usable & (r["error"] < trust)
        scores[trust] = float(np.where(use_step, rel_step, rel_net).mean())
    best = min(TRUST_CANDIDATES, key=lambda t: (scores[t], t))
    return best, scores


def attach_physics(model_dir, catalogs, *, substeps=DEFAULT_SUBSTEPS, ratio=DEFAULT_RATIO, retry=None,
                   fractions=None):
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
                                substeps=substeps, ratio=ratio, retry=retry, isotopes=manifest["isotopes"])
        trust, scores = choose_trust(model, arrays["validation"])
        chosen[dt] = (trust, scores)
        entry["physics"] = {"substeps": int(substeps), "ratio": float(ratio),
                            **({"retry": {"substeps": int(retry[0]), "ratio": float(retry[1])}} if retry else {}),
                            "trust": trust if math.isfinite(trust) else "inf",
                            "validation_scores": {f"{k:g}": round(v, 5) for k, v in scores.items()}}
    write_json_atomic(model_dir / MANIFEST, manifest)
    return chosen
