"""State grids without physics: errors, DataArray coercion and checks, dt handling, CF flags and the one
bridge between xarray grids and plain-array steppers.

Every wing builds its state grids with these helpers and applies every :class:`Stepper` through
:func:`apply_stepper`, which works on numpy- and dask-backed grids of any cell dims (dask chunk by
chunk, lazily).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..units import CANONICAL_UNITS, to_units, ureg

__all__ = ["StateError", "as_dataarray", "check_values", "first_index", "dt_dataarray", "is_quantified",
           "flag_attrs", "SUCCESS_FLAGS", "apply_stepper",
           "apply_cell_function"]


class StateError(ValueError):
    """A state grid is malformed or physically invalid; the message names variable and value."""


def as_dataarray(value, name, units, dims):
    """DataArray in canonical ``units`` from scalar / array / Quantity / DataArray input.

    A 1-d plain array gets dim ``cell``; an array of more dims needs ``dims``.
    """
    if isinstance(value, xr.DataArray):
        da = to_units(value, units, name)
    else:
        magnitude = np.asarray(to_units(value, units, name), dtype=float)
        if dims is None:
            if magnitude.ndim == 0:
                dims_ = ()
            elif magnitude.ndim == 1:
                dims_ = ("cell",)
            else:
                raise StateError(
                    f"{name} is a {magnitude.ndim}-d array: pass dims=(...) naming its "
                    f"{magnitude.ndim} dimensions, e.g. dims=('x', 'y', 'z')")
        elif magnitude.ndim == 0:
            dims_ = ()
        else:
            dims_ = tuple(dims)
            if len(dims_) != magnitude.ndim:
                raise StateError(f"{name} has {magnitude.ndim} dimension(s) (shape {magnitude.shape}) "
                                 f"but dims={dims_!r} names {len(dims_)}")
        da = xr.DataArray(magnitude, dims=dims_)
    return da.astype(float).assign_attrs(units=units)


def check_values(da, name, lo, hi, allow_zero=False):
    """Raise :class:`StateError` naming the variable, value, place and allowed range unless every value of
    ``da`` is finite and in ``[lo, hi]`` (and > 0 unless ``allow_zero``)."""
    # cheap reductions first (lazy for dask: only scalars are computed); locate only on failure
    finite = bool(np.isfinite(da).all())
    low_ok = bool((da >= lo).all()) if allow_zero else bool(((da >= lo) & (da > 0)).all())
    if finite and low_ok and bool((da <= hi).all()):
        return
    values = np.asarray(da.values)
    bad_nan = ~np.isfinite(values)
    if bad_nan.any():
        where = first_index(da, bad_nan)
        raise StateError(f"{name} has non-finite value {values[bad_nan].flat[0]} at {where}; "
                         f"allowed range is [{lo:g}, {hi:g}] {CANONICAL_UNITS.get(name.split('(')[0], '')}")
    too_low = values < lo if allow_zero else (values < lo) | (values <= 0)
    too_high = values > hi
    for mask, word in ((too_low, "below"), (too_high, "above")):
        if mask.any():
            where = first_index(da, mask)
            raise StateError(f"{name} = {values[mask].flat[0]:g} at {where} is {word} the allowed range "
                             f"[{lo:g}, {hi:g}] {CANONICAL_UNITS.get(name.split('(')[0], '')}".rstrip())


def first_index(da, mask):
    """The first place where ``mask`` is True, as ``{dim: coordinate or index}`` (for messages)."""
    index = np.argwhere(mask)[0]
    return {d: (str(da[d].values[i]) if d in da.coords else int(i)) for d, i in zip(da.dims, index)} or "the single cell"


def dt_dataarray(dt, like, name="dt"):
    """dt [s] as a DataArray; a plain array must have the cell shape of ``like``."""
    da = to_units(dt, "s", name)
    if not isinstance(da, xr.DataArray):
        arr = np.asarray(da, dtype=float)
        if arr.ndim == 0:
            da = xr.DataArray(arr)
        elif arr.shape == like.shape:
            da = xr.DataArray(arr, dims=like.dims)
        else:
            raise StateError(f"{name} has shape {arr.shape}; a plain array must match the cell shape "
                             f"{like.shape} (dims {like.dims}), or pass an xarray.DataArray")
    if not bool(np.isfinite(da).all()) or bool((da < 0).any()):
        bad = float(da.where(~np.isfinite(da) | (da < 0), drop=True).values.flat[0])
        raise StateError(f"{name} = {bad:g} s is not allowed; {name} must be finite and >= 0 s")
    return da


def is_quantified(ds, names=None):
    """Whether any of ``names`` (default: every data variable) of ``ds`` holds pint data."""
    names = ds.data_vars if names is None else [n for n in names if n in ds]
    return any(isinstance(ds[v].data, ureg.Quantity) for v in names)


#: The table of a per-cell success flag stored as int8.
SUCCESS_FLAGS = {0: "failed", 1: "ok"}


def flag_attrs(table, long_name=None):
    """CF ``flag_values`` / ``flag_meanings`` attributes (and ``long_name`` if given) of a status table
    ``{code: meaning}``: the one place that words status codes for files."""
    codes = sorted(table)
    attrs = {} if long_name is None else {"long_name": long_name}
    attrs.update(flag_values=np.array(codes, np.int8),
                 flag_meanings=" ".join(table[c].replace(" ", "_").replace(",", "") for c in codes))
    return attrs


def _is_cupy(a):
    return type(a).__module__.split(".")[0] == "cupy"


def _as_float(a):
    """A block as a float array: cupy blocks (cupy-backed dask arrays) stay cupy, on their GPU; the rest numpy."""
    return a.astype(float, copy=False) if _is_cupy(a) else np.asarray(a, dtype=float)


def _as_array(a):
    """A stepper's result as an array of its own kind (cupy stays cupy; the rest numpy)."""
    return a if _is_cupy(a) else np.asarray(a)


def _flatten_block(arrays, cell_names):
    """The cells of one block as flat arrays: ``(shape, cells {name: (N,)}, x (n_vars, N), dt (N,))``."""
    *cell_arrays, x, dt = arrays
    shape = np.broadcast_shapes(*(np.shape(a) for a in cell_arrays), np.shape(x)[:-1], np.shape(dt))
    cells = {k: np.broadcast_to(_as_float(a), shape).ravel() for k, a in zip(cell_names, cell_arrays)}
    n_vars = np.shape(x)[-1]
    x_flat = np.broadcast_to(_as_float(x), shape + (n_vars,)).reshape(-1, n_vars).T
    dt_flat = np.broadcast_to(_as_float(dt), shape).ravel()
    return shape, cells, np.ascontiguousarray(x_flat), dt_flat


def _stepper_kernel(*arrays, stepper, cell_names, extra_names, n_vars):
    """Flatten the cells of one block, step them, give them their shape back (the apply_ufunc kernel)."""
    shape, cells, x, dt = _flatten_block(arrays, cell_names)
    res = stepper.step_arrays(cells, x, dt)
    extras = tuple(_as_array(res.extra[k]).reshape(shape) for k in extra_names)
    return (_as_array(res.x).T.reshape(shape + (n_vars,)), _as_array(res.success).reshape(shape),
            _as_array(res.out_of_domain).reshape(shape), _as_array(res.status).reshape(shape)) + extras


def _cell_function_kernel(*arrays, func, cell_names, size):
    shape, cells, x, _ = _flatten_block(arrays + (0.0,), cell_names)
    return np.asarray(func(cells, x)).reshape(shape + (size,))


def apply_cell_function(func, cells, x, *, vector_dim, output_dim, output_size, output_dtype=float):
    """Apply ``func(cells, x) -> (N, output_size)`` cell by cell over xarray inputs (numpy or dask, lazily):
    the bridge for per-cell quantities that are not a step (e.g. the emulator's timescales)."""
    return xr.apply_ufunc(
        _cell_function_kernel, *cells.values(), x,
        input_core_dims=[[]] * len(cells) + [[vector_dim]], output_core_dims=[[output_dim]],
        dask="parallelized", kwargs={"func": func, "cell_names": tuple(cells), "size": output_size},
        output_dtypes=[output_dtype], dask_gufunc_kwargs={"output_sizes": {output_dim: output_size}})


def apply_stepper(stepper, cells, x, dt, *, vector_dim, extra=None):
    """Apply a :class:`Stepper` to xarray inputs: the one numpy / dask bridge of thermoemu.

    Parameters
    ----------
    stepper : Stepper
    cells : dict of str -> xarray.DataArray
        Per-cell parameters over the cell dims (canonical units).
    x : xarray.DataArray
        The state over the cell dims and ``vector_dim`` (all of ``vector_dim`` in one chunk if dask),
        rows in the order of ``stepper.variables``.
    dt : xarray.DataArray
        [s], broadcastable to the cells.
    vector_dim : str
        The dim of ``x`` that runs over variables (``species``, ``isotope``).
    extra : dict of str -> dtype, optional
        Names (and dtypes) of ``StepResult.extra`` entries to return.

    Returns
    -------
    x_new, success, out_of_domain, status : xarray.DataArray
    extras : dict of str -> xarray.DataArray
        Lazy (dask) if the inputs are.
    """
    extra = dict(extra or {})
    n_vars = x.sizes[vector_dim]
    outputs = xr.apply_ufunc(
        _stepper_kernel, *cells.values(), x, dt,
        input_core_dims=[[]] * len(cells) + [[vector_dim], []],
        output_core_dims=[[vector_dim], [], [], []] + [[]] * len(extra),
        dask="parallelized",
        kwargs={"stepper": stepper, "cell_names": tuple(cells), "extra_names": tuple(extra), "n_vars": n_vars},
        output_dtypes=[float, bool, bool, np.int8] + list(extra.values()),
        dask_gufunc_kwargs={"output_sizes": {vector_dim: n_vars}})
    x_new, ok, ood, status, *extras = outputs
    return x_new, ok, ood, status, dict(zip(extra, extras))
