"""yt datasets <-> Grackle-named fields (the names of gracklepy's ``FluidContainer``), both ways.

:func:`from_yt` reads a yt dataset (or a yt data object) and returns an :class:`xarray.Dataset` of
Grackle-named fields in **proper CGS**: what :mod:`thermoemu.snapshots.grackle` turns into a primordial
state grid. :func:`to_yt` turns such fields (e.g. the result of a step) back into an in-memory yt dataset.
This module converts units and names only; it computes no temperature from an energy and no chemistry.

Output variables (each with a CF-style ``units`` attribute; a dataset's missing species are left out):

=================  ============  ===============================================================
name               units         meaning
=================  ============  ===============================================================
density            g cm^-3       total gas density
HI_density, ...    g cm^-3       species mass densities: ``HI HII HM H2I H2II HeI HeII HeIII``,
                                 i.e. n_i A_i m_H with A = 1 (H, H+, H-), 2 (H2, H2+), 4 (He)
e_density          g cm^-3       Grackle's convention: n_e m_H (not the electrons' own mass)
internal_energy    erg g^-1      specific thermal energy, where the dataset has it
temperature        K             only where the dataset has a temperature and no energy
=================  ============  ===============================================================

Frontends are described by **tables** (:data:`FAMILIES`): for each family, each Grackle name maps to a
tuple of :class:`Source` alternatives (the first one the dataset has is used); a source is a yt field
plus one of a few conversions (:data:`KINDS`). A family is detected from the dataset's on-disk field
list through :data:`FAMILY_MARKERS`. The conventions assumed per family (yt 4.4 source read:
``yt/frontends/{enzo,gizmo,gadget,arepo,stream}/fields.py``, ``yt/fields/species_fields.py``,
``yt/frontends/gadget/io.py``):

``grackle``
    yt fields already named as Grackle's, as :func:`to_yt` writes them: ``("gas", name)`` on grids,
    ``("io", name)`` for :func:`yt.load_particles`, or ``("stream", name)`` / ``("PartType0", name)``;
    already mass densities (``e_density`` already n_e m_H).
``enzo``
    Enzo's ``MultiSpecies`` fields. yt aliases ``("enzo", "HI_Density")`` etc. to its universal
    ``("gas", "H_p0_density")``, ``H_p1``, ``H_m1``, ``H2_p0``, ``H2_p1``, ``He_p0``, ``He_p1``, ``He_p2``
    (mass densities; ``("stream", ...)`` fields of these universal names serve as well). Enzo's ``Electron_Density`` is already Grackle's n_e m_H (Enzo and Grackle share
    the field); yt exposes it as ``("gas", "El_density") = Electron_Density * m_e / m_p``
    (``yt/frontends/enzo/fields.py``), so where only that is available it is multiplied by yt's m_p / m_e
    (``yt.utilities.physical_constants``, whose ``mp`` is m_H = 1.6737e-24 g), as gracklepy's own yt
    glue does, which undoes yt's factor exactly. Energy: ``("gas", "specific_thermal_energy")``; temperature:
    ``("gas", "temperature")``.
``gizmo-grackle``
    GIZMO compiled with ``COOL_GRACKLE_CHEMISTRY``: ``PartType0/GrackleHI, GrackleHII, GrackleHM,
    GrackleHeI, GrackleHeII, GrackleHeIII, GrackleH2I, GrackleH2II`` are **mass fractions of the gas
    density** (GIZMO's ``cooling/grackle.c`` sets ``HI_density = density * SphP.grHI`` and stores
    ``grHI = HI_density / density`` back; ``io.c`` writes ``grHI`` as ``GrackleHI``). yt 4.4 has no
    knowledge of these fields (``yt/frontends/gizmo/fields.py`` lists none): they load dimensionless and
    are multiplied by ``Density`` here. ``ElectronAbundance`` is n_e / n_H, as yt reads it
    (``yt/frontends/gizmo/fields.py``: ``El_number_density = ElectronAbundance * H_nuclei_density``).
    yt's H_nuclei_density needs metallicity fields or ``default_species_fields``, which such snapshots
    often lack, so n_H is taken from the Grackle hydrogen species themselves: in Grackle's convention
    n_H m_H = HI + HII + HM + H2I + H2II (mass densities), hence
    ``e_density = ElectronAbundance * (HI + HII + HM + H2I + H2II)_density``. (GIZMO's
    ``NeutralHydrogenAbundance`` holds ``grHI``, a mass fraction, in Grackle runs; yt's reading of it as
    n_HI / n_H is therefore not used.) Energy: ``InternalEnergy`` in yt's ``code_specific_energy``.
``arepo-sgchem``
    AREPO with SGChem, ``CHEMISTRYNETWORK == 1`` (primordial). yt 4.4 does not know
    ``PartType0/ChemicalAbundances`` (only the EAGLE/OWLS frontends mention the name, to veto it); it
    loads it as a dimensionless (N, 6) vector. The columns are abundances per H nucleus, x_i = n_i / n_H,
    in the order of SGChem's ``IH2 IHP IDP IHD IHEP IHEPP`` = H2, H+, D+, HD, He+, He++ (SGChem README,
    "Network 1": "They are stored in the following order: H2, H+, D+, HD, He+, He++", and its
    ``chemcool_consts.h``); He / H by number is ``ABHE = 0.079`` for network 1
    (:data:`SGCHEM_ABHE`). SGChem's n_H = rho / ((1 + 4 ABHE) m_p), so in Grackle's convention
    n_H m_H = rho / (1 + 4 ABHE) (m_H = m_p as SGChem counts it), and
    ``X_density = A_X x_X rho / (1 + 4 ABHE)`` with x_HI = 1 - 2 x_H2 - x_H+ - x_HD,
    x_HeI = ABHE - x_He+ - x_He++ (both clipped at 0) and the electrons of charge balance,
    x_e = x_H+ + x_D+ + x_He+ + 2 x_He++. H- and H2+ are not evolved by network 1 and are left out.

Unit conversion of code units (comoving factors, h, the expansion factor) is yt's own: the values are
read with ``.to(<CGS unit>)``. Note that yt's Gadget-family frontends take ``code_specific_energy`` as
(km/s)^2 unless ``unit_base`` says otherwise, whatever the snapshot's velocity unit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

__all__ = ["FAMILIES", "FAMILY_MARKERS", "KINDS", "SGCHEM_ABHE", "SnapshotFieldError", "Source",
           "detect_family", "from_yt", "to_yt"]

#: He nuclei per H nucleus in SGChem's primordial network (``ABHE``, CHEMISTRYNETWORK == 1).
SGCHEM_ABHE = 0.079

#: Conversions a :class:`Source` can name, with the CGS unit the yt field is read in.
KINDS = {
    "mass_density": "g/cm**3",            # a mass density
    "electron_mass_density": "g/cm**3",   # the electrons' own mass density; times m_p / m_e
    "mass_fraction": "dimensionless",     # a mass fraction; times the family's total density
    "electrons_per_H": "dimensionless",   # n_e / n_H; times n_H m_H = sum of the family's H species
    "abundance": "dimensionless",         # per-H abundance columns; times A rho / (1 + 4 ABHE)
    "specific_energy": "erg/g",
    "temperature": "K",
}

_CF_UNITS = {"g/cm**3": "g cm^-3", "erg/g": "erg g^-1", "K": "K"}
_SPECIES = ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density",
            "HeI_density", "HeII_density", "HeIII_density")
_HYDROGEN = ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density")
_NAMES = ("density",) + _SPECIES + ("e_density", "internal_energy", "temperature")
_LONG_NAMES = {"density": "gas density", "e_density": "electron number density times m_H",
               "internal_energy": "specific thermal energy", "temperature": "gas temperature"}


class Source(NamedTuple):
    """Where a Grackle field comes from: a yt field and the conversion (a key of :data:`KINDS`).

    ``terms``, ``offset`` and ``mass`` serve ``kind="abundance"`` only: the abundance per H nucleus is
    ``offset + sum(coefficient * column)`` over ``terms = ((column, coefficient), ...)`` of the yt
    (N, ncol) field, and ``mass`` is the species mass in m_H.
    """

    field: tuple
    kind: str = "mass_density"
    terms: tuple = ()
    offset: float = 0.0
    mass: float = 1.0


class SnapshotFieldError(KeyError):
    """A field a family needs is missing (or the family is unknown). A KeyError with a readable message."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _named(name, kind="mass_density"):
    return tuple(Source((ftype, name), kind) for ftype in ("gas", "stream", "io", "PartType0"))


def _enzo(universal, native, kind="mass_density"):
    return (Source(("gas", universal), kind), Source(("stream", universal), kind), Source(("enzo", native), kind))


_CA = ("PartType0", "ChemicalAbundances")   # SGChem network 1 columns: H2, H+, D+, HD, He+, He++
_P0 = "PartType0"

#: family -> {Grackle name -> alternatives (first available wins)}.
FAMILIES = {
    "grackle": {name: _named(name, "specific_energy" if name == "internal_energy" else
                             "temperature" if name == "temperature" else "mass_density")
                for name in _NAMES},
    "enzo": {
        "density": _enzo("density", "Density"),
        "HI_density": _enzo("H_p0_density", "HI_Density"),
        "HII_density": _enzo("H_p1_density", "HII_Density"),
        "HM_density": _enzo("H_m1_density", "HM_Density"),
        "H2I_density": _enzo("H2_p0_density", "H2I_Density"),
        "H2II_density": _enzo("H2_p1_density", "H2II_Density"),
        "HeI_density": _enzo("He_p0_density", "HeI_Density"),
        "HeII_density": _enzo("He_p1_density", "HeII_Density"),
        "HeIII_density": _enzo("He_p2_density", "HeIII_Density"),
        "e_density": (Source(("enzo", "Electron_Density")),
                      Source(("gas", "El_density"), "electron_mass_density"),
                      Source(("stream", "El_density"), "electron_mass_density")),
        "internal_energy": (Source(("gas", "specific_thermal_energy"), "specific_energy"),),
        "temperature": (Source(("gas", "temperature"), "temperature"),),
    },
    "gizmo-grackle": {
        "density": (Source((_P0, "Density")),),
        "HI_density": (Source((_P0, "GrackleHI"), "mass_fraction"),),
        "HII_density": (Source((_P0, "GrackleHII"), "mass_fraction"),),
        "HM_density": (Source((_P0, "GrackleHM"), "mass_fraction"),),
        "H2I_density": (Source((_P0, "GrackleH2I"), "mass_fraction"),),
        "H2II_density": (Source((_P0, "GrackleH2II"), "mass_fraction"),),
        "HeI_density": (Source((_P0, "GrackleHeI"), "mass_fraction"),),
        "HeII_density": (Source((_P0, "GrackleHeII"), "mass_fraction"),),
        "HeIII_density": (Source((_P0, "GrackleHeIII"), "mass_fraction"),),
        "e_density": (Source((_P0, "ElectronAbundance"), "electrons_per_H"),),
        "internal_energy": (Source((_P0, "InternalEnergy"), "specific_energy"),),
    },
    "arepo-sgchem": {
        "density": (Source((_P0, "Density")),),
        "HI_density": (Source(_CA, "abundance", terms=((0, -2.0), (1, -1.0), (3, -1.0)), offset=1.0),),
        "HII_density": (Source(_CA, "abundance", terms=((1, 1.0),)),),
        "H2I_density": (Source(_CA, "abundance", terms=((0, 1.0),), mass=2.0),),
        "HeI_density": (Source(_CA, "abundance", terms=((4, -1.0), (5, -1.0)), offset=SGCHEM_ABHE,
                               mass=4.0),),
        "HeII_density": (Source(_CA, "abundance", terms=((4, 1.0),), mass=4.0),),
        "HeIII_density": (Source(_CA, "abundance", terms=((5, 1.0),), mass=4.0),),
        "e_density": (Source(_CA, "abundance", terms=((1, 1.0), (2, 1.0), (4, 1.0), (5, 2.0))),),
        "internal_energy": (Source((_P0, "InternalEnergy"), "specific_energy"),),
    },
}

#: family -> on-disk yt fields any one of which marks a dataset as that family (checked in this order).
FAMILY_MARKERS = {
    "grackle": tuple((ftype, name) for ftype in ("gas", "stream", "io", "PartType0")
                     for name in ("HI_density", "HII_density", "H2I_density")),
    "gizmo-grackle": ((_P0, "GrackleHI"), (_P0, "GrackleHII"), (_P0, "GrackleH2I")),
    "arepo-sgchem": (_CA,),
    "enzo": (("enzo", "HI_Density"), ("enzo", "HII_Density"), ("enzo", "H2I_Density"),
             ("enzo", "Electron_Density"))
    + tuple((ftype, name) for ftype in ("gas", "stream") for name in ("H_p0_density", "H_p1_density", "H2_p0_density")),
}


# ------------------------------------------------------------------------------------------------ helpers

def _yt():
    try:
        import yt
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("thermoemu.snapshots.yt needs yt (pip install yt)") from exc
    return yt


def _resolve(data):
    """(dataset, data object, layout) with layout 'grid' (x, y, z cubes), 'particles' or 'cells'."""
    from yt.data_objects.construction_data_containers import YTCoveringGrid
    from yt.data_objects.data_containers import YTDataContainer
    from yt.data_objects.static_output import Dataset

    if isinstance(data, Dataset):
        ds = data
        if _is_particle_dataset(ds):
            return ds, ds.all_data(), "particles"
        return ds, ds.covering_grid(0, ds.domain_left_edge, ds.domain_dimensions), "grid"
    if isinstance(data, YTDataContainer):
        ds = data.ds
        if _is_particle_dataset(ds):
            return ds, data, "particles"
        return ds, data, ("grid" if isinstance(data, YTCoveringGrid) else "cells")
    raise TypeError(f"from_yt takes a yt Dataset or a yt data object, not {type(data).__name__}")


def _is_particle_dataset(ds):
    from yt.data_objects.static_output import ParticleDataset
    from yt.frontends.stream.data_structures import StreamParticlesDataset

    return isinstance(ds, (ParticleDataset, StreamParticlesDataset))


def _fields_of(ds):
    return set(map(tuple, ds.field_list)) | set(map(tuple, ds.derived_field_list))


def _fmt(field):
    return f"({field[0]!r}, {field[1]!r})"


def detect_family(ds):
    """The family of ``ds`` (a yt Dataset) from its on-disk field list, per :data:`FAMILY_MARKERS`.

    Raises
    ------
    ValueError
        If no family matches; the message lists the families and the fields each looks for.
    """
    on_disk = set(map(tuple, ds.field_list))
    for family, markers in FAMILY_MARKERS.items():
        if on_disk & set(markers):
            return family
    wanted = "\n".join(
        f"  {fam!r}: marked by any of {', '.join(_fmt(f) for f in markers)}; reads "
        + ", ".join(f"{name} <- {_fmt(FAMILIES[fam][name][0].field)}" for name in FAMILIES[fam])
        for fam, markers in FAMILY_MARKERS.items())
    raise ValueError(f"from_yt: no known family of Grackle/primordial species fields in {ds}. The families "
                     f"and the fields each needs (density, the H2 or H+ field, an energy or temperature; "
                     f"other species where present):\n{wanted}\nThe dataset's on-disk fields are "
                     f"{sorted(on_disk)}")


def _pick(sources, available, layout, particle_types):
    """The first available source; on particle data, sources on a particle type come first."""
    if layout == "particles":
        sources = sorted(sources, key=lambda s: s.field[0] not in particle_types)
    for source in sources:
        if source.field in available:
            return source
    return None


class _Reader:
    """Reads yt fields of one data object once each, as float64 numpy arrays in CGS."""

    def __init__(self, obj):
        self.obj = obj
        self.cache = {}

    def __call__(self, field, units):
        key = (field, units)
        if key not in self.cache:
            arr = self.obj[field]
            if units == "dimensionless":
                arr = arr.to("dimensionless") if hasattr(arr, "units") else arr
            else:
                arr = arr.to(units)
            self.cache[key] = np.array(getattr(arr, "d", arr), dtype=np.float64)
        return self.cache[key]


def _convert(name, source, read, values, family, label):
    """Values [CGS] of one Grackle field from its source; ``values`` holds the fields done so far."""
    raw = read(source.field, KINDS[source.kind])
    kind = source.kind
    if kind in ("mass_density", "specific_energy", "temperature"):
        return raw
    if kind == "electron_mass_density":
        from yt.utilities.physical_constants import me, mp

        return raw * float((mp / me).to("dimensionless"))
    if kind == "mass_fraction":
        return raw * values["density"]
    if kind == "electrons_per_H":
        hydrogen = [values[h] for h in _HYDROGEN if h in values]
        if not hydrogen:
            raise SnapshotFieldError(
                f"from_yt: family {family!r} ({label}) reads {name} from {_fmt(source.field)} as n_e / n_H, which "
                f"needs the hydrogen species ({', '.join(_HYDROGEN)}); the dataset has none of them")
        return raw * np.sum(hydrogen, axis=0)
    if kind == "abundance":
        if raw.ndim != values["density"].ndim + 1:
            raise ValueError(f"from_yt: family {family!r} ({label}): {_fmt(source.field)} should be a "
                             f"(cells, columns) array of abundances; it has shape {raw.shape}")
        ncol = raw.shape[-1]
        need = max((col for col, _ in source.terms), default=-1)
        if need >= ncol:
            raise ValueError(f"from_yt: family {family!r} ({label}): {name} needs column {need} of "
                             f"{_fmt(source.field)}, which has only {ncol} columns")
        x = np.full(raw.shape[:-1], source.offset, dtype=np.float64)
        for col, coef in source.terms:
            x = x + coef * raw[..., col]
        if source.offset:
            x = np.maximum(x, 0.0)
        return x * source.mass * values["density"] / (1.0 + 4.0 * SGCHEM_ABHE)
    raise ValueError(f"unknown conversion kind {kind!r} (known: {sorted(KINDS)})")


def _gas_ptype(ds, used_fields):
    ptypes = [p for p in ds.particle_types if p not in ("all", "nbody")]
    for field in used_fields:
        if field[0] in ptypes:
            return field[0]
    for p in getattr(ds, "_sph_ptypes", ()) or ():
        if p in ptypes:
            return p
    for p in ("PartType0", "io", "gas", "Gas"):
        if p in ptypes:
            return p
    if ptypes:
        return ptypes[0]
    raise ValueError(f"from_yt: {ds} has no particle type to take positions from")


# ------------------------------------------------------------------------------------------------ from_yt

def from_yt(data, *, family=None):
    """Grackle-named gas fields, in proper CGS, from a yt dataset or data object.

    Parameters
    ----------
    data : yt Dataset or yt data object
        A grid dataset (Enzo, ``yt.load_uniform_grid``, ...) gives the level-0 covering grid
        (``ds.covering_grid(0, ds.domain_left_edge, ds.domain_dimensions)``); a covering grid object
        gives its own cells; any other data object of a grid dataset (region, sphere, ``all_data()``)
        gives its cells flattened along ``"cell"``. A particle dataset (Gadget/GIZMO/AREPO HDF5
        ``PartType0``, ``yt.load_particles``) or any data object of one gives its gas particles along
        ``"cell"``.
    family : str, optional
        A key of :data:`FAMILIES`; detected from the dataset's field list when None
        (:func:`detect_family`).

    Returns
    -------
    xarray.Dataset
        Variables (those the dataset has): ``density``, ``HI_density``, ``HII_density``, ``HM_density``,
        ``H2I_density``, ``H2II_density``, ``HeI_density``, ``HeII_density``, ``HeIII_density``,
        ``e_density`` (n_e m_H, Grackle's convention) [g cm^-3]; ``internal_energy`` [erg g^-1] where the
        dataset has it, else ``temperature`` [K]. Each variable has a ``units`` attribute (CF style)
        and ``yt_field`` naming its source.

        Dims ``("x", "y", "z")`` with cell-centre coordinates ``x, y, z`` [cm] (grids), or ``("cell",)``
        with coordinates ``particle_position_x/y/z`` [cm] and, where present, ``particle_mass`` [g],
        ``smoothing_length`` [cm] and ``particle_index`` (particles), or ``x, y, z`` [cm] (cells of a
        grid data object).

        Attributes: ``convention="grackle"``, ``source="yt:<family>"``, ``density_units``,
        ``length_units``, ``time_units``, ``a_units``, ``a_value`` (all 1.0) and
        ``comoving_coordinates=0``: the values are proper CGS.

    Raises
    ------
    SnapshotFieldError (a KeyError)
        If the family's ``density``, its energy (``internal_energy`` or ``temperature``), or both of
        its H2 and ionized-H fields are missing; the message names the fields and the family.
    ValueError
        If ``family`` is unknown or none can be detected (the message lists the families and the
        fields each needs).
    """
    _yt()
    ds, obj, layout = _resolve(data)
    if family is None:
        family = detect_family(ds)
        label = "detected from the field list"
    else:
        label = "requested"
        if family not in FAMILIES:
            raise ValueError(f"from_yt: unknown family {family!r}; known families: {sorted(FAMILIES)}")
    table = FAMILIES[family]
    available = _fields_of(ds)
    particle_types = set(ds.particle_types) - {"all", "nbody"} if layout == "particles" else set()

    chosen = {name: _pick(sources, available, layout, particle_types) for name, sources in table.items()}
    chosen = {name: src for name, src in chosen.items() if src is not None}

    def missing(names, why):
        wanted = [f"{n} from {' or '.join(_fmt(s.field) for s in table.get(n, ()))}" for n in names
                  if n in table]
        return SnapshotFieldError(
            f"from_yt: family {family!r} ({label}) needs {why}: {'; '.join(wanted) or ', '.join(names)}; "
            f"none of these fields is in {ds}")

    if "density" not in chosen:
        raise missing(["density"], "the gas density")
    if "H2I_density" not in chosen and "HII_density" not in chosen:
        raise missing(["H2I_density", "HII_density"], "the H2 or the ionized-hydrogen field")
    if "internal_energy" in chosen:
        chosen.pop("temperature", None)
    elif "temperature" not in chosen:
        raise missing(["internal_energy", "temperature"], "an energy or a temperature field")
    if "e_density" in chosen and chosen["e_density"].kind == "electrons_per_H" \
            and not any(h in chosen for h in _HYDROGEN):
        raise missing(list(_HYDROGEN), "hydrogen species to scale the electron abundance")

    read = _Reader(obj)
    values = {}
    for name in _NAMES:                      # density first: mass fractions and abundances need it
        if name in chosen:
            values[name] = _convert(name, chosen[name], read, values, family, label)

    shapes = {name: v.shape for name, v in values.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"from_yt: family {family!r}: the fields have different shapes {shapes}")

    if layout == "grid":
        dims = ("x", "y", "z")
        coords = {ax: ((ax,), read(("index", ax), "cm")[_axis_slice(i)], {"units": "cm"})
                  for i, ax in enumerate(dims)}
    else:
        dims = ("cell",)
        values = {name: v.reshape(-1) for name, v in values.items()}
        if layout == "cells":
            coords = {ax: (dims, read(("index", ax), "cm").reshape(-1), {"units": "cm"}) for ax in "xyz"}
        else:
            coords = _particle_coords(ds, read, [s.field for s in chosen.values()], available)

    variables = {}
    for name, v in values.items():
        source = chosen[name]
        units = _CF_UNITS[KINDS["mass_density" if source.kind not in ("specific_energy", "temperature")
                                 else source.kind]]
        attrs = {"units": units, "long_name": _LONG_NAMES.get(name, f"{name[:-8]} mass density"),
                 "yt_field": f"{source.field[0]}/{source.field[1]}"}
        variables[name] = (dims, v, attrs)
    out = xr.Dataset(variables, coords=coords)
    out.attrs.update({"convention": "grackle", "source": f"yt:{family}", "density_units": 1.0,
                      "length_units": 1.0, "time_units": 1.0, "a_units": 1.0, "a_value": 1.0,
                      "comoving_coordinates": 0, "yt_dataset": str(ds),
                      "yt_current_redshift": float(getattr(ds, "current_redshift", 0.0) or 0.0)})
    return out


def _axis_slice(i):
    return tuple(slice(None) if j == i else 0 for j in range(3))


def _particle_coords(ds, read, used_fields, available):
    ptype = _gas_ptype(ds, used_fields)
    dims = ("cell",)
    coords = {}
    for ax in "xyz":
        field = (ptype, f"particle_position_{ax}")
        if field not in available:
            raise SnapshotFieldError(f"from_yt: particle type {ptype!r} of {ds} has no {_fmt(field)}")
        coords[f"particle_position_{ax}"] = (dims, read(field, "cm"), {"units": "cm"})
    for name, units in (("particle_mass", "g"), ("smoothing_length", "cm")):
        if (ptype, name) in available:
            coords[name] = (dims, read((ptype, name), units), {"units": units})
    if (ptype, "particle_index") in available:
        index = read((ptype, "particle_index"), "dimensionless")
        coords["particle_index"] = (dims, index.astype(np.int64), {"units": "1"})
    return coords


# ------------------------------------------------------------------------------------------------ to_yt

def _yt_units(attr, name):
    """A yt/unyt unit string from a ``units`` attribute (CF style ``"g cm^-3"`` or unyt style)."""
    import re

    import unyt
    from unyt.exceptions import UnitParseError

    bad = (UnitParseError, ValueError, TypeError, SyntaxError)
    if attr is None:
        return "dimensionless"
    text = str(attr).strip()
    if text in ("", "1", "dimensionless", "none"):
        return "dimensionless"
    try:
        return str(unyt.Unit(text))
    except bad:
        factors = []
    for token in text.replace("*", " ").split():
        m = re.fullmatch(r"([A-Za-z_]+)(?:\^|\*\*)?([-+]?\d+(?:\.\d+)?)?", token)
        if not m:
            factors = None
            break
        factors.append(m.group(1) + (f"**({m.group(2)})" if m.group(2) else ""))
    try:
        if factors:
            return str(unyt.Unit("*".join(factors)))
    except bad:
        factors = None
    raise ValueError(f"to_yt: cannot read the units {attr!r} of {name!r} (use e.g. 'g cm^-3' or 'g/cm**3')")


def _length_in_cm(length_unit):
    import unyt

    if isinstance(length_unit, tuple):
        return float(unyt.unyt_quantity(float(length_unit[0]), length_unit[1]).to("cm").v)
    if isinstance(length_unit, str):
        return float(unyt.unyt_quantity(1.0, length_unit).to("cm").v)
    if hasattr(length_unit, "units"):
        return float(length_unit.to("cm").v)
    return float(length_unit)


def _values_in(var, units_to, name):
    """Values of an xarray variable converted from its ``units`` attribute into ``units_to``."""
    import unyt

    units = _yt_units(var.attrs.get("units", "cm"), name)
    return unyt.unyt_array(np.asarray(var.values, dtype=np.float64), units).to(units_to).d


def _field_data(var, name):
    units = _yt_units(var.attrs.get("units"), name)
    arr = np.asarray(var.values)
    if units == "dimensionless" and arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    return arr, units


def to_yt(fields, *, bbox=None, length_unit="cm"):
    """An in-memory yt dataset from Grackle-named fields (the inverse of :func:`from_yt`).

    Parameters
    ----------
    fields : xarray.Dataset
        Variables with a ``units`` attribute (CF style, e.g. ``"g cm^-3"``, or unyt style); variables
        without one (flags such as an int8 ``emu_status``) become dimensionless fields.

        - Dims ``x, y, z``: each variable over exactly these dims becomes a ``("gas", name)`` field of
          ``yt.load_uniform_grid`` (in its units); the cubes are taken in (x, y, z) order.
        - Dim ``cell`` with coordinates (or variables) ``particle_position_x/y/z`` (or ``x/y/z``):
          ``yt.load_particles``, particle type ``"io"``, each variable over ``cell`` an ``("io", name)``
          field, plus ``particle_position_*``, and ``particle_mass`` and ``smoothing_length`` where
          present (with ``smoothing_length`` and ``density`` yt treats ``"io"`` as SPH gas).

        Other variables are left out. ``fields.attrs`` (plain numbers and strings) go to
        ``ds.parameters``.
    bbox : array_like (3, 2), optional
        Domain edges in ``length_unit``. Default: from the cell-centre coordinates ``x, y, z`` [cm]
        (grid; the unit cube without them), or the particles' extent padded by 1 % (particles).
    length_unit : str, float or (value, unit), optional
        yt's code length (default ``"cm"``; a float is in cm). Field values are unaffected; positions
        and ``bbox`` are in this unit inside yt.

    Returns
    -------
    yt Dataset
        A ``StreamDataset`` (grid) or ``StreamParticlesDataset`` (particles).
    """
    yt = _yt()
    if not isinstance(fields, xr.Dataset):
        raise TypeError(f"to_yt takes an xarray.Dataset, not {type(fields).__name__}")
    lu_cm = _length_in_cm(length_unit)
    params = {k: v for k, v in fields.attrs.items() if isinstance(v, (str, int, float, np.number))}
    if {"x", "y", "z"} <= set(fields.dims):
        grid = ("x", "y", "z")
        data = {}
        for name, var in fields.data_vars.items():
            if set(var.dims) == set(grid):
                data["gas", str(name)] = _field_data(var.transpose(*grid), str(name))
        if not data:
            raise ValueError("to_yt: no variable over the dims (x, y, z)")
        shape = tuple(int(fields.sizes[d]) for d in grid)
        if bbox is None:
            bbox = _grid_bbox(fields, shape, lu_cm)
        return yt.load_uniform_grid(data, shape, length_unit=length_unit, bbox=np.asarray(bbox, dtype=float),
                                    parameters=params, dataset_name="thermoemu-grackle-grid")
    if "cell" in fields.dims:
        pos_names = [f"particle_position_{ax}" for ax in "xyz"]
        if not all(n in fields.variables for n in pos_names):
            pos_names = list("xyz")
            if not all(n in fields.variables for n in pos_names):
                raise ValueError("to_yt: dim 'cell' needs coordinates particle_position_x/y/z (or x/y/z) [cm]")
        pos = np.stack([_values_in(fields[n], "cm", n) for n in pos_names]) / lu_cm
        data = {("io", f"particle_position_{ax}"): (pos[i], "code_length") for i, ax in enumerate("xyz")}
        skip = set(pos_names) | {f"particle_position_{ax}" for ax in "xyz"}
        for name, var in fields.variables.items():
            name = str(name)
            if name in skip or var.dims != ("cell",) or name == "cell":
                continue
            if name in fields.coords and name not in ("particle_mass", "smoothing_length"):
                continue
            if name == "smoothing_length":
                data["io", name] = (_values_in(var, "cm", name) / lu_cm, "code_length")
            else:
                data["io", name] = _field_data(var, name)
        if bbox is None:
            lo, hi = pos.min(axis=1), pos.max(axis=1)
            pad = np.where(hi > lo, 0.01 * (hi - lo), np.maximum(np.abs(lo), 1.0 / lu_cm) * 0.01)
            bbox = np.stack([lo - pad, hi + pad], axis=1)
        return yt.load_particles(data, length_unit=length_unit, bbox=np.asarray(bbox, dtype=float),
                                 periodicity=(False, False, False), parameters=params,
                                 dataset_name="thermoemu-grackle-particles")
    raise ValueError(f"to_yt: fields need dims (x, y, z) or 'cell'; they have {tuple(fields.dims)}")


def _grid_bbox(fields, shape, lu_cm):
    """Domain edges [length_unit] from uniform cell-centre coordinates x, y, z [cm]; unit cube without."""
    if not all(ax in fields.coords for ax in "xyz"):
        return np.array([[0.0, 1.0]] * 3)
    centres = [_values_in(fields[ax], "cm", ax) for ax in "xyz"]
    widths = [float(np.mean(np.diff(c))) for c in centres if c.size > 1]
    if not widths:
        raise ValueError("to_yt: a single cell has no width; pass bbox")
    edges = []
    for c in centres:
        dx = float(np.mean(np.diff(c))) if c.size > 1 else widths[0]
        edges.append([c[0] - 0.5 * dx, c[-1] + 0.5 * dx])
    return np.asarray(edges) / lu_cm
