"""Primordial training catalogs: the spec checks, the sampling of a shard, and its contents.

The shard machinery (dask tasks, index, resume, splits) is :mod:`thermoemu.core.catalog`; a spec with
``network.kind: primordial`` comes here for its checks (:func:`validate_spec`) and its
shards (:func:`build_shard`): states log-uniform in the ranges of OS25 Table 1 projected onto the
conservation laws, ``log10(1 + dt/s)`` uniform up to ``dt_max = 10^0.5 t_ff``, integrated by the batched
Rosenbrock solver, with the state after dt and the timescales tau_eps recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import xarray as xr

from ..core.catalog import shard_rng, write_shard
from ..core.files import file_sha256, package_version
from ..core.grid import SUCCESS_FLAGS, flag_attrs
from ..core.spec import CatalogSpec, SpecError, check_keys, check_range, check_type, validate_record
from ..solvers.rosenbrock import STATUS, SolverSettings, integrate
from .physics.network import SPECIES, PrimordialNetwork, PrimordialOptions, free_fall_time
from .sampling import RANGE_KEYS, sample_states

__all__ = ["validate_spec", "sample_inputs", "build_shard", "provenance", "sampling_ranges",
           "dt_max_over_t_ff", "timescale_eps", "network_options", "solver_settings", "VARIABLES"]

VARIABLES = tuple(SPECIES) + ("temperature",)
_TIMESTEP_LAWS = ("log1p_uniform",)
_PROJECTIONS = ("conservation",)
#: What the catalog records.
_RECORD = {"state": bool, "timescales": dict}
# allowed log10 bounds of each sampled variable (the network's validity range)
_RANGE_LIMITS = {"n_H": (-8, 22), "temperature": (0, 6), "H": (-40, 0), "H2": (-40, 0),
                 "ion": (-40, 0), "trace": (-40, 0)}


def sampling_ranges(spec):
    """The log10 sampling ranges of a primordial spec, ``{key: (min, max)}``."""
    return {k: tuple(v) for k, v in spec.raw["sampling"]["log10_ranges"].items()}


def dt_max_over_t_ff(spec):
    """The longest sampled dt in units of the free-fall time."""
    return float(spec.raw["timestep"].get("dt_max_over_t_ff", 10**0.5))


def timescale_eps(spec):
    """eps of the recorded timescales tau_eps, or None if none are recorded."""
    ts = spec.raw["record"].get("timescales")
    return None if ts is None else float(ts.get("eps", 0.1))


def network_options(spec):
    """The :class:`PrimordialOptions` a spec names."""
    return PrimordialOptions(**spec.raw["network"].get("options", {}))


def solver_settings(spec):
    """The :class:`SolverSettings` a spec names."""
    return SolverSettings(**spec.raw.get("solver", {}))


def _check_dataclass(key, mapping, cls):
    """``mapping`` must name fields of the dataclass ``cls`` with values it accepts (SpecError naming ``key``)."""
    check_keys(f"{key}.", mapping, {f.name for f in dataclasses.fields(cls)})
    try:
        cls(**mapping)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{key}: {exc}") from None


def validate_spec(raw):
    """Check the primordial parts of a spec in place (raises SpecError naming the key)."""
    net = raw["network"]
    options = net.get("options", {}) or {}
    check_type("network.options", options, dict)
    _check_dataclass("network.options", options, PrimordialOptions)
    net["options"] = options

    smp = raw["sampling"]
    check_keys("sampling.", smp, {"log10_ranges", "projection"}, ("log10_ranges",))
    check_type("sampling.log10_ranges", smp["log10_ranges"], dict)
    check_keys("sampling.log10_ranges.", smp["log10_ranges"], set(RANGE_KEYS), RANGE_KEYS)
    for k in RANGE_KEYS:
        check_range(f"sampling.log10_ranges.{k}", smp["log10_ranges"][k], *_RANGE_LIMITS[k])
        smp["log10_ranges"][k] = [float(v) for v in smp["log10_ranges"][k]]
    projection = smp.setdefault("projection", "conservation")
    if projection not in _PROJECTIONS:
        raise SpecError(f"sampling.projection: unknown projection {projection!r} (available: conservation)")

    ts = raw["timestep"]
    check_keys("timestep.", ts, {"law", "dt_max_over_t_ff"}, ("law",))
    if ts["law"] not in _TIMESTEP_LAWS:
        raise SpecError(f"timestep.law: unknown law {ts['law']!r} (available: {', '.join(_TIMESTEP_LAWS)})")
    ts.setdefault("dt_max_over_t_ff", 10**0.5)
    check_type("timestep.dt_max_over_t_ff", ts["dt_max_over_t_ff"], float)
    if not ts["dt_max_over_t_ff"] > 0:
        raise SpecError(f"timestep.dt_max_over_t_ff: must be > 0, got {ts['dt_max_over_t_ff']}")

    _check_dataclass("solver", raw.setdefault("solver", {}), SolverSettings)

    validate_record(raw, _RECORD)
    rec = raw["record"]
    if rec.get("timescales") is not None:
        check_keys("record.timescales.", rec["timescales"], {"eps"})
        eps = rec["timescales"].setdefault("eps", 0.1)
        check_type("record.timescales.eps", eps, float)
        if not 0 < eps < 1:
            raise SpecError(f"record.timescales.eps: must lie in (0, 1), got {eps}")


def sample_inputs(spec: CatalogSpec, shard: int, count: int):
    """Initial states and timesteps of one shard.

    Returns
    -------
    n_H : ndarray (count,) [cm^-3]
    x0 : ndarray (7, count)
        Abundances (network order) and temperature [K].
    dt, dt_max : ndarray (count,) [s]
        dt has ``log10(1 + dt/s)`` uniform in ``[0, log10(1 + dt_max/s)]``,
        ``dt_max = dt_max_over_t_ff * t_ff(n_H)``.
    """
    rng = shard_rng(spec, shard)
    n_H, x0 = sample_states(sampling_ranges(spec), count, rng)
    dt_max = dt_max_over_t_ff(spec) * free_fall_time(n_H)
    u = rng.uniform(0.0, 1.0, count)
    dt = np.expm1(u * np.log1p(dt_max))
    return n_H, x0, np.minimum(dt, dt_max), dt_max


def build_shard(spec, shard: int, count: int, out):
    """Integrate one shard's states with the batched solver, recording the state after dt and the
    timescales tau_eps, and write the shard; returns its index entry."""
    network = PrimordialNetwork(network_options(spec))
    settings = solver_settings(spec)
    n_H, x0, dt, dt_max = sample_inputs(spec, shard, count)
    t0 = time.perf_counter()
    res = integrate(network, x0, network.cell_parameters(n_H), dt, settings,
                    timescale_eps=timescale_eps(spec), timescale_horizon=dt_max)
    wall = time.perf_counter() - t0
    first_id = shard * spec.shard_size
    ds = _shard_dataset(spec, shard, first_id, n_H, x0, dt, dt_max, res)
    path = write_shard(ds, out, shard)
    return {"shard": shard, "file": path.name, "samples": count, "first_sample": first_id,
            "failed": int((~res.success).sum()), "sha256": file_sha256(path), "wall_s": wall,
            "median_substeps": float(np.median(res.substeps))}


def _shard_dataset(spec, shard, first_id, n_H, x0, dt, dt_max, res):
    sample = np.arange(first_id, first_id + n_H.size, dtype=np.int64)
    data = {
        "n_H": (("sample",), n_H, {"units": "cm^-3", "long_name": "hydrogen nuclei number density"}),
        "dt": (("sample",), dt, {"units": "s", "long_name": "time step"}),
        "dt_max": (("sample",), dt_max, {"units": "s", "long_name": "maximum time step (10^0.5 t_ff)"}),
        "initial_temperature": (("sample",), x0[-1], {"units": "K"}),
        "initial_abundance": (("species", "sample"), x0[:-1], {"units": "1", "long_name": "n_i / n_H"}),
        "temperature": (("sample",), res.x[-1], {"units": "K", "long_name": "temperature after dt"}),
        "abundance": (("species", "sample"), res.x[:-1], {"units": "1", "long_name": "n_i / n_H after dt"}),
        "success": (("sample",), res.success.astype(np.int8), flag_attrs(SUCCESS_FLAGS, "integration succeeded")),
        "status": (("sample",), res.status.astype(np.int8), flag_attrs(STATUS, "solver status")),
        "substeps": (("sample",), res.substeps.astype(np.int32), {"units": "1"}),
    }
    if res.tau is not None:
        data["tau_eps"] = (("variable", "sample"), res.tau,
                           {"units": "s", "eps": timescale_eps(spec),
                            "long_name": "time at which the relative change first reaches eps (capped at dt_max)"})
        data["tau_sign"] = (("variable", "sample"), res.tau_sign,
                            {"units": "1", "long_name": "sign of the change at tau_eps"})
        data["tau_capped"] = (("variable", "sample"), ((res.tau_lower == res.tau_upper)
                               & (res.tau_upper >= dt_max[None] * (1 - 1e-12))).astype(np.int8),
                              {"long_name": "1 where the variable never changed by eps within dt_max"})
    ds = xr.Dataset(data, coords={"sample": ("sample", sample), "species": ("species", list(SPECIES)),
                                  "variable": ("variable", list(VARIABLES))})
    ds.attrs = {"catalog": spec.name, "spec_sha256": spec.content_hash(), "shard": shard,
                "thermoemu_version": package_version(), "network": "primordial",
                "rate_set_version": PrimordialNetwork.rate_set_version,
                "Conventions": "CF-1.8"}
    return ds


def provenance(spec):
    """Network, rate-set and solver fields of the index of a primordial catalog."""
    settings = solver_settings(spec)
    return {"network": "primordial", "network_options": spec.raw["network"].get("options", {}),
            "rate_set_version": PrimordialNetwork.rate_set_version, "solver": "rosenbrock-rodas3",
            "solver_settings": settings.as_dict(),
            "solver_backend": _resolved_backend(network_options(spec), settings.backend)}


@functools.lru_cache(maxsize=8)
def _resolved_backend(options, backend):
    """The backend a shard task runs (compiled where numba and the coefficient table allow)."""
    return SolverSettings(backend=backend).resolved_backend(PrimordialNetwork(options))


