"""Catalog specs: what a training catalog holds and how it is built (YAML; built-in specs ship as package
data in ``thermoemu/data/catalogs``).

A spec names the network (``network.kind`` picks the chemistry that validates and builds it) and its
options, the sampling, the timestep law, the number of samples and their shard size, the seed, the
solver settings and what is recorded. The top level is checked here; the chemistry checks its own
parts (:meth:`thermoemu.core.protocols.Chemistry.validate_spec`). Every error names the key and the
problem. A primordial spec::

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

from .protocols import chemistries, get_chemistry


class SpecError(ValueError):
    """A catalog spec that cannot be used; the message names the key and the problem."""


_TOP = {"name": str, "description": str, "network": dict, "sampling": dict, "timestep": dict,
        "samples": int, "shard_size": int, "seed": int, "solver": dict, "record": dict}
_REQUIRED = ("name", "network", "sampling", "timestep", "samples", "shard_size", "seed", "record")


def _type_name(t):
    return {str: "a string", dict: "a mapping", int: "an integer", float: "a number", bool: "true or false",
            list: "a list"}[t]


def check_type(key, value, expected):
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise SpecError(f"{key}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}")


def check_keys(prefix, mapping, allowed, required=()):
    for k in mapping:
        if k not in allowed:
            raise SpecError(f"{prefix}{k}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in mapping:
            raise SpecError(f"{prefix}{k}: missing required field")


def check_range(key, value, lower=-math.inf, upper=math.inf):
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{key}: expected a list [min, max] of two numbers, got {value!r}")
    for v in value:
        check_type(key, v, float)
        if not math.isfinite(v):
            raise SpecError(f"{key}: {v!r} is not finite")
    lo, hi = value
    if lo > hi:
        raise SpecError(f"{key}: min {lo} > max {hi}")
    if lo < lower or hi > upper:
        raise SpecError(f"{key}: [{lo}, {hi}] lies outside the allowed [{lower}, {upper}]")


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
    def kind(self):
        """The chemistry of the catalog (``network.kind``)."""
        return self.raw["network"]["kind"]

    def __getattr__(self, name):
        # accessors a chemistry offers for its own specs (primordial: ranges, dt_max_over_t_ff,
        # timescale_eps, network_options(), solver_settings()), looked up through the registry
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        accessors = getattr(get_chemistry(self.kind), "spec_accessors", {})
        if name not in accessors:
            raise AttributeError(f"a {self.kind} CatalogSpec has no attribute {name!r}")
        return accessors[name](self)

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
    check_keys("", raw, _TOP, _REQUIRED)
    for k, t in _TOP.items():
        if k in raw:
            check_type(k, raw[k], t)
    for k in ("samples", "shard_size"):
        if raw[k] < 1:
            raise SpecError(f"{k}: must be >= 1, got {raw[k]}")
    if raw["seed"] < 0:
        raise SpecError(f"seed: must be >= 0, got {raw['seed']}")

    net = raw["network"]
    check_keys("network.", net, {"kind", "options"}, ("kind",))
    known = chemistries()
    if net["kind"] not in known:
        raise SpecError(f"network.kind: unknown network {net['kind']!r} (available: {', '.join(sorted(known))})")
    chemistry = known[net["kind"]]
    chemistry.validate_spec(raw)
    return CatalogSpec(raw)


def validate_record(raw, allowed):
    """Check ``record`` against ``{key: type}``; the state after dt is always recorded."""
    rec = raw["record"]
    check_keys("record.", rec, allowed)
    for k, t in allowed.items():
        if k in rec and rec[k] is not None:
            check_type(f"record.{k}", rec[k], t)
    if not rec.get("state", True):
        raise SpecError("record.state: the state after dt is always recorded; remove the key or set true")


def builtin_spec_dir():
    """The folder of the built-in specs, shipped inside the package (``thermoemu/data/catalogs``)."""
    return Path(__file__).resolve().parents[1] / "data" / "catalogs"


def builtin_specs():
    """Names of the built-in specs."""
    return sorted(p.stem for p in builtin_spec_dir().glob("*.yaml"))


def load_spec(path):
    """Read and validate a YAML spec; ``path`` may also name a built-in spec (``popiii-r1``)."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        builtin = builtin_spec_dir() / f"{path}.yaml"
        if builtin.exists():
            p = builtin
    if not p.exists():
        raise FileNotFoundError(f"catalog spec {str(path)!r} not found (not a file, nor a built-in spec: "
                                f"{', '.join(builtin_specs())})")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from None
    try:
        return validate_spec(raw)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None


__all__ = ["CatalogSpec", "SpecError", "load_spec", "validate_spec", "check_type", "check_keys", "check_range",
           "validate_record", "builtin_spec_dir", "builtin_specs"]
