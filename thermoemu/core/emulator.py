"""What every emulator shares: the out-of-domain policy, options, the reference fallback, status codes
and the per-process model cache.

An emulator is a :class:`~thermoemu.core.protocols.Stepper` over a loaded model set. Cells outside
the trained domain and cells with non-finite output are handled by one policy
(:data:`OUT_OF_DOMAIN_POLICIES`): advanced by the reference solver of the model set's network (``"reference"``,
the default), returned as NaN and flagged (``"flag"``), or refused (``"raise"``). Nothing comes back
NaN without ``success = False`` and a status code of :data:`FALLBACK_STATUS`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

__all__ = ["OUT_OF_DOMAIN_POLICIES", "OutOfDomainError", "FALLBACK_STATUS", "check_choice", "EmulatorBase",
           "apply_fallback", "cached_model", "resolve_model"]

OUT_OF_DOMAIN_POLICIES = ("reference", "flag", "raise")
#: Status codes the shared policy sets (each emulator's table words them for its reference solver).
FALLBACK_STATUS = {"emulated": 0, "reference": 2, "flag": 3, "nonfinite": 4, "failed": 5}
#: Relative slack on the trained ranges (the guard is about extrapolation, not round-off).
RANGE_SLACK = 1e-6


class OutOfDomainError(ValueError):
    """Raised by ``out_of_domain="raise"`` for cells outside the trained ranges."""


def check_choice(name, value, allowed):
    """Raise ValueError naming ``name``, ``value`` and the allowed values unless ``value in allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} = {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def resolve_model(model, default_dir):
    """The folder of a model set.

    ``None`` or ``"default"`` -> ``default_dir`` (the set shipped with the package); the bare name of
    another set shipped beside it (a folder next to ``default_dir``, e.g. ``"os25-deeponet"``) -> that
    folder, unless a folder of that name exists in the working directory; anything else -> the path.
    """
    if model is None or model == "default":
        return Path(default_dir)
    path = Path(model)
    shipped = Path(default_dir).parent / str(model)
    if isinstance(model, str) and len(path.parts) == 1 and not path.exists() and shipped.is_dir():
        return shipped
    return path


class EmulatorBase:
    """Options shared by the emulators: ``out_of_domain`` and :meth:`with_options`.

    Subclasses list further options in ``_OPTIONS`` as ``{name: allowed values or None}``; values
    that are ``None`` in a :meth:`with_options` call keep the current setting.
    """

    _OPTIONS: dict = {"out_of_domain": OUT_OF_DOMAIN_POLICIES}

    def _set_options(self, **options):
        for name, value in options.items():
            allowed = self._OPTIONS[name]
            if allowed is not None:
                check_choice(name, value, allowed)
            setattr(self, name, value)

    def with_options(self, **options):
        """A shallow copy sharing the loaded models, with other options (``None`` keeps the current one)."""
        unknown = sorted(set(options) - set(self._OPTIONS))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; {type(self).__name__} takes {sorted(self._OPTIONS)}")
        new = copy.copy(self)
        new._set_options(**{k: v for k, v in options.items() if v is not None})
        return new

    def raise_out_of_domain(self, out_of_domain, describe):
        """With ``out_of_domain="raise"``: raise :class:`OutOfDomainError` if any cell is out of domain;
        ``describe(k)`` words cell ``k``."""
        if self.out_of_domain == "raise" and out_of_domain.any():
            k = int(np.argmax(out_of_domain))
            raise OutOfDomainError(f"{int(out_of_domain.sum())} cell(s) outside the trained domain, e.g. cell {k}: "
                                   f"{describe(k)}; use out_of_domain='reference' or 'flag'")


def apply_fallback(policy, x, success, status, out_of_domain, nonfinite, redo_with, *, extras=(), active=None):
    """The shared fallback / flag / status block of every emulator (in place).

    Parameters
    ----------
    policy : {"reference", "flag", "raise"}
    x : ndarray (N, ...)
        The emulated state, cells first (pass ``x.T`` of a variable-first array: a view, written
        through).
    success, status, out_of_domain, nonfinite : ndarray (N,)
        ``success`` and ``status`` are updated; ``nonfinite`` marks in-domain cells whose emulator
        output is not finite.
    redo_with : callable
        ``redo_with(idx) -> (x_new, success_new, extras_new)`` advances cells ``idx`` with the
        reference stepper; ``x_new`` cells first, ``extras_new`` a tuple like ``extras``.
    extras : tuple of ndarray (N,)
        Further per-cell results set by the fallback and NaN where a cell fails or is flagged.
    active : ndarray of bool (N,), optional
        Cells the reference may advance (default all; e.g. dt > 0).
    """
    status[nonfinite] = FALLBACK_STATUS["nonfinite"]
    status[out_of_domain] = FALLBACK_STATUS["reference" if policy == "reference" else "flag"]
    redo = nonfinite | (out_of_domain & (policy == "reference"))
    if active is not None:
        redo &= active
    if redo.any():
        idx = np.flatnonzero(redo)
        x_new, ok, extras_new = redo_with(idx)
        x[idx] = x_new
        for target, values in zip(extras, extras_new):
            target[idx] = values
        failed = idx[~np.asarray(ok, dtype=bool)]
        status[failed] = FALLBACK_STATUS["failed"]
        success[failed] = False
        x[failed] = np.nan
        for target in extras:
            target[failed] = np.nan
    if policy == "flag":
        x[out_of_domain] = np.nan
        for target in extras:
            target[out_of_domain] = np.nan
        success[out_of_domain] = False


_MODELS: dict = {}


def cached_model(factory, model_dir, *, device="cpu", manifest="manifest.json"):
    """The process-wide loaded model set of ``model_dir`` (loaded once per folder, manifest time, device
    and factory): xarray rebuilds accessors for every new object, so loaded models live here."""
    path = Path(model_dir).resolve()
    stamp = path / manifest
    key = (getattr(factory, "__qualname__", repr(factory)), str(path),
           stamp.stat().st_mtime_ns if stamp.exists() else None, str(device))
    if key not in _MODELS:
        _MODELS[key] = factory(path, device=device)
    return _MODELS[key]
