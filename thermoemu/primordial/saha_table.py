"""The high-density Saha-equilibrium adiabatic table (Ono & Sugimura 2025, Appendix B).

Above n_H = 1e18 cm^-3 the chemistry/thermal stage of a step conserves the total energy per H
nucleus E_tot = U + E_chem and ends in Saha equilibrium, so (T, y) are functions of
(n_H, E_tot). The table holds log10 T and log10 y(i) on a grid of n_H (1000 log-spaced points,
1e18 .. 1e22 cm^-3) and E_tot (1000 log-spaced points spanning the energies of 10 K .. 1e5 K);
a lookup is bilinear interpolation in (log n_H, log E_tot), vectorized over cells with numpy or
cupy. Points outside the table fall back to the direct solve (:func:`saha_state`) and are
flagged.

The table is built by ``thermoemu saha-table`` (about a minute on one core) or on first use, and
cached under the user's cache directory (``$THERMOEMU_CACHE``, else ``$XDG_CACHE_HOME/thermoemu``,
else ``~/.cache/thermoemu``) as netCDF with its build parameters in the attributes; a file whose
parameters differ is rebuilt, never silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..core.files import cache_dir, package_version
from ..core.protocols import StepResult
from .physics.network import SPECIES, VARIABLES, as_cells
from .physics.saha import (
    DEFAULT_PARTITION_FUNCTIONS,
    PARTITION_FUNCTIONS,
    log_saha_abundances,
    saha_abundances,
    saha_state,
    total_energy,
)

__all__ = ["SahaTableSpec", "SahaTable", "build_saha_table", "load_saha_table", "check_table",
           "SAHA_MIN_DENSITY", "SAHA_MAX_DENSITY", "table_reference"]

#: Above this n_H [cm^-3] cells are advanced in Saha equilibrium (OS25 section 2.1, Appendix B).
SAHA_MIN_DENSITY = 1e18
#: Status codes of the table as a stepper.
SAHA_STATUS = {0: "Saha table", 1: "outside the table, solved directly"}
#: Highest n_H of the table [cm^-3] (protostellar density).
SAHA_MAX_DENSITY = 1e22
TABLE_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SahaTableSpec:
    """Build parameters of a Saha table.

    Parameters
    ----------
    n_points, e_points : int
        Grid points in n_H and in E_tot (OS25: 1000 each).
    n_min, n_max : float
        n_H range [cm^-3].
    t_min, t_max : float
        Temperatures [K] whose energies set the E_tot range (E(t_min) minimized and E(t_max)
        maximized over n_H, so every n_H row covers [t_min, t_max]).
    partition_functions : {"omukai", "rigid_rotor"}
    cv_h2 : {"frozen", "equilibrium", "tgchem"}
        Must match the network's ``cv_h2`` option so that E_tot is continuous at 1e18.
    """

    n_points: int = 1000
    e_points: int = 1000
    n_min: float = SAHA_MIN_DENSITY
    n_max: float = SAHA_MAX_DENSITY
    t_min: float = 10.0
    t_max: float = 1e5
    partition_functions: str = DEFAULT_PARTITION_FUNCTIONS
    cv_h2: str = "frozen"

    def __post_init__(self):
        for name in ("n_points", "e_points"):
            v = getattr(self, name)
            if not (isinstance(v, (int, np.integer)) and v >= 2):
                raise ValueError(f"{name} = {v!r} must be an integer >= 2")
        if not 0 < self.n_min < self.n_max:
            raise ValueError(f"need 0 < n_min < n_max, got n_min = {self.n_min!r}, n_max = {self.n_max!r} cm^-3")
        if not 1.0 <= self.t_min < self.t_max <= 1e6:
            raise ValueError(f"need 1 K <= t_min < t_max <= 1e6 K, got t_min = {self.t_min!r}, t_max = {self.t_max!r}")
        if self.partition_functions not in PARTITION_FUNCTIONS:
            raise ValueError(f"partition_functions = {self.partition_functions!r}; choose one of {PARTITION_FUNCTIONS}")
        if self.cv_h2 not in ("frozen", "equilibrium", "tgchem"):
            raise ValueError(f"cv_h2 = {self.cv_h2!r}; choose 'frozen', 'equilibrium' or 'tgchem'")

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["format_version"] = TABLE_FORMAT_VERSION
        return d

    def key(self):
        """Short hash of the parameters (names the cache file)."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _energy_range(spec):
    n = np.geomspace(spec.n_min, spec.n_max, spec.n_points)
    e_lo = total_energy(spec.t_min, saha_abundances(n, spec.t_min, spec.partition_functions), spec.cv_h2)
    e_hi = total_energy(spec.t_max, saha_abundances(n, spec.t_max, spec.partition_functions), spec.cv_h2)
    return float(e_lo.min()), float(e_hi.max())


def build_saha_table(spec: SahaTableSpec | None = None, *, progress=False, rows_per_block=50):
    """Solve Saha equilibrium at every (n_H, E_tot) node.

    Parameters
    ----------
    spec : SahaTableSpec, optional
    progress : bool
        Print progress to stderr.
    rows_per_block : int
        n_H rows solved together (bounds memory).

    Returns
    -------
    xarray.Dataset
        ``log10_temperature`` (n_H, E_tot) and ``log10_abundance`` (n_H, E_tot, species) on
        coordinates ``log10_n_H`` and ``log10_E_tot`` [log10 erg per H nucleus]; build parameters
        and wall time in the attributes.
    """
    spec = spec or SahaTableSpec()
    t0 = time.perf_counter()
    log_n = np.linspace(np.log10(spec.n_min), np.log10(spec.n_max), spec.n_points)
    e_lo, e_hi = _energy_range(spec)
    log_e = np.linspace(np.log10(e_lo), np.log10(e_hi), spec.e_points)
    log_T = np.empty((spec.n_points, spec.e_points))
    log_y = np.empty((spec.n_points, spec.e_points, len(SPECIES)))
    # the bracket must hold every node: E(t_max) at the densest row is below e_hi
    bounds = (min(1.0, spec.t_min / 2), max(1e7, spec.t_max * 10))
    for start in range(0, spec.n_points, rows_per_block):
        rows = slice(start, min(start + rows_per_block, spec.n_points))
        n = 10.0 ** log_n[rows, None] * np.ones((1, spec.e_points))
        E = np.ones((n.shape[0], 1)) * 10.0 ** log_e[None, :]
        T, _ = saha_state(n, E, partition_functions=spec.partition_functions, cv_h2=spec.cv_h2,
                          temperature_bounds=bounds)
        log_T[rows] = np.log10(T)
        log_y[rows] = np.moveaxis(log_saha_abundances(n, T, spec.partition_functions), 0, -1) / np.log(10.0)
        if progress:
            done = rows.stop
            sys.stderr.write(f"\rsaha table: {done}/{spec.n_points} n_H rows ({100 * done // spec.n_points}%)")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    attrs = {f"spec_{k}": (str(v) if isinstance(v, str) else v) for k, v in spec.as_dict().items()}
    attrs.update(title="Saha-equilibrium adiabatic table (Ono & Sugimura 2025, Appendix B)",
                 spec_key=spec.key(), thermoemu_version=package_version(),
                 build_wall_time_s=round(time.perf_counter() - t0, 2))
    return xr.Dataset(
        {"log10_temperature": (("log10_n_H", "log10_E_tot"), log_T, {"units": "log10 K"}),
         "log10_abundance": (("log10_n_H", "log10_E_tot", "species"), log_y, {"units": "log10 (n(i)/n_H)"})},
        coords={"log10_n_H": ("log10_n_H", log_n, {"units": "log10 cm^-3"}),
                "log10_E_tot": ("log10_E_tot", log_e, {"units": "log10 erg per H nucleus"}),
                "species": list(SPECIES)},
        attrs=attrs)


def _array_module(a):
    try:
        import cupy
        return cupy.get_array_module(a)
    except ImportError:
        return np


class SahaTable:
    """Bilinear lookup of (T, y) from (n_H, E_tot) in log space, numpy or cupy arrays.

    Build one with :func:`load_saha_table` (cached) or from a :func:`build_saha_table` dataset.
    """

    def __init__(self, ds: xr.Dataset, path=None):
        self.dataset = ds
        #: The cache file it came from (None if built in memory).
        self.path = Path(path) if path is not None else None
        self.spec = SahaTableSpec(**{k[5:]: ds.attrs[k] for k in ds.attrs
                                     if k.startswith("spec_") and k not in ("spec_key", "spec_format_version")})
        log_n = ds["log10_n_H"].values
        log_e = ds["log10_E_tot"].values
        self._origin = (float(log_n[0]), float(log_e[0]))
        self._step = (float(log_n[1] - log_n[0]), float(log_e[1] - log_e[0]))
        self._shape = (log_n.size, log_e.size)
        # one array, variables last: log10 T then the six log10 y
        values = np.concatenate([ds["log10_temperature"].values[..., None], ds["log10_abundance"].values], axis=-1)
        self._values = {np: np.ascontiguousarray(values)}

    @property
    def n_range(self):
        """(min, max) n_H [cm^-3]."""
        return 10.0 ** self._origin[0], 10.0 ** (self._origin[0] + self._step[0] * (self._shape[0] - 1))

    @property
    def energy_range(self):
        """(min, max) E_tot [erg per H nucleus]."""
        return 10.0 ** self._origin[1], 10.0 ** (self._origin[1] + self._step[1] * (self._shape[1] - 1))

    def _table(self, xp):
        if xp not in self._values:
            self._values[xp] = xp.asarray(self._values[np])
        return self._values[xp]

    def lookup(self, n_H, total_energy_per_H):
        """Interpolated temperature and abundances.

        Parameters
        ----------
        n_H : array (N,)
            [cm^-3] (numpy or cupy).
        total_energy_per_H : array (N,)
            [erg per H nucleus].

        Returns
        -------
        temperature : array (N,) [K]
        abundance : array (6, N)
        inside : bool array (N,)
            False where (n_H, E_tot) lies outside the table; those cells hold the values of the
            nearest table edge and must not be used (:meth:`state` solves them directly).
        """
        xp = _array_module(n_H)
        u = (xp.log10(n_H) - self._origin[0]) / self._step[0]
        v = (xp.log10(total_energy_per_H) - self._origin[1]) / self._step[1]
        tol = 1e-9
        inside = (u >= -tol) & (u <= self._shape[0] - 1 + tol) & (v >= -tol) & (v <= self._shape[1] - 1 + tol)
        u = xp.clip(u, 0.0, self._shape[0] - 1.0)
        v = xp.clip(v, 0.0, self._shape[1] - 1.0)
        i = xp.minimum(xp.floor(u).astype(np.int64), self._shape[0] - 2)
        j = xp.minimum(xp.floor(v).astype(np.int64), self._shape[1] - 2)
        fu = (u - i)[:, None]
        fv = (v - j)[:, None]
        tab = self._table(xp)
        out = ((1 - fu) * (1 - fv) * tab[i, j] + fu * (1 - fv) * tab[i + 1, j]
               + (1 - fu) * fv * tab[i, j + 1] + fu * fv * tab[i + 1, j + 1])
        return 10.0 ** out[:, 0], 10.0 ** out[:, 1:].T, inside

    def state(self, n_H, total_energy_per_H):
        """Like :meth:`lookup`, with cells outside the table solved directly (numpy); returns
        ``(temperature, abundance, inside)``."""
        T, y, inside = self.lookup(n_H, total_energy_per_H)
        if not bool(inside.all()):
            xp = _array_module(n_H)
            out = ~inside
            idx = np.flatnonzero(_to_numpy(out))
            T_o, y_o = saha_state(_to_numpy(n_H)[idx], _to_numpy(total_energy_per_H)[idx],
                                  partition_functions=self.spec.partition_functions, cv_h2=self.spec.cv_h2)
            T[out] = xp.asarray(T_o)
            y[:, out] = xp.asarray(y_o)
        return T, y, inside

    def step(self, n_H, x):
        """Chemistry/thermal stage at fixed n_H: E_tot of ``x`` conserved, Saha equilibrium.

        Parameters
        ----------
        n_H : ndarray (N,)
            [cm^-3]
        x : ndarray (7, N)
            Abundances (H, H2, e-, H+, H-, H2+) and temperature [K].

        Returns
        -------
        x_new : ndarray (7, N)
        inside : ndarray of bool (N,)
            False where the state lay outside the table and was solved directly.
        """
        E = total_energy(_to_numpy(x[6]), _to_numpy(x[:6]), self.spec.cv_h2)
        xp = _array_module(n_H)
        T, y, inside = self.state(n_H, xp.asarray(E))
        return xp.concatenate([y, T[None]]), inside

    # -- as a Stepper ------------------------------------------------------------------------
    chemistry = "primordial"
    variables = VARIABLES
    status = SAHA_STATUS
    label = "Saha table"

    def step_arrays(self, cells, x, dt):
        """The :class:`~thermoemu.core.protocols.Stepper` form of :meth:`step`: cells with dt > 0 are set to
        Saha equilibrium at their E_tot (dt = 0 leaves a cell as it is); ``out_of_domain`` marks cells below
        1e18 cm^-3, where the gas is not in equilibrium (they are advanced all the same)."""
        n_H = as_cells(cells)
        x = np.asarray(x, dtype=float).reshape(7, n_H.size)
        dt = np.broadcast_to(np.asarray(dt, dtype=float), n_H.shape)
        out = x.copy()
        idx = np.flatnonzero(dt > 0)
        status = np.zeros(n_H.size, dtype=np.int8)
        if idx.size:
            out[:, idx], inside = self.step(n_H[idx], x[:, idx])
            status[idx[~inside]] = 1
        return StepResult(out, np.ones(n_H.size, dtype=bool), n_H < SAHA_MIN_DENSITY, status)


def _to_numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


_TABLES: dict = {}


def table_path(spec: SahaTableSpec, directory=None):
    """Where the table of ``spec`` is cached."""
    return Path(directory or cache_dir()) / f"saha-table-{spec.key()}.nc"


def load_saha_table(spec: SahaTableSpec | None = None, *, directory=None, build=True, progress=False):
    """The Saha table for ``spec``: from this process's memory, the cache file, or built now.

    Parameters
    ----------
    spec : SahaTableSpec, optional
        Defaults to OS25's 1000 x 1000 table with the network's default options.
    directory : path, optional
        Cache folder (default :func:`cache_dir`).
    build : bool
        Build and cache the table if it is missing (else raise FileNotFoundError).
    progress : bool
        Show build progress.
    """
    spec = spec or SahaTableSpec()
    path = table_path(spec, directory)
    key = str(path.resolve())
    if key in _TABLES:
        return _TABLES[key]
    if path.exists():
        with xr.open_dataset(path) as f:
            ds = f.load()
        if ds.attrs.get("spec_key") != spec.key() or ds.attrs.get("spec_format_version") != TABLE_FORMAT_VERSION:
            if not build:
                raise ValueError(f"{path} was built with other parameters ({ds.attrs.get('spec_key')}); "
                                 f"rebuild with `thermoemu saha-table`")
            ds = None
    else:
        ds = None
    if ds is None:
        if not build:
            raise FileNotFoundError(f"no Saha table at {path}; build it with `thermoemu saha-table`")
        if progress:
            sys.stderr.write(f"building the Saha table ({spec.n_points} x {spec.e_points}) into {path}\n")
        ds = build_saha_table(spec, progress=progress)
        write_table(ds, path)
    _TABLES[key] = SahaTable(ds, path)
    return _TABLES[key]


def table_reference(table=None, *, cv_h2="frozen"):
    """``(spec, directory)`` naming a cached table, cheap to hand to worker processes.

    ``table`` may be None (the default table for ``cv_h2``), a :class:`SahaTableSpec` (in the
    default cache), a loaded :class:`SahaTable` or such a pair already. Nothing is built here;
    ``load_saha_table(spec, directory=directory)`` builds or reads it.
    """
    if isinstance(table, tuple):
        return table
    if isinstance(table, SahaTable):
        if table.path is None:
            raise ValueError("this SahaTable was not loaded from a file; use load_saha_table(...)")
        return table.spec, str(table.path.parent)
    if table is None:
        return SahaTableSpec(cv_h2=cv_h2), None
    if isinstance(table, SahaTableSpec):
        return table, None
    raise TypeError(f"saha_table must be a SahaTable, a SahaTableSpec or None, got {type(table).__name__}")


def check_table(table: SahaTable, points=1000, seed=0, abundance_floor=1e-20):
    """Table against the direct Saha solve at random off-grid points.

    Points are uniform in (log n_H, log E_tot) over the table. Returns the max relative error of T,
    of each abundance above ``abundance_floor`` (in the direct solve), and of E_tot recomputed
    from the interpolated state (a table step should leave E_tot unchanged).
    """
    rng = np.random.default_rng(seed)
    (n_lo, n_hi), (e_lo, e_hi) = table.n_range, table.energy_range
    n = 10.0 ** rng.uniform(np.log10(n_lo), np.log10(n_hi), points)
    E = 10.0 ** rng.uniform(np.log10(e_lo), np.log10(e_hi), points)
    T, y, inside = table.lookup(n, E)
    T_ref, y_ref = saha_state(n, E, partition_functions=table.spec.partition_functions, cv_h2=table.spec.cv_h2)
    out = {"points": int(points), "inside": int(inside.sum()),
           "max_rel_err_temperature": float(np.max(np.abs(T / T_ref - 1))),
           "max_rel_err_total_energy": float(np.max(np.abs(total_energy(T, y, table.spec.cv_h2) / E - 1)))}
    for i, name in enumerate(SPECIES):
        sel = y_ref[i] > abundance_floor
        out[f"max_rel_err_{name}"] = float(np.max(np.abs(y[i, sel] / y_ref[i, sel] - 1))) if sel.any() else None
    return out


def write_table(ds, path):
    """Write atomically (a temporary file renamed into place), so an interrupted build leaves nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    ds.to_netcdf(tmp, encoding={v: {"zlib": True, "complevel": 1} for v in ds.data_vars})
    os.replace(tmp, path)
    return path
