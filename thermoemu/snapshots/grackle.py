"""Grackle's field conventions <-> primordial state grids, both ways.

Simulation codes coupled to Grackle (Enzo, Enzo-E, GIZMO, AREPO, Gadget, ...) hold the primordial
species as **mass densities in code units**, with the field names of gracklepy's ``FluidContainer``
(:data:`SPECIES_FIELDS`), and the gas energy as a **specific internal energy** in code units of
velocity squared. The conventions followed here (Grackle's documentation, "Code Units"; gracklepy's
``fluid_container.py`` and ``yt_fields.py``):

- A species field is its mass density in units of ``density_units`` [g cm^-3], the species mass
  counted in units of m_H: 1 for HI, HII, HM; 2 for H2I, H2II; 4 for HeI, HeII, HeIII. Multiplying
  by ``density_units`` gives the proper density whether or not ``comoving_coordinates`` is set.
- ``e_density`` is the electron number density times m_H (Grackle's convention: gracklepy's yt glue
  multiplies the true electron mass density by m_p/m_e), in the same density units.
- ``internal_energy`` is the specific thermal energy in units of ``velocity_units**2``, where
  ``velocity_units = length_units / time_units``, or ``length_units / (a_value time_units)`` with
  comoving coordinates (what gracklepy's ``chemistry_data.set_velocity_units`` gives, checked with
  gracklepy 1.2 / Grackle 3.4.1).

**Temperature.** Grackle's own temperature uses its gamma with an H2 correction; here the gas
temperature is the one whose internal energy, by this package's thermodynamics
(:func:`thermoemu.primordial.physics.saha.total_energy`'s internal part: 3/2 k T per free particle,
the H2 internal energy of :func:`~thermoemu.primordial.physics.thermo.energy_h2`), equals the
snapshot's, with the snapshot's own composition: its helium (all three ions) and the electrons helium
gave. So a step that changes nothing writes back the same internal energy, to float rounding.

**Helium.** The network has no helium chemistry: it holds y_He = n_He / n_H = 0.097, neutral
(seed 003), in its heat capacity and cooling. The snapshot's HeI, HeII and HeIII fields are carried
unchanged; their electrons (n_HeII + 2 n_HeIII) are taken out of ``e_density`` before the state is
built (the network's electrons balance its hydrogen ions) and added back after. Helium enters the
temperature <-> energy conversion with the snapshot's own abundance, so mu and gamma are the
snapshot's: for a snapshot with X = 0.76 (y_He = 0.079) the network's heat capacity per H nucleus
of atomic gas, 3/2 k (1 + y_e + 0.097), is about 1.7 % above the snapshot's 3/2 k (1 + y_e + 0.079),
so a cooling or heating rate changes T by about 1.7 % less than the snapshot's own gas would; the
energy written back is the snapshot's, exactly, for the temperature the network reached.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from ..constants import K_BOLTZMANN, M_HYDROGEN
from ..core.grid import StateError, check_values
from ..primordial.physics.network import SPECIES
from ..primordial.physics.thermo import cv_h2, energy_h2
from . import energy as compiled_energy

__all__ = ["GrackleUnits", "SPECIES_FIELDS", "HELIUM_FIELDS", "ENERGY_FIELDS", "fields_to_state", "state_to_fields",
           "fields_from_state",
           "internal_energy", "temperature_from_energy", "is_grackle"]

#: Network species -> (Grackle field, species mass in units of m_H).
SPECIES_FIELDS = {"H": ("HI_density", 1.0), "H2": ("H2I_density", 2.0), "e-": ("e_density", 1.0),
                  "H+": ("HII_density", 1.0), "H-": ("HM_density", 1.0), "H2+": ("H2II_density", 2.0)}
#: Helium fields -> (mass in m_H, electrons given per atom): carried unchanged.
HELIUM_FIELDS = {"HeI_density": (4.0, 0.0), "HeII_density": (4.0, 1.0), "HeIII_density": (4.0, 2.0)}
#: The gas energy: a specific internal energy (Grackle) or a temperature.
ENERGY_FIELDS = ("internal_energy", "temperature")
_HYDROGEN = ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density")
#: The trace species: zero where a snapshot does not carry them (they relax to equilibrium within any step).
_OPTIONAL = ("HM_density", "H2II_density")
_REQUIRED = ("HI_density", "HII_density", "H2I_density", "e_density")


@dataclasses.dataclass(frozen=True)
class GrackleUnits:
    """Grackle's code units (its ``code_units`` struct): multiply a field by these to get proper CGS.

    Parameters
    ----------
    density_units : float
        [g cm^-3] per code density unit (proper, also with comoving coordinates).
    length_units, time_units : float
        [cm], [s] per code unit.
    a_units, a_value : float
        Expansion-factor unit and the current expansion factor in it (comoving runs).
    comoving_coordinates : bool
    """

    density_units: float = 1.0
    length_units: float = 1.0
    time_units: float = 1.0
    a_units: float = 1.0
    a_value: float = 1.0
    comoving_coordinates: bool = False

    def __post_init__(self):
        for name in ("density_units", "length_units", "time_units", "a_units", "a_value"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} = {value!r}; Grackle's code units must be finite and > 0")

    @property
    def velocity_units(self):
        """[cm s^-1] per code velocity unit: length / time, divided by a_value with comoving coordinates."""
        a = self.a_value if self.comoving_coordinates else 1.0
        return self.length_units / (a * self.time_units)

    @classmethod
    def from_attrs(cls, attrs):
        """The units recorded in a Dataset's attributes (defaults: CGS, not comoving)."""
        kwargs = {f.name: attrs[f.name] for f in dataclasses.fields(cls) if f.name in attrs}
        if "comoving_coordinates" in kwargs:
            kwargs["comoving_coordinates"] = bool(int(kwargs["comoving_coordinates"]))
        return cls(**{k: (v if k == "comoving_coordinates" else float(v)) for k, v in kwargs.items()})

    def as_attrs(self):
        d = dataclasses.asdict(self)
        d["comoving_coordinates"] = int(self.comoving_coordinates)
        return d


def is_grackle(ds):
    """Whether ``ds`` carries Grackle-named fields (the hydrogen species, the electrons and an energy)."""
    names = set(map(str, ds.data_vars))
    return set(_REQUIRED) <= names and bool(names & set(ENERGY_FIELDS))


def _require(ds, names):
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise StateError(f"Grackle convention detected, but the field(s) {missing} are missing; it needs "
                         f"{list(_REQUIRED)} and one of {list(ENERGY_FIELDS)} (HM_density, H2II_density and "
                         f"HeI/HeII/HeIII_density optional); the input has {sorted(map(str, ds.data_vars))}")


def _number_densities(ds, units):
    """Per-cell number densities [cm^-3] of the network species, n_H, n_He and helium's electrons."""
    du = units.density_units
    zero = xr.zeros_like(ds["HI_density"])
    n = {s: (ds[field] if field in ds.data_vars else zero) * (du / (mass * M_HYDROGEN))
         for s, (field, mass) in SPECIES_FIELDS.items()}
    n_H = n["H"] + n["H+"] + n["H-"] + 2.0 * (n["H2"] + n["H2+"])
    n_He = xr.zeros_like(n_H)
    e_He = xr.zeros_like(n_H)
    for field, (mass, electrons) in HELIUM_FIELDS.items():
        if field in ds.data_vars:
            n_i = ds[field] * (du / (mass * M_HYDROGEN))
            n_He = n_He + n_i
            e_He = e_He + electrons * n_i
    return n, n_H, n_He, e_He


def internal_energy(temperature, abundance, y_He, y_e_extra=0.0, cv_model="frozen"):
    """Internal energy per H nucleus [erg]: 3/2 k T per free particle (H, e-, H+, H-, H2+, He and the extra
    electrons ``y_e_extra`` per H nucleus, e.g. from helium) plus k times the H2 internal energy.

    ``abundance``: (6, N) in network order; ``temperature`` [K], ``y_He``, ``y_e_extra``: (N,).
    """
    T = np.asarray(temperature, dtype=float)
    y = np.asarray(abundance, dtype=float)
    free = y[0] + y[2] + y[3] + y[4] + y[5] + y_He + y_e_extra
    return K_BOLTZMANN * (1.5 * T * free + energy_h2(T.ravel(), cv_model).reshape(T.shape) * y[1])


def _no_temperature(energy_per_H, k):
    """The error for cell ``k`` (flat index) whose energy has no temperature in the inversion's bracket."""
    return StateError(f"internal energy {np.ravel(energy_per_H)[k]:.4g} erg per H nucleus (cell {k}) has no "
                      "temperature in [0.1 K, 1e9 K]; internal_energy must be finite and positive")


def temperature_from_energy(energy_per_H, abundance, y_He, y_e_extra=0.0, cv_model="frozen", iterations=60):
    """Invert :func:`internal_energy` for T [K] (safeguarded Newton in ln T on [0.1 K, 1e9 K]; exact to rounding).

    Raises StateError where no temperature in that range has the given energy.
    """
    E = np.asarray(energy_per_H, dtype=float)
    y = np.asarray(abundance, dtype=float)
    y_He = np.broadcast_to(np.asarray(y_He, dtype=float), E.shape)
    y_x = np.broadcast_to(np.asarray(y_e_extra, dtype=float), E.shape)
    free = y[0] + y[2] + y[3] + y[4] + y[5] + y_He + y_x
    lo, hi = np.full(E.shape, np.log(0.1)), np.full(E.shape, np.log(1e9))
    f_lo = internal_energy(np.exp(lo), y, y_He, y_x, cv_model) - E
    f_hi = internal_energy(np.exp(hi), y, y_He, y_x, cv_model) - E
    bad = ~(np.isfinite(E) & (f_lo <= 0) & (f_hi >= 0))
    if bad.any():
        raise _no_temperature(E, int(np.flatnonzero(bad.ravel())[0]))
    # start from the all-translational estimate, then Newton steps kept inside the bracket
    lnT = np.clip(np.log(np.maximum(E / (K_BOLTZMANN * (1.5 * free + 2.5 * y[1])), 0.1)), lo, hi)
    for _ in range(iterations):
        T = np.exp(lnT)
        f = internal_energy(T, y, y_He, y_x, cv_model) - E
        lo = np.where(f <= 0, lnT, lo)
        hi = np.where(f >= 0, lnT, hi)
        dE = K_BOLTZMANN * (1.5 * free + cv_h2(T.ravel(), cv_model).reshape(T.shape) * y[1]) * T  # dE/dlnT
        step = lnT - f / dE
        inside = (step >= lo) & (step <= hi)
        new = np.where(inside, step, 0.5 * (lo + hi))
        converged = np.all(np.abs(new - lnT) <= 1e-9)
        lnT = new
        if converged:  # Newton's steps: two more take a 1e-9 error to rounding
            for _ in range(2):
                T = np.exp(lnT)
                f = internal_energy(T, y, y_He, y_x, cv_model) - E
                lnT = lnT - f / (K_BOLTZMANN * (1.5 * free + cv_h2(T.ravel(), cv_model).reshape(T.shape) * y[1]) * T)
            break
    return np.exp(lnT)


def fields_to_state(ds, units=None, *, cv_model="frozen"):
    """A primordial state grid (n_H, temperature, abundance) from Grackle-named fields.

    Parameters
    ----------
    ds : xarray.Dataset
        Grackle fields in code units (numpy or dask; any cell dims). ``internal_energy`` [code velocity^2] is
        preferred to ``temperature`` [K] when both are there.
    units : GrackleUnits, optional
        Default: read from ``ds.attrs`` (CGS if none).
    cv_model : str
        H2 heat-capacity model of the temperature <-> energy conversion (the network's default).

    Returns
    -------
    xarray.Dataset
        ``n_H`` [cm^-3], ``temperature`` [K], ``abundance`` (species) and the helium numbers ``y_He`` and
        ``y_e_helium`` (per H nucleus) that :func:`state_to_fields` needs to write the fields back. Not
        validated here: :func:`thermoemu.validate_state` names bad values.
    """
    units = units or GrackleUnits.from_attrs(ds.attrs)
    _require(ds, list(_REQUIRED))
    if not set(ENERGY_FIELDS) & set(map(str, ds.data_vars)):
        _require(ds, ["internal_energy"])
    for name in [f for f in list(_HYDROGEN) + ["e_density"] + list(HELIUM_FIELDS) if f in ds.data_vars]:
        check_values(ds[name], name, 0.0, np.inf, allow_zero=True)
    n, n_H, n_He, e_He = _number_densities(ds, units)
    safe = xr.where(n_H > 0, n_H, np.nan)
    y = {s: n[s] / safe for s in SPECIES}
    y["e-"] = (n["e-"] - e_He) / safe                      # the electrons hydrogen gave
    abundance = xr.concat([y[s] for s in SPECIES], dim="species").assign_coords(species=list(SPECIES))
    cell_dims = list(n_H.dims)
    abundance = abundance.transpose(*cell_dims, "species")
    if abundance.chunks is not None:
        abundance = abundance.chunk({"species": -1})
    y_He, y_eHe = n_He / safe, e_He / safe
    if "internal_energy" in ds.data_vars:
        rho = ds["density"] * units.density_units if "density" in ds.data_vars else None
        if rho is None:
            raise StateError("Grackle convention: internal_energy needs the total gas 'density' field too")
        energy_per_H = ds["internal_energy"] * units.velocity_units ** 2 * rho / safe
        T = xr.apply_ufunc(_temperature_kernel, energy_per_H, abundance, y_He, y_eHe,
                           input_core_dims=[[], ["species"], [], []], dask="parallelized",
                           output_dtypes=[float], kwargs={"cv_model": cv_model})
    else:
        T = ds["temperature"]
    state = xr.Dataset({
        "n_H": n_H.assign_attrs(units="cm^-3", long_name="number density of hydrogen nuclei"),
        "temperature": T.assign_attrs(units="K", long_name="gas temperature"),
        "abundance": abundance.assign_attrs(units="1", long_name="abundance n(i)/n_H"),
        "y_He": y_He.assign_attrs(units="1", long_name="helium nuclei per H nucleus (carried)"),
        "y_e_helium": y_eHe.assign_attrs(units="1", long_name="electrons from helium per H nucleus (carried)")})
    return state


def _temperature_kernel(energy_per_H, abundance, y_He, y_eHe, *, cv_model):
    y = np.moveaxis(np.asarray(abundance, dtype=float), -1, 0)
    if not compiled_energy.available(cv_model):
        return temperature_from_energy(energy_per_H, y, y_He, y_eHe, cv_model)
    T, bad = compiled_energy.temperature_cells(energy_per_H, y, y_He, y_eHe, cv_model)
    if bad >= 0:
        raise _no_temperature(energy_per_H, bad)
    return T


def _energy_kernel(temperature, abundance, y_He, y_eHe, *, cv_model):
    y = np.moveaxis(np.asarray(abundance, dtype=float), -1, 0)
    if not compiled_energy.available(cv_model):
        return internal_energy(temperature, y, y_He, y_eHe, cv_model)
    return compiled_energy.internal_energy_cells(temperature, y, y_He, y_eHe, cv_model)


def _with_attrs(da, attrs):
    """``da`` with exactly ``attrs`` (arithmetic may have carried a ``units`` attribute that no longer holds)."""
    da = da.copy()
    da.attrs = dict(attrs)
    return da


def state_to_fields(state, fields, units=None, *, cv_model="frozen"):
    """Grackle fields with the species and energy of ``state`` written back; everything else as in ``fields``.

    Parameters
    ----------
    state : xarray.Dataset
        A state grid over the same cells (e.g. after ``ds.emu.step``), with ``y_He`` and ``y_e_helium``
        from :func:`fields_to_state` (or taken from ``fields``' helium).
    fields : xarray.Dataset
        The Grackle fields the state came from: total ``density``, helium and any other fields are
        carried unchanged, with their attributes.
    units : GrackleUnits, optional

    Returns
    -------
    xarray.Dataset
        ``fields`` with HI/HII/HM/H2I/H2II/e_density, and ``internal_energy`` and/or ``temperature``
        replaced (NaN where the state is NaN, i.e. flagged cells).
    """
    units = units or GrackleUnits.from_attrs(fields.attrs)
    du = units.density_units
    _, _, n_He, e_He = _number_densities(fields, units)
    n_H = state["n_H"]
    y_He = state["y_He"] if "y_He" in state else n_He / n_H
    y_eHe = state["y_e_helium"] if "y_e_helium" in state else e_He / n_H
    out = fields.copy()
    y = state["abundance"]
    if y.chunks is not None:
        y = y.chunk({"species": -1})
    for s, (field, mass) in SPECIES_FIELDS.items():
        n_s = y.sel(species=s, drop=True) * n_H
        if s == "e-":
            n_s = n_s + y_eHe * n_H
        like = fields[field] if field in fields.data_vars else fields["HI_density"]   # a trace species added
        attrs = fields[field].attrs if field in fields.data_vars else {
            k: v for k, v in like.attrs.items() if k in ("units",)}
        out[field] = _with_attrs((n_s * (mass * M_HYDROGEN / du)).transpose(*like.dims), attrs)
    if "internal_energy" in fields.data_vars:
        E = xr.apply_ufunc(_energy_kernel, state["temperature"], y, y_He, y_eHe,
                           input_core_dims=[[], ["species"], [], []], dask="parallelized",
                           output_dtypes=[float], kwargs={"cv_model": cv_model})
        rho = fields["density"] * du
        out["internal_energy"] = _with_attrs((E * n_H / rho / units.velocity_units ** 2).transpose(
            *fields["internal_energy"].dims), fields["internal_energy"].attrs)
    if "temperature" in fields.data_vars:
        out["temperature"] = _with_attrs(state["temperature"].transpose(*fields["temperature"].dims),
                                         fields["temperature"].attrs)
    return out


def fields_from_state(state, units=None, *, y_He=None, cv_model="frozen"):
    """New Grackle fields (code units) for a primordial state grid, with neutral helium at ``y_He`` per H
    nucleus (default the network's 0.097): what a Grackle-coupled code would hold for that gas.

    ``density`` is the gas mass density n_H m_H (1 + 4 y_He) (hydrogen species and helium; Grackle counts
    no electron mass), ``internal_energy`` the specific thermal energy of :func:`internal_energy`.
    """
    from ..constants import Y_HE
    units = units or GrackleUnits()
    y_He = Y_HE if y_He is None else y_He
    n_H = state["n_H"]
    du = units.density_units
    cells = xr.zeros_like(n_H)
    cells = _with_attrs(cells, {})
    template = xr.Dataset({"density": _with_attrs(n_H * M_HYDROGEN * (1.0 + 4.0 * y_He) / du,
                                                  {"long_name": "gas mass density (code units)"}),
                           "HeI_density": _with_attrs(n_H * 4.0 * y_He * M_HYDROGEN / du,
                                                      {"long_name": "HeI mass density (code units)"}),
                           "HeII_density": cells.copy(), "HeIII_density": cells.copy(),
                           "internal_energy": _with_attrs(cells, {"long_name": "specific internal energy "
                                                                               "(code velocity^2)"})},
                          attrs=units.as_attrs())
    for field, _ in SPECIES_FIELDS.values():
        template[field] = _with_attrs(cells, {"long_name": f"{field.replace('_density', '')} mass density "
                                                           "(code units; e: n_e m_H)"})
    full = state.assign(y_He=xr.full_like(n_H, y_He), y_e_helium=xr.zeros_like(n_H))
    return state_to_fields(full, template, units, cv_model=cv_model)
