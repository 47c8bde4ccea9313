"""Catalog specs: what a training catalog holds and how it is built (YAML files in catalogs/).

A spec names the network and its options, the log-uniform sampling ranges, the timestep law, the
number of samples and their shard size, the seed, the solver settings and what is recorded. It is
validated on load; every error names the key and the problem::

    name: popiii-r1
    network: {kind: primordial, options: {}}
    sampling:
      log10_ranges: {n_H: [4, 8], temperature: [1.3, 4.5], H: [-6, 0], H2: [-6, -0.3],
                     ion: [-10, 0], trace: [-20, -9]}
      projection: conservation
    timestep: {law: log1p_uniform, dt_max_over_t_ff: 3.1622776601683795}
    samples: 100000
    shard_size: 5000
    seed: 20251
    solver: {step_control: error, rtol: 1.0e-4}
    record: {state: true, timescales: {eps: 0.1}}
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from pathlib import Path

import yaml

from .networks.primordial.network import PrimordialOptions
from .sampling import RANGE_KEYS
from .solvers.rosenbrock import SolverSettings


class SpecError(ValueError):
    """A catalog spec that cannot be used; the message names the key and the problem."""


_TOP = {"name": str, "description": str, "network": dict, "sampling": dict, "timestep": dict,
        "samples": int, "shard_size": int, "seed": int, "solver": dict, "record": dict}
_REQUIRED = ("name", "network", "sampling", "timestep", "samples", "shard_size", "seed", "record")
_TIMESTEP_LAWS = ("log1p_uniform",)
_PROJECTIONS = ("conservation",)
#: What the catalog records.
_RECORD = {"state": bool, "timescales": dict}


def _type_name(t):
    return {str: "a string", dict: "a mapping", int: "an integer", float: "a number", bool: "true or false",
            list: "a list"}[t]


def _check_type(key, value, expected):
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise SpecError(f"{key}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}")


def _check_keys(prefix, mapping, allowed, required=()):
    for k in mapping:
        if k not in allowed:
            raise SpecError(f"{prefix}{k}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in mapping:
            raise SpecError(f"{prefix}{k}: missing required field")


def _check_range(key, value, lower=-math.inf, upper=math.inf):
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{key}: expected a list [min, max] of two numbers, got {value!r}")
    for v in value:
        _check_type(key, v, float)
        if not math.isfinite(v):
            raise SpecError(f"{key}: {v!r} is not finite")
    lo, hi = value
    if lo > hi:
        raise SpecError(f"{key}: min {lo} > max {hi}")
    if lo < lower or hi > upper:
        raise SpecError(f"{key}: [{lo}, {hi}] lies outside the allowed [{lower}, {upper}]")


# allowed log10 bounds of each sampled variable (the network's validity range)
_RANGE_LIMITS = {"n_H": (-8, 22), "temperature": (0, 6), "H": (-40, 0), "H2": (-40, 0),
                 "ion": (-40, 0), "trace": (-40, 0)}


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """A validated catalog spec (see the module docstring for the YAML form)."""

    raw: dict

    @property
    def name(self):
        return self.raw["name"]

    @property
    def samples(self):
        return self.raw["samples"]

    @property
    def shard_size(self):
        return self.raw["shard_size"]

    @property
    def seed(self):
        return self.raw["seed"]

    @property
    def ranges(self):
        return {k: tuple(v) for k, v in self.raw["sampling"]["log10_ranges"].items()}

    @property
    def dt_max_over_t_ff(self):
        return float(self.raw["timestep"].get("dt_max_over_t_ff", 10**0.5))

    @property
    def timescale_eps(self):
        ts = self.raw["record"].get("timescales")
        return None if ts is None else float(ts.get("eps", 0.1))

    def network_options(self):
        return PrimordialOptions(**self.raw["network"].get("options", {}))

    def solver_settings(self):
        return SolverSettings(**self.raw.get("solver", {}))

    def with_samples(self, samples):
        """A copy with another sample count (shard layout unchanged)."""
        raw = copy.deepcopy(self.raw)
        raw["samples"] = samples
        return validate_spec(raw)

    def content_hash(self, exclude=("samples", "description")):
        """SHA-256 of everything that determines the samples (not their count or description)."""
        body = {k: v for k, v in self.raw.items() if k not in exclude}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=float).encode()).hexdigest()

    def shard_counts(self):
        """Samples per shard: full shards then the remainder."""
        full, rest = divmod(self.samples, self.shard_size)
        return [self.shard_size] * full + ([rest] if rest else [])


def validate_spec(raw):
    """Check a spec mapping and return a :class:`CatalogSpec` (raises :class:`SpecError`)."""
    if not isinstance(raw, dict):
        raise SpecError(f"spec: expected a mapping at the top level, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    _check_keys("", raw, _TOP, _REQUIRED)
    for k, t in _TOP.items():
        if k in raw:
            _check_type(k, raw[k], t)
    for k in ("samples", "shard_size"):
        if raw[k] < 1:
            raise SpecError(f"{k}: must be >= 1, got {raw[k]}")
    if raw["seed"] < 0:
        raise SpecError(f"seed: must be >= 0, got {raw['seed']}")

    net = raw["network"]
    _check_keys("network.", net, {"kind", "options"}, ("kind",))
    if net["kind"] == "nuclear":
        from .nuclear_catalog import validate_nuclear_spec
        validate_nuclear_spec(raw)
        return CatalogSpec(raw)
    if net["kind"] != "primordial":
        raise SpecError(f"network.kind: unknown network {net['kind']!r} (available: primordial, nuclear)")
    _validate_primordial(raw)
    return CatalogSpec(raw)


def _validate_record(raw):
    rec = raw["record"]
    _check_keys("record.", rec, _RECORD)
    for k, t in _RECORD.items():
        if k in rec and rec[k] is not None:
            _check_type(f"record.{k}", rec[k], t)
    if not rec.get("state", True):
        raise SpecError("record.state: the state after dt is always recorded; remove the key or set true")
    if rec.get("timescales") is not None:
        _check_keys("record.timescales.", rec["timescales"], {"eps"})
        eps = rec["timescales"].setdefault("eps", 0.1)
        _check_type("record.timescales.eps", eps, float)
        if not 0 < eps < 1:
            raise SpecError(f"record.timescales.eps: must lie in (0, 1), got {eps}")


def _validate_primordial(raw):
    net = raw["network"]
    options = net.get("options", {}) or {}
    _check_type("network.options", options, dict)
    fields = {f.name for f in dataclasses.fields(PrimordialOptions)}
    _check_keys("network.options.", options, fields)
    try:
        PrimordialOptions(**options)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"network.options: {exc}") from None
    net["options"] = options

    smp = raw["sampling"]
    _check_keys("sampling.", smp, {"log10_ranges", "projection"}, ("log10_ranges",))
    _check_type("sampling.log10_ranges", smp["log10_ranges"], dict)
    _check_keys("sampling.log10_ranges.", smp["log10_ranges"], set(RANGE_KEYS), RANGE_KEYS)
    for k in RANGE_KEYS:
        _check_range(f"sampling.log10_ranges.{k}", smp["log10_ranges"][k], *_RANGE_LIMITS[k])
        smp["log10_ranges"][k] = [float(v) for v in smp["log10_ranges"][k]]
    projection = smp.setdefault("projection", "conservation")
    if projection not in _PROJECTIONS:
        raise SpecError(f"sampling.projection: unknown projection {projection!r} (available: conservation)")

    ts = raw["timestep"]
    _check_keys("timestep.", ts, {"law", "dt_max_over_t_ff"}, ("law",))
    if ts["law"] not in _TIMESTEP_LAWS:
        raise SpecError(f"timestep.law: unknown law {ts['law']!r} (available: {', '.join(_TIMESTEP_LAWS)})")
    ts.setdefault("dt_max_over_t_ff", 10**0.5)
    _check_type("timestep.dt_max_over_t_ff", ts["dt_max_over_t_ff"], float)
    if not ts["dt_max_over_t_ff"] > 0:
        raise SpecError(f"timestep.dt_max_over_t_ff: must be > 0, got {ts['dt_max_over_t_ff']}")

    solver = raw.setdefault("solver", {})
    fields = {f.name for f in dataclasses.fields(SolverSettings)}
    _check_keys("solver.", solver, fields)
    try:
        SolverSettings(**solver)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"solver: {exc}") from None

    _validate_record(raw)


def load_spec(path):
    """Read and validate a YAML spec; ``path`` may also name a built-in spec (``popiii-r1``)."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        builtin = Path(__file__).resolve().parent.parent / "catalogs" / f"{path}.yaml"
        if builtin.exists():
            p = builtin
    if not p.exists():
        raise FileNotFoundError(f"catalog spec {str(path)!r} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from None
    try:
        return validate_spec(raw)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None


__all__ = ["CatalogSpec", "SpecError", "load_spec", "validate_spec"]
