"""``thermoemu apply``: step every cell of a simulation snapshot and write it back in the snapshot's convention.

The input is read in slabs along its first cell dimension (about ``chunk_cells`` cells each), one dask
task per slab on a LocalCluster (default) or an existing scheduler. A task reads its slab from the
input file itself, converts it to a state grid (:mod:`.conventions`), steps it with the default models
(or a model folder, or the reference solver), converts it back and writes it as a part file under a
temporary name, renamed when complete. So memory is bounded by the slab, not by the snapshot, and a
run that is killed and started again with the same arguments computes only the missing slabs: the
parts of the first run are kept when their run key (input file, its size and time stamp, dt, model,
options, slab plan and package version) matches. When every part is there they are joined, slab by
slab, into the output (``.nc`` or ``.zarr``): the input's variables in its units, the new species and
energy, per-cell CF flags (``success``, ``emu_status``, ``emu_out_of_domain``) and provenance.

The input file is only read. A dt is a quantity (``"1e10 s"``), a free-fall fraction (``"0.01 t_ff"``)
or the name of a per-cell field (a simulation's own time step; code time units unless it has a
``units`` attribute).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..core.cluster import client_info, dask_client, run_tasks
from ..core.emulator import FALLBACK_STATUS
from ..core.files import file_sha256, package_version, write_json_atomic
from ..core.grid import StateError, flag_attrs
from ..units import to_units
from .conventions import as_dataset, detect_convention

__all__ = ["apply_snapshot", "open_snapshot", "parse_dt", "ApplyError"]

#: Default cells per slab (one dask task each).
CHUNK_CELLS = 131072
PARTS_SUFFIX = ".parts"
_RUN_FILE = "run.json"


class ApplyError(RuntimeError):
    """An apply run that cannot go on (another run's parts in the way, an unwritable output, failed slabs)."""


# -- input -----------------------------------------------------------------------------------------
def _is_hdf5(path):
    return path.suffix.lower() in (".h5", ".hdf5", ".hdf")


def open_snapshot(source, *, chunks=None):
    """A snapshot as an xarray Dataset (lazy for netCDF / zarr files).

    Parameters
    ----------
    source : path, xarray.Dataset, mapping of arrays or yt dataset
        ``.nc`` (netCDF, opened lazily with its chunks), ``.zarr`` (opened lazily), ``.h5`` / ``.hdf5``
        with Grackle-named datasets at the root (code units as root attributes; otherwise the file is
        handed to yt, e.g. a Gadget / GIZMO snapshot), a Dataset, ``{name: array}`` or a yt dataset or
        data object (:func:`thermoemu.snapshots.yt.from_yt`).
    """
    if isinstance(source, xr.Dataset):
        return source
    if isinstance(source, dict):
        return as_dataset(source)
    if hasattr(source, "field_list") or hasattr(source, "ds"):  # a yt dataset or data object
        from .yt import from_yt
        return from_yt(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"snapshot {str(path)!r} not found")
    if _is_zarr(path):
        return xr.open_zarr(path, chunks=chunks if chunks is not None else {})
    if _is_hdf5(path):
        ds = _read_hdf5(path)
        if ds is not None:
            return ds
        import yt  # a simulation code's own HDF5 layout: yt's frontends read it

        from .yt import from_yt
        return from_yt(yt.load(str(path)))
    return xr.open_dataset(path, engine="netcdf4", chunks=chunks if chunks is not None else {})


def _read_hdf5(path, selection=None):
    """Grackle-named root datasets of an HDF5 file (``None`` if it has none), optionally a slab of them."""
    import h5py

    from .grackle import SPECIES_FIELDS
    with h5py.File(path, "r") as f:
        if SPECIES_FIELDS["H"][0] not in f:
            return None
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v)
                 for k, v in f.attrs.items()}
        data = {}
        for name, item in f.items():
            if not isinstance(item, h5py.Dataset):
                continue
            arr = item[selection] if selection is not None and item.ndim else item[()]
            dims = tuple(item.attrs.get("dims", "").split()) if "dims" in item.attrs else None
            if not dims or len(dims) != np.ndim(arr):
                dims = ("cell",) if np.ndim(arr) == 1 else ("x", "y", "z")[: np.ndim(arr)]
            var_attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in item.attrs.items() if k != "dims"}
            data[name] = xr.Variable(dims, np.asarray(arr), var_attrs)
    return xr.Dataset(data, attrs=attrs)


def _cell_dims(ds):
    names = [n for n in ("HI_density", "n_H", "density", "temperature") if n in ds.data_vars]
    dims = tuple(ds[names[0]].dims)
    if not dims:
        raise StateError("the snapshot holds a single cell with no dimension; apply steps grids (use ds.emu.step)")
    return dims


def parse_dt(dt):
    """``{"kind": "seconds" | "t_ff" | "field", ...}`` from a dt given as a number [s], a quantity string, a
    free-fall fraction ("0.01 t_ff") or a field name."""
    if isinstance(dt, dict):
        return dt
    if isinstance(dt, (int, float, np.floating)):
        value = float(dt)
    else:
        text = str(dt).strip()
        if text.endswith("t_ff"):
            try:
                fraction = float(text[:-4].strip() or 1.0)
            except ValueError:
                raise ValueError(f"dt = {dt!r}: a free-fall fraction looks like '0.01 t_ff'") from None
            if not (np.isfinite(fraction) and fraction > 0):
                raise ValueError(f"dt = {dt!r}: the free-fall fraction must be finite and > 0")
            return {"kind": "t_ff", "value": fraction}
        try:
            value = float(to_units(text, "s", "dt"))
        except Exception:
            if text.isidentifier():
                return {"kind": "field", "name": text}
            raise ValueError(f"dt = {dt!r} is neither a time ('1e10 s'), a free-fall fraction ('0.01 t_ff') "
                             "nor a field name") from None
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"dt = {value!r} s is not allowed; dt must be finite and >= 0 s")
    return {"kind": "seconds", "value": value}


def _dt_of(spec, fields, state, convention):
    if spec["kind"] == "seconds":
        return spec["value"]
    if spec["kind"] == "t_ff":
        from ..primordial.physics.network import free_fall_time
        return (spec["value"] * xr.apply_ufunc(free_fall_time, state["n_H"])).assign_attrs(units="s")
    name = spec["name"]
    if name not in fields.data_vars:
        raise StateError(f"dt field {name!r} is not in the snapshot; it has {sorted(map(str, fields.data_vars))}")
    da = fields[name]
    cells = state["temperature"]
    if tuple(da.dims) != tuple(cells.dims) or da.shape != cells.shape:
        raise StateError(f"dt field {name!r} has dims {da.dims} and shape {da.shape}; it must match the cells, "
                         f"dims {cells.dims} and shape {cells.shape}")
    if "units" in da.attrs:
        return to_units(da, "s", name)
    return da * convention.time_units(fields)


# -- one slab ----------------------------------------------------------------------------------------
def _is_zarr(path):
    return path.suffix == ".zarr" or (path / ".zgroup").exists() or (path / "zarr.json").exists()


def _slab_readable(path):
    """Whether a worker can read one slab of the file by itself (netCDF, zarr, Grackle-named HDF5)."""
    if _is_hdf5(path):
        import h5py

        from .grackle import SPECIES_FIELDS
        with h5py.File(path, "r") as f:
            return SPECIES_FIELDS["H"][0] in f
    return True


def _load_slab(source, dim, start, stop):
    if isinstance(source, xr.Dataset):
        return source.isel({dim: slice(start, stop)}).load()
    path = Path(source)
    if _is_hdf5(path):
        return _read_hdf5(path, np.s_[start:stop])   # Grackle-named (others are stepped in the parent)
    # no dask here: inside a dask task a dask-backed load would go back through the cluster's scheduler;
    # the backends' lazy arrays read just the slab
    ds = xr.open_zarr(path, chunks=None) if _is_zarr(path) else xr.open_dataset(path, engine="netcdf4", chunks=None)
    with ds:
        return ds.isel({dim: slice(start, stop)}).load()


def step_fields(fields, dt, *, model="default", reference=False, update=None, out_of_domain="reference",
                convention=None):
    """Step the cells of an in-memory snapshot (its convention's fields) and give them back in that convention.

    Returns the new fields plus ``success``, ``emu_status`` (CF flags of the stepper's status table) and
    ``emu_out_of_domain`` per cell.
    """
    convention = detect_convention(fields, convention)
    spec = parse_dt(dt)
    state = convention.to_state(fields)
    dt_cells = _dt_of(spec, fields, state, convention)
    if reference:
        from ..primordial.reference import integrate_state
        from ..solvers.rosenbrock import STATUS
        out = integrate_state(state, dt_cells)
        status = out["status"].astype(np.int8).assign_attrs(flag_attrs(STATUS, "reference solver status"))
        ood = xr.zeros_like(out["success"])
        new_state = out.drop_vars(["status", "substeps", "saha_equilibrium"])
    else:
        kwargs = {"update": update} if update is not None else {}
        out = state.emu.step(dt_cells, model=model, out_of_domain=out_of_domain, **kwargs)
        status, ood = out["emu_status"], out["emu_out_of_domain"]
        new_state = out.drop_vars(["emu_status", "emu_out_of_domain"])
    result = convention.from_state(new_state.drop_vars("success"), fields)
    result["success"] = out["success"].astype(np.int8).assign_attrs(
        long_name="step succeeded (0: flagged, values NaN)", flag_values=np.array([0, 1], np.int8),
        flag_meanings="failed ok")
    result["emu_status"] = status.astype(np.int8)
    result["emu_out_of_domain"] = ood.astype(np.int8).assign_attrs(
        long_name="cell outside the trained domain", flag_values=np.array([0, 1], np.int8),
        flag_meanings="inside outside")
    return result


def _slab_task(source, dim, start, stop, options, part, threads=1):
    """Read, step and write one slab (runs on a dask worker: one torch thread); returns its counts."""
    t0 = time.perf_counter()
    if threads:
        import torch
        torch.set_num_threads(threads)
    import thermoemu  # noqa: F401 - registers the chemistries and ds.emu in the worker
    fields = _load_slab(source, dim, start, stop)
    out = step_fields(fields, options["dt"], model=options["model"], reference=options["reference"],
                      update=options["update"], out_of_domain=options["out_of_domain"],
                      convention=options["convention"])
    part = Path(part)
    tmp = part.with_name(part.name + ".tmp")
    out.to_netcdf(tmp, engine="netcdf4")
    os.replace(tmp, part)
    status = out["emu_status"].values.ravel()
    counts = {"cells": int(status.size), "failed": int((out["success"].values == 0).sum()),
              "out_of_domain": int(out["emu_out_of_domain"].values.sum()),
              "status": {int(k): int(v) for k, v in zip(*np.unique(status, return_counts=True))}}
    del fields, out
    _release_memory()
    return {**counts, "wall_s": time.perf_counter() - t0}


def _release_memory():
    """Hand the slab's freed heap back to the OS (glibc ``malloc_trim``), so a worker's resident memory stays
    that of one slab however many slabs it has done (the LocalClusters here leave glibc's own trimming off:
    :func:`thermoemu.core.cluster.worker_environ`)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# -- the run ----------------------------------------------------------------------------------------
def _run_key(source, options, plan):
    path = Path(source)
    stat = path.stat() if path.is_file() else None
    ident = {"input": str(path.resolve()), "size": stat.st_size if stat else None,
             "mtime_ns": stat.st_mtime_ns if stat else None, "options": options, "plan": plan,
             "thermoemu": package_version()}
    if options.get("model") not in (None, "default") and not options.get("reference"):
        manifest = Path(options["model"]) / "manifest.json"
        ident["model_manifest"] = file_sha256(manifest) if manifest.is_file() else None
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _check_writable(output):
    parent = output.resolve().parent
    if not parent.exists():
        raise ApplyError(f"output folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ApplyError(f"output {str(output)!r} is not writable (no write permission in {str(parent)!r})")


def apply_snapshot(source, dt, output, *, model="default", reference=False, update=None, out_of_domain="reference",
                   convention=None, chunk_cells=CHUNK_CELLS, client=None, scheduler=None, n_workers=None,
                   progress=True, stop_after=None):
    """Step every cell of a snapshot by dt and write the result (see the module docstring).

    Parameters
    ----------
    source : path
        The snapshot (``.nc``, ``.zarr``, ``.h5``; see :func:`open_snapshot`). An in-memory Dataset works too
        (stepped slab by slab in this process).
    dt : str or float
        ``"1e10 s"``, ``"0.01 t_ff"``, a field name, or seconds.
    output : path
        ``.nc`` or ``.zarr``.
    model, update, out_of_domain :
        As :meth:`thermoemu.accessor.EmuAccessor.step`; ``reference=True`` uses the reference solver instead.
    convention : str, optional
        ``"grackle"`` or ``"thermoemu"``; detected from the fields by default.
    chunk_cells : int
        Cells per slab (memory per worker grows with it).
    client, scheduler, n_workers :
        A ``distributed.Client``, a scheduler address, or the worker processes of a new LocalCluster
        (default: every core); ``n_workers=0`` steps the slabs in this process.
    progress : bool
        A progress bar (tqdm) on stderr.
    stop_after : int, optional
        Stop (raise KeyboardInterrupt) after this many slabs: what an interruption looks like, for tests.

    Returns
    -------
    dict
        The summary: cells, wall_s, cells_per_s, parts computed and kept, failed, out_of_domain, fallback
        (cells advanced by the reference solver), status counts.
    """
    output = Path(output)
    if output.suffix not in (".nc", ".zarr"):
        raise ValueError(f"output = {str(output)!r}: write .nc (netCDF) or .zarr")
    if chunk_cells < 1:
        raise ValueError(f"chunk_cells = {chunk_cells!r}; must be >= 1")
    _check_writable(output)
    spec = parse_dt(dt)
    fields = open_snapshot(source)
    conv = detect_convention(fields, convention)
    dims = _cell_dims(fields)
    dim = dims[0]
    per_row = int(np.prod([fields.sizes[d] for d in dims[1:]])) if len(dims) > 1 else 1
    rows = max(1, chunk_cells // per_row)
    plan = [(s, min(s + rows, fields.sizes[dim])) for s in range(0, fields.sizes[dim], rows)]
    options = {"dt": spec, "model": str(model), "reference": bool(reference), "update": update,
               "out_of_domain": out_of_domain, "convention": conv.name}
    path_like = isinstance(source, (str, os.PathLike))
    # slabs are read by the workers from .nc / .zarr / Grackle HDF5; a file only yt reads is already in
    # memory here (from_yt loads it whole), so it is stepped here rather than re-read once per slab
    in_memory = not path_like or not _slab_readable(Path(source))
    key = _run_key(source if path_like else output, options, plan)
    parts_dir = output.with_name(output.name + PARTS_SUFFIX)
    run_file = parts_dir / _RUN_FILE
    if parts_dir.exists():
        previous = json.loads(run_file.read_text()) if run_file.is_file() else {}
        if previous.get("run_key") != key:
            raise ApplyError(f"{parts_dir} holds the parts of another run (other input, dt, model or options); "
                             "remove it, or run again with that run's arguments to finish it")
    parts_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_file, {"run_key": key, "options": options, "plan": plan, "input": str(source)})
    for stale in parts_dir.glob("*.tmp"):
        stale.unlink()
    part_of = {i: parts_dir / f"part-{i:05d}.nc" for i in range(len(plan))}
    todo = [i for i in range(len(plan)) if not part_of[i].exists()]
    kept = len(plan) - len(todo)
    bar = _progress(len(plan), kept, progress)
    counts, errors = [], []
    t0 = time.perf_counter()
    info = None

    def record(i, result):
        if isinstance(result, Exception):
            errors.append((i, result))
        else:
            counts.append(result)
        if bar is not None:
            bar.update(1)
        if stop_after is not None and len(counts) >= stop_after:
            raise KeyboardInterrupt(f"stopped after {stop_after} slabs (stop_after)")

    if todo and (in_memory or n_workers == 0):
        for i in todo:
            try:
                result = _slab_task(fields if in_memory else source, dim, *plan[i], options, str(part_of[i]),
                                    threads=None)
            except (StateError, ValueError) as exc:
                result = exc
            record(i, result)
    elif todo:
        with dask_client(client, scheduler=scheduler, n_workers=n_workers) as c:
            info = client_info(c)
            tasks = [(i, (str(Path(source).resolve()), dim, *plan[i], options, str(part_of[i]))) for i in todo]
            for i, result in run_tasks(c, _slab_task, tasks):
                record(i, result)
    if bar is not None:
        bar.close()
    if errors:
        i, exc = errors[0]
        if isinstance(exc, (StateError, ValueError)):
            raise type(exc)(f"slab {i} ({dim} {plan[i][0]}..{plan[i][1] - 1}): {exc}") from exc
        raise ApplyError(f"{len(errors)} of {len(plan)} slabs failed (first: slab {i}: {type(exc).__name__}: {exc}); "
                         "the finished parts are kept: run the same command again to resume") from exc
    compute_s = time.perf_counter() - t0
    _assemble(part_of, [stop - start for start, stop in plan], dim, output, source, options, key)
    shutil.rmtree(parts_dir)
    wall = time.perf_counter() - t0
    status = {}
    for c in counts:
        for k, v in c["status"].items():
            status[k] = status.get(k, 0) + v
    cells = int(sum(c["cells"] for c in counts))
    summary = {"cells": cells, "parts": len(plan), "parts_computed": len(counts), "parts_kept": kept,
               "wall_s": wall, "compute_s": compute_s, "cells_per_s": cells / compute_s if compute_s > 0 else None,
               "failed": int(sum(c["failed"] for c in counts)),
               "out_of_domain": int(sum(c["out_of_domain"] for c in counts)),
               "fallback": 0 if reference else int(sum(status.get(FALLBACK_STATUS[k], 0)
                                                        for k in ("reference", "nonfinite"))),
               "status": status, "cluster": info, "output": str(output)}
    return summary


def _progress(total, done, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=done, unit="slab", desc="apply", file=sys.stderr)


def _provenance(options, source, key):
    return {"thermoemu_version": package_version(), "thermoemu_apply_dt": json.dumps(options["dt"]),
            "thermoemu_apply_model": "reference solver" if options["reference"] else options["model"],
            "thermoemu_apply_update": str(options["update"] or "the model set's default"),
            "thermoemu_apply_out_of_domain": options["out_of_domain"],
            "thermoemu_apply_convention": options["convention"],
            "thermoemu_apply_input": str(source) if isinstance(source, (str, os.PathLike)) else "memory",
            "thermoemu_apply_run_key": key}


def _assemble(part_of, sizes, dim, output, source, options, key):
    """Join the parts (``sizes``: each one's length along ``dim``, from the slab plan), slab by slab, into the
    output (written under a temporary name, then renamed)."""
    files = [part_of[i] for i in sorted(part_of)]
    tmp = output.with_name(output.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if output.suffix == ".zarr":
        ds = xr.open_mfdataset(files, engine="netcdf4", combine="nested", concat_dim=dim, data_vars="minimal",
                               coords="minimal", compat="override", combine_attrs="override", parallel=False)
        try:
            ds.attrs.update(_provenance(options, source, key))
            ds.to_zarr(tmp, mode="w")
        finally:
            ds.close()
    else:
        _join_netcdf(files, [sizes[i] for i in sorted(part_of)], dim, tmp, _provenance(options, source, key))
    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    os.replace(tmp, output)


def _join_netcdf(files, sizes, dim, target, attrs):
    """Concatenate netCDF part files (``sizes``: their lengths along ``dim``) along ``dim`` into ``target`` by
    copying their variables' stored values hyperslab by hyperslab (no decoding: types, fill values and
    attributes stay as the parts have them); variables without ``dim`` come from the first part."""
    import netCDF4

    with netCDF4.Dataset(files[0]) as first:
        with netCDF4.Dataset(target, "w", format=first.data_model) as out:
            out.setncatts({**{k: first.getncattr(k) for k in first.ncattrs()}, **attrs})
            for name, d in first.dimensions.items():
                out.createDimension(name, sum(sizes) if name == dim else len(d))
            for name, var in first.variables.items():
                fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
                filters = var.filters() or {}
                new = out.createVariable(name, var.datatype, var.dimensions, fill_value=fill if fill is not None else False,
                                         zlib=bool(filters.get("zlib")), complevel=filters.get("complevel", 4),
                                         shuffle=bool(filters.get("shuffle")))
                new.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
                new.set_auto_maskandscale(False)
                if dim not in var.dimensions:
                    var.set_auto_maskandscale(False)
                    new[...] = var[...]
            start = 0
            for path, size in zip(files, sizes, strict=True):
                with netCDF4.Dataset(path) as part:
                    for name, var in part.variables.items():
                        if dim in var.dimensions:
                            var.set_auto_maskandscale(False)
                            axis = var.dimensions.index(dim)
                            index = tuple(slice(start, start + size) if k == axis else slice(None)
                                          for k in range(var.ndim))
                            out.variables[name][index] = var[...]
                start += size
