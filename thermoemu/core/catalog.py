"""Training catalogs: reference integrations built on a dask cluster into netCDF shards.

``build_catalog(spec, out)`` splits the spec's samples into shards of ``shard_size`` and runs one
dask task per shard. A shard's states come from a seed derived from (spec seed, shard index)
alone, so any shard can be rebuilt by itself and comes out byte-identical. What a shard holds is
the chemistry's business (:meth:`thermoemu.core.protocols.Chemistry.shard`: the primordial wing
integrates its states and records the timescales tau_eps, the nuclear wing burns them to a list of
dt); the shard is written as ``shard-NNNNN.nc`` under a temporary name that is renamed when complete. ``index.json``
records provenance (spec and its hash, package, network and rate-set versions, solver settings)
and, per shard, sample count, failures and SHA-256. Re-running the same build resumes: finished
shards are kept, missing or partial ones are rebuilt.

``open_catalog(out)`` returns one lazy, dask-backed Dataset over all shards, with units and a
deterministic train / validation / test split by sample id.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..units import ureg  # noqa: F401 - registers the pint accessor with our registry (quantify=True)
from .cluster import client_info, dask_client, run_tasks
from .files import file_sha256, package_version, write_json_atomic
from .protocols import get_chemistry
from .spec import CatalogSpec, load_spec, validate_spec

INDEX_NAME = "index.json"
SHARD_PATTERN = "shard-{:05d}.nc"
#: Default split fractions (train, validation, test) by sample id.
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)


class CatalogError(RuntimeError):
    """A catalog folder that does not match the build asked for, or a build with failed shards."""


def shard_rng(spec: CatalogSpec, shard: int):
    """The random generator of one shard: seeded by (spec seed, shard index) only."""
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(shard,)))


def build_shard(raw_spec: dict, shard: int, count: int, out: str):
    """Build one shard and write it; returns its index entry (runs on a dask worker).

    Parameters
    ----------
    raw_spec : dict
        The validated spec mapping (plain data, cheap to ship to workers).
    shard : int
    count : int
        Samples in this shard.
    out : str
        Catalog folder (must be visible to the worker: same machine or a shared file system).
    """
    spec = validate_spec(raw_spec)
    return get_chemistry(spec.kind).shard(spec, shard, count, out)


def write_shard(ds, out, shard):
    """Write a shard under a temporary name and rename it when complete; returns its path."""
    path = Path(out) / SHARD_PATTERN.format(shard)
    tmp = path.with_name(path.name + ".part")
    ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    os.replace(tmp, path)
    return path


def _read_index(out):
    path = Path(out) / INDEX_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _write_index(out, index):
    write_json_atomic(Path(out) / INDEX_NAME, index)


def _recover_shard(out, spec, shard, count):
    """Index entry of a complete shard file written by an interrupted build, or None."""
    path = Path(out) / SHARD_PATTERN.format(shard)
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ok = (ds.attrs.get("spec_sha256") == spec.content_hash() and int(ds.attrs.get("shard", -1)) == shard
                  and ds.sizes.get("sample") == count)
            failed = int((ds["success"].values == 0).sum()) if ok else 0
            work = "substeps" if "substeps" in ds else "nfev"  # primordial / nuclear shards
            substeps = float(np.median(ds[work].values)) if ok else 0.0
    except (OSError, ValueError, KeyError):
        return None
    if not ok:
        return None
    return {"shard": shard, "file": path.name, "samples": count, "first_sample": shard * spec.shard_size,
            "failed": failed, "sha256": file_sha256(path), "wall_s": None, "median_substeps": substeps}


def plan_build(spec, out):
    """Which shards a build into ``out`` must (re)make and which it keeps.

    Returns
    -------
    keep : dict
        shard -> index entry of finished shards whose file checksum still matches.
    todo : list of (shard, count)
    """
    out = Path(out)
    index = _read_index(out)
    if index is not None and index.get("spec_sha256") != spec.content_hash():
        raise CatalogError(f"{out} holds catalog {index.get('name')!r} built from another spec "
                           f"(spec_sha256 {index.get('spec_sha256', '?')[:12]} != {spec.content_hash()[:12]}); "
                           "build into a new --out folder")
    if index is not None and index.get("shard_size") != spec.shard_size:
        raise CatalogError(f"{out}: shard_size {spec.shard_size} differs from the {index.get('shard_size')} "
                           "it was built with")
    entries = {e["shard"]: e for e in (index or {}).get("shards", [])}
    keep, todo = {}, []
    for shard, count in enumerate(spec.shard_counts()):
        e = entries.get(shard)
        path = out / SHARD_PATTERN.format(shard)
        if e is not None and e["samples"] == count and path.exists() and file_sha256(path) == e["sha256"]:
            keep[shard] = e
            continue
        recovered = _recover_shard(out, spec, shard, count)
        if recovered is not None:
            keep[shard] = recovered
        else:
            todo.append((shard, count))
    return keep, todo


def _index(spec, shards, complete, client_info):
    return {
        "name": spec.name,
        "format": "thermoemu-catalog-1",
        "spec": spec.raw,
        "spec_sha256": spec.content_hash(),
        "thermoemu_version": package_version(),
        **get_chemistry(spec.kind).provenance(spec),
        "shard_size": spec.shard_size,
        "samples": spec.samples,
        "samples_written": int(sum(e["samples"] for e in shards)),
        "failed": int(sum(e["failed"] for e in shards)),
        "complete": complete,
        "shards": sorted(shards, key=lambda e: e["shard"]),
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cluster": client_info,
    }


def build_catalog(spec, out, *, samples=None, client=None, n_workers=None, scheduler=None, progress=True):
    """Build (or resume) a catalog on a dask cluster.

    Parameters
    ----------
    spec : CatalogSpec, dict or path
        A spec, its mapping, a YAML file or a built-in name such as ``"popiii-r1"``.
    out : path
        Catalog folder; created if needed.
    samples : int, optional
        Override the spec's sample count (the shard layout and seeds stay the same, so a larger
        build extends a smaller one).
    client : distributed.Client, optional
        Use this client. Otherwise ``scheduler`` (an address) or a LocalCluster with
        ``n_workers`` single-threaded worker processes (default: number of cores).
    progress : bool
        A progress line on stderr.

    Returns
    -------
    dict
        The index (also written to ``out/index.json``).

    Raises
    ------
    CatalogError
        If ``out`` holds another spec's catalog, or shards failed (the index then lists what was
        finished; re-running resumes).
    """
    if isinstance(spec, CatalogSpec):
        pass
    elif isinstance(spec, dict):
        spec = validate_spec(spec)
    else:
        spec = load_spec(spec)
    if samples is not None:
        if int(samples) < 1:
            raise ValueError(f"samples = {samples!r} is not allowed; it must be >= 1")
        spec = spec.with_samples(int(samples))
    if n_workers is not None and int(n_workers) < 1:
        raise ValueError(f"workers = {n_workers!r} is not allowed; it must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.part"):
        stale.unlink()
    keep, todo = plan_build(spec, out)
    previous = _read_index(out)
    if not todo and previous is not None and previous.get("complete") and \
            sorted(e["shard"] for e in previous.get("shards", [])) == sorted(keep):
        # nothing to do: no cluster, and the index (with its build record) is left as it is
        if progress:
            sys.stderr.write(f"{spec.name}: all {len(keep)} shards already built\n")
        return previous
    # wall time of earlier runs of a resumed build (shards they finished are kept)
    earlier_wall = float(previous.get("build_wall_s") or 0.0) if previous is not None and keep else 0.0
    shards = list(keep.values())
    errors = []
    t0 = time.perf_counter()
    with dask_client(client, scheduler=scheduler, n_workers=n_workers) as c:
        info = client_info(c)
        _write_index(out, _index(spec, shards, complete=not todo, client_info=info))
        done_samples = 0
        total = sum(n for _, n in todo)
        if progress and not todo:
            sys.stderr.write(f"{spec.name}: all {len(keep)} shards already built\n")
        tasks = [(shard, (spec.raw, shard, count, str(out))) for shard, count in todo]
        for k, (shard, entry) in enumerate(run_tasks(c, build_shard, tasks), 1):
            if isinstance(entry, Exception):  # reported per shard, the build goes on
                errors.append((shard, f"{type(entry).__name__}: {entry}"))
                continue
            shards.append(entry)
            done_samples += entry["samples"]
            _write_index(out, _index(spec, shards, complete=False, client_info=info))
            if progress:
                rate = done_samples / max(time.perf_counter() - t0, 1e-9)
                sys.stderr.write(f"\r{spec.name}: {k}/{len(todo)} shards to build ({len(keep)} kept), "
                                 f"{done_samples}/{total} samples, {rate:.0f} samples/s")
                sys.stderr.flush()
        if progress and todo:
            sys.stderr.write("\n")
    index = _index(spec, shards, complete=not errors, client_info=info)
    index["build_wall_s"] = earlier_wall + time.perf_counter() - t0
    _write_index(out, index)
    if errors:
        lines = "; ".join(f"shard {s}: {e}" for s, e in errors)
        raise CatalogError(f"{len(errors)} of {len(spec.shard_counts())} shards failed ({lines}); "
                           "the finished shards are kept: run the same build again to resume")
    return index


def _split_of(sample, seed, fractions):
    """Deterministic split (0 train, 1 validation, 2 test) of sample ids (splitmix64 hash)."""
    offset = np.uint64((int(seed) * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        z = np.asarray(sample, dtype=np.uint64) + offset
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / 2.0**53
    edges = np.cumsum(fractions)
    return np.searchsorted(edges / edges[-1], u, side="right").astype(np.int8)


SPLITS = ("train", "validation", "test")
_OPEN_CATALOGS: dict = {}


def open_catalog(out, *, split=None, fractions=SPLIT_FRACTIONS, chunks=None, verify=False, quantify=False):
    """Open a built catalog as one lazy, dask-backed Dataset.

    Parameters
    ----------
    out : path
        Catalog folder with ``index.json``.
    split : {"train", "validation", "test"}, optional
        Only that split. Splits are a fixed hash of the sample id (and the catalog seed), so they
        never change when a catalog is resumed or extended.
    fractions : tuple of 3 floats
        Train, validation and test fractions.
    chunks : dict, optional
        Dask chunks (default: one chunk per shard).
    verify : bool
        Check every shard's SHA-256 against the index first.
    quantify : bool
        Return pint-backed variables (``ds.pint.quantify()``).

    Returns
    -------
    xarray.Dataset
        Dims ``sample``, ``species``, ``variable``; inputs (n_H, dt, initial_*), targets
        (temperature, abundance), timescales (tau_eps, tau_sign, tau_capped), flags (success,
        status, substeps) and a ``split`` variable (0 train, 1 validation, 2 test).
    """
    out = Path(out)
    index = _read_index(out)
    if index is None:
        raise FileNotFoundError(f"{out} has no {INDEX_NAME}: not a thermoemu catalog (build it with thermoemu build)")
    if not index.get("complete"):
        raise CatalogError(f"{out}: the build is incomplete ({index.get('samples_written')} of {index.get('samples')} "
                           "samples); run the same build again to finish it")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split = {split!r} is not allowed; choose one of {', '.join(SPLITS)}")
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions = {fractions!r}: need three non-negative numbers with a positive sum")
    files = []
    for e in index["shards"]:
        path = out / e["file"]
        if verify and file_sha256(path) != e["sha256"]:
            raise CatalogError(f"{path}: checksum differs from the index; rebuild it by re-running the build")
        files.append(path)
    # One set of open shard files per catalog state and chunking, shared by every Dataset handed
    # out: HDF5 (netCDF4 1.7.x wheels, reproduced here) can crash when the same file is opened a
    # second time in one process and one of the handles is later closed.
    key = (str(out.resolve()), hashlib.sha256(json.dumps(index, sort_keys=True).encode()).hexdigest(),
           json.dumps(chunks or {}, sort_keys=True))
    ds = _OPEN_CATALOGS.get(key)
    if ds is None:
        ds = xr.open_mfdataset(files, engine="netcdf4", combine="nested", concat_dim="sample",
                               data_vars="minimal", coords="minimal", compat="override", chunks=chunks or {},
                               combine_attrs="drop_conflicts", parallel=False)
        _OPEN_CATALOGS[key] = ds
    ds = ds.copy()
    seed = int(index["spec"]["seed"])
    split_codes = ds["sample"].copy(data=_split_of(ds["sample"].values, seed, fractions))
    ds = ds.assign(split=split_codes.assign_attrs(flag_values=np.array([0, 1, 2], np.int8),
                                                  flag_meanings="train validation test"))
    ds.attrs.pop("shard", None)
    ds.attrs.update({"catalog": index["name"], "spec_sha256": index["spec_sha256"],
                     "rate_set_version": index["rate_set_version"], "samples": index["samples"]})
    if split is not None:
        ds = ds.isel(sample=np.nonzero(ds["split"].values == SPLITS.index(split))[0])
    if quantify:
        ds = ds.pint.quantify()
    return ds


__all__ = ["CatalogError", "build_catalog", "build_shard", "open_catalog", "plan_build", "shard_rng", "write_shard",
           "SPLITS", "SPLIT_FRACTIONS"]
