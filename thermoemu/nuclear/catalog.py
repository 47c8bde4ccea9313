"""Nuclear training catalogs (Grichener et al. 2025, section 3) on the catalog machinery.

A spec with ``network.kind: nuclear`` is built by the same ``thermoemu build`` (dask shards,
seeds per shard, resume, index with checksums); this module supplies its validation, its
sampling and the shard contents::

    network: {kind: nuclear, options: {network: mesa80, screening: true}}
    sampling:
      log10_temperature: [9.2, 9.9]     # K, Sobol
      log10_density: [7.0, 9.0]         # g cm^-3, Sobol
      composition:
        isotopes: network               # or small_net: only isotopes small22 and mesa80 share
        alpha: 0.2                      # Dirichlet concentration
        ye: [0.45, 0.5]                 # accepted open interval of Ye
      preburn: [1.0e-6, 10.0]           # optional, s: start from a point on the state's own trajectory
    timestep: {law: list, values: [1.0e-6, 1.0e-5, ...]}   # s; every state is burned to each
    solver: {rtol: 1.0e-6, atol: 1.0e-20}   # method: compiled (default; scipy's BDF in numba) or BDF

**Sampling.** (log10 T, log10 rho) come from a scrambled Sobol sequence (scipy.stats.qmc, seeded
per shard). Compositions are Dirichlet(alpha) draws over the chosen isotopes (free n and p start
at zero: they are set by the burning within far less than the shortest dt), rejected unless
``ye[0] < Ye < ye[1]``; a small alpha gives sparse, varied mixtures, as a burning shell has a
few dominant species. **Trajectory states** (``preburn``, issue 27): each drawn composition is first
burned at its (T, rho) for a time drawn log-uniformly from ``preburn`` [s], and the state reached is
the sample's initial state: states a simulation hands a network, with free nucleons and light
particles already at their quasi-equilibrium, rather than fresh random mixtures (the recorded
``preburn_s`` and the draw's ``drawn_mass_fraction`` stay in the shard). Costs one more burn per state. **Timesteps.** One integration per state to the longest dt, with the state
recorded at every listed dt (dense output), so the nine dt models of seed 000 share their states
at the cost of one burn.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import xarray as xr

from ..core.catalog import shard_rng, write_shard
from ..core.files import file_sha256, package_version
from ..core.grid import SUCCESS_FLAGS, flag_attrs
from ..core.spec import SpecError, check_keys, check_range, check_type
from .burner import BURN_STATUS, METHODS, burn_times
from .network import _SMALL22_CORE, MESA80, load_network

__all__ = ["validate_spec", "sample_nuclear_inputs", "build_shard", "provenance", "composition_isotopes"]

_NETWORKS = ("mesa80", "small22")
_ISOTOPE_SETS = ("network", "small_net")


def validate_spec(raw):
    """Check the nuclear parts of a spec in place (raises SpecError naming the key)."""
    net = raw["network"]
    options = net.setdefault("options", {}) or {}
    check_type("network.options", options, dict)
    check_keys("network.options.", options, {"network", "screening"}, ("network",))
    if options["network"] not in _NETWORKS:
        raise SpecError(f"network.options.network: unknown network {options['network']!r} "
                        f"(available: {', '.join(_NETWORKS)})")
    options.setdefault("screening", True)
    check_type("network.options.screening", options["screening"], bool)
    net["options"] = options

    smp = raw["sampling"]
    check_keys("sampling.", smp, {"log10_temperature", "log10_density", "composition"},
                ("log10_temperature", "log10_density", "composition"))
    check_range("sampling.log10_temperature", smp["log10_temperature"], 7.0, 11.0)
    check_range("sampling.log10_density", smp["log10_density"], 0.0, 11.0)
    comp = smp["composition"]
    check_type("sampling.composition", comp, dict)
    check_keys("sampling.composition.", comp, {"isotopes", "alpha", "ye", "preburn"}, ("ye",))
    if "preburn" in comp:
        check_range("sampling.composition.preburn", comp["preburn"], 1e-12, 1e4)
        if not comp["preburn"][0] <= comp["preburn"][1]:
            raise SpecError(f"sampling.composition.preburn: need min <= max, got {comp['preburn']}")
    comp.setdefault("isotopes", "network")
    if comp["isotopes"] not in _ISOTOPE_SETS:
        raise SpecError(f"sampling.composition.isotopes: {comp['isotopes']!r} (allowed: {', '.join(_ISOTOPE_SETS)})")
    comp.setdefault("alpha", 0.2)
    check_type("sampling.composition.alpha", comp["alpha"], float)
    if not comp["alpha"] > 0:
        raise SpecError(f"sampling.composition.alpha: must be > 0, got {comp['alpha']}")
    check_range("sampling.composition.ye", comp["ye"], 0.0, 1.0)
    if not comp["ye"][0] < comp["ye"][1]:
        raise SpecError(f"sampling.composition.ye: need min < max, got {comp['ye']}")

    ts = raw["timestep"]
    check_keys("timestep.", ts, {"law", "values"}, ("law", "values"))
    if ts["law"] != "list":
        raise SpecError(f"timestep.law: unknown law {ts['law']!r} for nuclear catalogs (available: list)")
    values = ts["values"]
    if not (isinstance(values, list) and values):
        raise SpecError(f"timestep.values: expected a non-empty list of times in s, got {values!r}")
    for v in values:
        check_type("timestep.values", v, float)
    if not (all(v > 0 for v in values) and all(b > a for a, b in zip(values, values[1:]))):
        raise SpecError(f"timestep.values: need positive, increasing times, got {values}")
    ts["values"] = [float(v) for v in values]

    solver = raw.setdefault("solver", {})
    check_keys("solver.", solver, {"rtol", "atol", "method"})
    solver.setdefault("rtol", 1e-6)
    solver.setdefault("atol", 1e-20)
    solver.setdefault("method", "compiled")
    for k in ("rtol", "atol"):
        check_type(f"solver.{k}", solver[k], float)
        if not 0 < solver[k] < 1:
            raise SpecError(f"solver.{k}: must lie in (0, 1), got {solver[k]}")
    if solver["method"] not in METHODS:
        raise SpecError(f"solver.method: {solver['method']!r} (allowed: {', '.join(METHODS)})")

    rec = raw["record"]
    check_keys("record.", rec, {"state"})
    if not rec.get("state", True):
        raise SpecError("record.state: the state after dt is always recorded; remove the key or set true")


def composition_isotopes(network, which):
    """Isotopes an initial composition may hold: the network's (``"network"``) or those small22 and
    mesa80 share (``"small_net"``, the seed's test set), without free n and p."""
    if which == "small_net":
        names = [i for i in _SMALL22_CORE if i in MESA80 and i in network.isotopes]
    else:
        names = list(network.isotopes)
    return [i for i in names if i not in ("n", "p")]


def sample_nuclear_inputs(spec, shard, count, network):
    """T [K], rho [g cm^-3] (count,), initial mass fractions (count, network isotopes) and the
    acceptance rate of the Ye rejection, from the shard's own seed."""
    from scipy.stats import qmc

    smp = spec.raw["sampling"]
    rng = shard_rng(spec, shard)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Sobol balance: counts that are not powers of two are fine here
        u = qmc.Sobol(d=2, scramble=True, seed=rng).random(count)
    lo_T, hi_T = smp["log10_temperature"]
    lo_r, hi_r = smp["log10_density"]
    T = 10.0 ** (lo_T + u[:, 0] * (hi_T - lo_T))
    rho = 10.0 ** (lo_r + u[:, 1] * (hi_r - lo_r))
    comp = smp["composition"]
    names = composition_isotopes(network, comp["isotopes"])
    ye_i = np.array([network.Z[network.isotopes.index(i)] / network.A[network.isotopes.index(i)] for i in names])
    lo, hi = comp["ye"]
    accepted, drawn = [], 0
    while sum(len(a) for a in accepted) < count:
        batch = rng.dirichlet(np.full(len(names), comp["alpha"]), size=max(4 * count, 64))
        drawn += len(batch)
        ye = batch @ ye_i
        accepted.append(batch[(ye > lo) & (ye < hi)])
        if drawn > 1000 * max(count, 100):
            raise SpecError(f"sampling.composition: fewer than 1 in 1000 Dirichlet draws have {lo} < Ye < {hi}")
    X_sub = np.concatenate(accepted)[:count]
    X = np.zeros((count, len(network.isotopes)))
    X[:, [network.isotopes.index(i) for i in names]] = X_sub
    rate = sum(len(a) for a in accepted) / drawn
    return T, rho, X, rate


def build_shard(spec, shard, count, out):
    """Burn one shard's states to every listed dt and write the shard; returns its index entry."""

    opts = spec.raw["network"]["options"]
    net = load_network(opts["network"], screening=opts["screening"])
    T, rho, X0, acceptance = sample_nuclear_inputs(spec, shard, count, net)
    times = np.array(spec.raw["timestep"]["values"])
    solver = spec.raw["solver"]
    t0 = time.perf_counter()
    preburn = spec.raw["sampling"]["composition"].get("preburn")
    extra = {}
    if preburn is not None:
        X0, extra = _preburn(net, spec, shard, T, rho, X0, preburn, solver)
    res = burn_times(net, rho, T, X0, times, rtol=solver["rtol"], atol=solver["atol"], method=solver["method"])
    wall = time.perf_counter() - t0
    first_id = shard * spec.shard_size
    Z_over_A = net.Z / net.A
    ds = xr.Dataset(
        {
            "temperature": ("sample", T, {"units": "K"}),
            "density": ("sample", rho, {"units": "g cm^-3"}),
            "initial_mass_fraction": (("sample", "isotope"), X0, {"units": "1"}),
            "initial_ye": ("sample", X0 @ Z_over_A, {"units": "1"}),
            "mass_fraction": (("sample", "dt", "isotope"), res.mass_fraction,
                              {"units": "1", "long_name": "mass fraction after dt"}),
            "ye": (("sample", "dt"), res.ye, {"units": "1", "long_name": "electron fraction after dt"}),
            "e_nuc": (("sample", "dt"), res.e_nuc,
                      {"units": "erg g^-1", "long_name": "energy released over dt (mass change minus weak neutrinos)"}),
            "eps_nu": (("sample", "dt"), res.eps_nu,
                       {"units": "erg g^-1 s^-1", "long_name": "weak-neutrino loss rate at the end of dt"}),
            "success": ("sample", res.success.astype(np.int8), flag_attrs(SUCCESS_FLAGS)),
            "status": ("sample", res.status, flag_attrs(BURN_STATUS)),
            "nfev": ("sample", res.nfev.astype(np.int32), {"long_name": "right-hand-side evaluations"}),
            **extra,
        },
        coords={"sample": np.arange(first_id, first_id + count, dtype=np.int64),
                "dt": ("dt", times, {"units": "s"}), "isotope": list(net.isotopes)},
        attrs={"catalog": spec.name, "spec_sha256": spec.content_hash(), "shard": shard,
               "thermoemu_version": package_version(), "network": net.name,
               "screening": "chugunov_2007" if net.screening else "none",
               "ye_acceptance_rate": acceptance, "Conventions": "CF-1.8"})
    path = write_shard(ds, out, shard)
    return {"shard": shard, "file": path.name, "samples": count, "first_sample": first_id,
            "failed": int((~res.success).sum()), "sha256": file_sha256(path), "wall_s": wall,
            "median_nfev": float(np.median(res.nfev)), "ye_acceptance_rate": acceptance}


#: Pre-burn times per decade of ``preburn`` (the times are drawn from this log-spaced grid, so that one
#: burn per shard, with dense output, gives every state its own).
PREBURN_PER_DECADE = 8


def _preburn(net, spec, shard, T, rho, X_drawn, preburn, solver):
    """Burn each drawn state for a time drawn log-uniformly from a grid over ``preburn`` [s] (a seed
    stream of its own); returns the compositions reached and the shard variables that record the draw.
    A state whose pre-burn fails keeps its drawn composition (recorded with preburn_s = 0)."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(shard, 1)))
    lo, hi = np.log10(preburn[0]), np.log10(preburn[1])
    grid = np.logspace(lo, hi, max(2, int(np.ceil((hi - lo) * PREBURN_PER_DECADE)) + 1)) if hi > lo else np.array([preburn[0]])
    pick = rng.integers(0, grid.size, size=len(T))
    res = burn_times(net, rho, T, X_drawn, grid, rtol=solver["rtol"], atol=solver["atol"], method=solver["method"])
    cells = np.arange(len(T))
    X0 = np.where(res.success[:, None], res.mass_fraction[cells, pick], X_drawn)
    t_pre = np.where(res.success, grid[pick], 0.0)
    return X0, {"preburn_s": ("sample", t_pre, {"units": "s", "long_name": "burn time before the initial state"}),
                "drawn_mass_fraction": (("sample", "isotope"), X_drawn,
                                        {"units": "1", "long_name": "composition drawn before the pre-burn"})}


def provenance(spec):
    """Index fields that name the network and solver of a nuclear catalog."""
    import pynucastro
    opts = spec.raw["network"]["options"]
    return {"network": opts["network"], "network_options": opts,
            "rate_set_version": f"pynucastro-{pynucastro.__version__}",
            "solver": _solver_name(spec.raw["solver"]["method"]), "solver_settings": spec.raw["solver"]}


def _solver_name(method):
    """Provenance name of a burner method: the compiled BDF is thermoemu's, the rest scipy's."""
    if method == "compiled":
        return f"thermoemu-{package_version()}-compiled-BDF"
    return f"scipy-{method}"
