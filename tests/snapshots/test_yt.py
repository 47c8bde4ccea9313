"""thermoemu.snapshots.yt against real yt: stream grids and particles, and hand-written GIZMO / AREPO
HDF5 snapshots loaded by yt's own frontends. Nothing is downloaded."""

import numpy as np
import pytest

yt = pytest.importorskip("yt")
h5py = pytest.importorskip("h5py")

from yt.utilities.physical_constants import me as _me
from yt.utilities.physical_constants import mp as _mp

from thermoemu.snapshots.yt import FAMILIES, SGCHEM_ABHE, from_yt, to_yt

yt.set_log_level(40)

SPECIES = ["HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density",
           "HeI_density", "HeII_density", "HeIII_density"]
GRACKLE = ["density"] + SPECIES + ["e_density"]
ATTRS = {"convention": "grackle", "density_units": 1.0, "length_units": 1.0, "time_units": 1.0,
         "a_units": 1.0, "a_value": 1.0, "comoving_coordinates": 0}

# unyt's values, the ones yt converts code units with (unyt's parsec is 3.0856775809623245e18 cm)
MSUN_G = 1.98841586e33
PC_CM = 3.0856775809623245e18
KPC_CM = 3.085677580962325e21
# the ratio yt's Enzo frontend and gracklepy's yt glue use (yt.utilities.physical_constants: mp is m_H there)
M_P_OVER_M_E = float((_mp / _me).to("dimensionless"))


def _cube_fields(n=8, seed=0):
    rng = np.random.default_rng(seed)
    out = {name: rng.uniform(0.1, 1.0, (n, n, n)) * 1e-24 for name in GRACKLE}
    out["internal_energy"] = rng.uniform(1e10, 1e13, (n, n, n))
    return out


def _check_attrs(ds, family):
    for key, value in ATTRS.items():
        assert ds.attrs[key] == value
    assert ds.attrs["source"] == f"yt:{family}"


# ------------------------------------------------------------------------------------------- grids

def test_uniform_grid_grackle_names_and_round_trip():
    n = 8
    values = _cube_fields(n)
    data = {name: (v, "erg/g" if name == "internal_energy" else "g/cm**3") for name, v in values.items()}
    ds = yt.load_uniform_grid(data, (n, n, n), length_unit="pc", bbox=np.array([[0.0, 8.0]] * 3))

    out = from_yt(ds)
    _check_attrs(out, "grackle")
    assert out["density"].dims == ("x", "y", "z")
    for name, v in values.items():
        np.testing.assert_allclose(out[name].values, v, rtol=1e-15, atol=0)
    assert out["density"].attrs["units"] == "g cm^-3"
    assert out["internal_energy"].attrs["units"] == "erg g^-1"
    assert "temperature" not in out                     # internal energy wins
    np.testing.assert_allclose(out["x"].values, (np.arange(n) + 0.5) * PC_CM, rtol=1e-14)

    # the covering grid object itself, and a region (flattened cells)
    cg = ds.covering_grid(0, ds.domain_left_edge, ds.domain_dimensions)
    np.testing.assert_array_equal(from_yt(cg)["HI_density"].values, out["HI_density"].values)
    cells = from_yt(ds.all_data())
    assert cells["HI_density"].dims == ("cell",) and cells.sizes["cell"] == n ** 3
    assert {"x", "y", "z"} <= set(cells.coords)

    # back to yt, with an int8 flag, and in again
    res = out.copy()
    res["emu_status"] = (("x", "y", "z"), np.arange(n ** 3, dtype=np.int8).reshape(n, n, n) % 3)
    ds2 = to_yt(res, length_unit="pc")
    assert ("gas", "HI_density") in ds2.field_list
    cg2 = ds2.covering_grid(0, ds2.domain_left_edge, ds2.domain_dimensions)
    assert str(cg2["gas", "HI_density"].units) == "g/cm**3"
    np.testing.assert_array_equal(cg2["gas", "emu_status"].d, res["emu_status"].values)
    assert str(cg2["gas", "emu_status"].units) == "dimensionless"
    np.testing.assert_allclose(ds2.domain_right_edge.to("pc").d, 8.0, rtol=1e-14)
    back = from_yt(ds2)
    _check_attrs(back, "grackle")
    for name, v in values.items():
        np.testing.assert_allclose(back[name].values, v, rtol=1e-15, atol=0)
    np.testing.assert_allclose(back["x"].values, out["x"].values, rtol=1e-14)


def test_enzo_like_grid_universal_species_fields():
    """yt's universal species names (what Enzo's fields are aliased to); El_density is the electrons' mass."""
    n = 4
    v = _cube_fields(n, seed=1)
    universal = {"density": "density", "HI_density": "H_p0_density", "HII_density": "H_p1_density",
                 "HM_density": "H_m1_density", "H2I_density": "H2_p0_density", "H2II_density": "H2_p1_density",
                 "HeI_density": "He_p0_density", "HeII_density": "He_p1_density", "HeIII_density": "He_p2_density"}
    data = {("gas", yt_name): (v[name], "g/cm**3") for name, yt_name in universal.items()}
    data["gas", "El_density"] = (v["e_density"] / M_P_OVER_M_E, "g/cm**3")
    data["gas", "specific_thermal_energy"] = (v["internal_energy"], "erg/g")
    ds = yt.load_uniform_grid(data, (n, n, n), length_unit="cm")
    out = from_yt(ds)
    _check_attrs(out, "enzo")
    for name in GRACKLE + ["internal_energy"]:
        np.testing.assert_allclose(out[name].values, v[name], rtol=2e-15, atol=0, err_msg=name)
    assert out["e_density"].attrs["yt_field"] == "gas/El_density"


def test_temperature_used_when_no_energy():
    n = 4
    v = _cube_fields(n, seed=2)
    data = {name: (v[name], "g/cm**3") for name in GRACKLE}
    data["temperature"] = (np.full((n, n, n), 321.0), "K")
    out = from_yt(yt.load_uniform_grid(data, (n, n, n)))
    assert "internal_energy" not in out
    np.testing.assert_array_equal(out["temperature"].values, 321.0)
    assert out["temperature"].attrs["units"] == "K"


# ------------------------------------------------------------------------------------------- particles

def test_particles_grackle_names_and_round_trip():
    N = 50
    rng = np.random.default_rng(3)
    pos = rng.uniform(0.0, 3e20, (3, N))
    values = {name: rng.uniform(0.1, 1.0, N) * 1e-24 for name in GRACKLE}
    values["internal_energy"] = rng.uniform(1e10, 1e13, N)
    data = {("io", f"particle_position_{ax}"): (pos[i], "cm") for i, ax in enumerate("xyz")}
    data["io", "particle_mass"] = (rng.uniform(1e32, 1e33, N), "g")
    data["io", "smoothing_length"] = (np.full(N, 2e19), "cm")
    for name, v in values.items():
        data["io", name] = (v, "erg/g" if name == "internal_energy" else "g/cm**3")
    ds = yt.load_particles(data, length_unit="cm", bbox=np.array([[0.0, 3e20]] * 3))

    out = from_yt(ds)
    _check_attrs(out, "grackle")
    assert out["density"].dims == ("cell",) and out.sizes["cell"] == N
    for name, v in values.items():
        np.testing.assert_allclose(out[name].values, v, rtol=1e-15, atol=0, err_msg=name)
    for i, ax in enumerate("xyz"):
        np.testing.assert_allclose(out[f"particle_position_{ax}"].values, pos[i], rtol=1e-15)
    np.testing.assert_allclose(out["particle_mass"].values, data["io", "particle_mass"][0], rtol=1e-15)
    np.testing.assert_allclose(out["smoothing_length"].values, 2e19, rtol=1e-15)

    res = out.copy()
    res["emu_status"] = (("cell",), (np.arange(N) % 4).astype(np.int8))
    ds2 = to_yt(res, length_unit="kpc")
    ad = ds2.all_data()
    assert str(ad["io", "HI_density"].units) == "g/cm**3"
    np.testing.assert_array_equal(ad["io", "emu_status"].d, res["emu_status"].values)
    np.testing.assert_allclose(ad["io", "particle_position_x"].to("cm").d, pos[0], rtol=1e-14)
    back = from_yt(ds2)
    for name, v in values.items():
        np.testing.assert_allclose(back[name].values, v, rtol=1e-15, atol=0, err_msg=name)
    for name in ("particle_position_x", "particle_position_z", "particle_mass", "smoothing_length"):
        np.testing.assert_allclose(back[name].values, out[name].values, rtol=1e-14, err_msg=name)


# ------------------------------------------------------------------------------------------- GIZMO

GIZMO_SPECIES = {"HI_density": "GrackleHI", "HII_density": "GrackleHII", "HM_density": "GrackleHM",
                 "H2I_density": "GrackleH2I", "H2II_density": "GrackleH2II", "HeI_density": "GrackleHeI",
                 "HeII_density": "GrackleHeII", "HeIII_density": "GrackleHeIII"}


def _header(group, n_gas, **extra):
    group.attrs["NumPart_ThisFile"] = np.array([n_gas, 0, 0, 0, 0, 0], dtype=np.int32)
    group.attrs["NumPart_Total"] = np.array([n_gas, 0, 0, 0, 0, 0], dtype=np.uint32)
    group.attrs["NumPart_Total_HighWord"] = np.zeros(6, dtype=np.uint32)
    group.attrs["MassTable"] = np.zeros(6)
    group.attrs["NumFilesPerSnapshot"] = np.int32(1)
    for flag in ("Flag_Sfr", "Flag_Cooling", "Flag_Feedback", "Flag_StellarAge", "Flag_Metals",
                 "Flag_DoublePrecision"):
        group.attrs[flag] = np.int32(0)
    for key, value in extra.items():
        group.attrs[key] = value


def _write_gizmo(path, n=24, a=0.5, h=0.7, box=100.0, drop=(), seed=4):
    """A cosmological GIZMO snapshot (default Gadget units: kpc/h comoving, 1e10 Msun/h, (km/s)^2)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "Coordinates": rng.uniform(0.0, box, (n, 3)),
        "Velocities": rng.normal(0.0, 10.0, (n, 3)),
        "ParticleIDs": np.arange(1, n + 1, dtype=np.uint32),
        "Masses": rng.uniform(1e-5, 2e-5, n),
        "Density": rng.uniform(1e-3, 1e-1, n),
        "InternalEnergy": rng.uniform(10.0, 1e4, n),
        "SmoothingLength": rng.uniform(1.0, 5.0, n),
        "ElectronAbundance": rng.uniform(1e-4, 1e-2, n),
    }
    fractions = rng.dirichlet(np.ones(8), n) * 0.999           # mass fractions, sum < 1
    for i, name in enumerate(GIZMO_SPECIES.values()):
        arrays[name] = fractions[:, i]
    with h5py.File(path, "w") as f:
        _header(f.create_group("Header"), n, Time=a, Redshift=1.0 / a - 1.0, BoxSize=box, Omega0=0.3,
                OmegaLambda=0.7, HubbleParam=h, GIZMO_version=np.int32(2022),
                ComovingIntegrationOn=np.int32(1), Omega_Matter=0.3, Omega_Lambda=0.7, Omega_Baryon=0.05,
                Omega_Radiation=0.0)
        g = f.create_group("PartType0")
        for name, arr in arrays.items():
            if name not in drop:
                g[name] = arr
    return arrays


def test_gizmo_grackle_snapshot(tmp_path):
    a, h = 0.5, 0.7
    path = tmp_path / "snapshot_010.hdf5"
    arr = _write_gizmo(path, a=a, h=h)
    ds = yt.load(str(path))
    from yt.frontends.gizmo.data_structures import GizmoDataset
    assert isinstance(ds, GizmoDataset)

    out = from_yt(ds)
    _check_attrs(out, "gizmo-grackle")
    assert out["density"].dims == ("cell",) and out.sizes["cell"] == len(arr["Density"])
    order = np.argsort(out["particle_index"].values)           # compare particle by particle (IDs 1..n)
    out = out.isel(cell=order)
    np.testing.assert_array_equal(out["particle_index"].values, arr["ParticleIDs"])

    # code units by hand: kpc/h comoving -> a kpc / h; 1e10 Msun/h; (km/s)^2
    length = KPC_CM * a / h
    mass = 1e10 * MSUN_G / h
    rho = arr["Density"] * mass / length ** 3
    np.testing.assert_allclose(out["density"].values, rho, rtol=1e-13)
    for name, field in GIZMO_SPECIES.items():
        np.testing.assert_allclose(out[name].values, arr[field] * rho, rtol=1e-13, err_msg=name)
    hydrogen = sum(arr[GIZMO_SPECIES[s]] for s in ("HI_density", "HII_density", "HM_density",
                                                   "H2I_density", "H2II_density"))
    np.testing.assert_allclose(out["e_density"].values, arr["ElectronAbundance"] * hydrogen * rho, rtol=1e-13)
    np.testing.assert_allclose(out["internal_energy"].values, arr["InternalEnergy"] * 1e10, rtol=1e-13)
    for i, ax in enumerate("xyz"):
        np.testing.assert_allclose(out[f"particle_position_{ax}"].values, arr["Coordinates"][:, i] * length,
                                   rtol=1e-13)
    np.testing.assert_allclose(out["particle_mass"].values, arr["Masses"] * mass, rtol=1e-13)
    np.testing.assert_allclose(out["smoothing_length"].values, arr["SmoothingLength"] * length, rtol=1e-13)
    assert out.attrs["yt_current_redshift"] == pytest.approx(1.0 / a - 1.0)

    # and on to an in-memory particle dataset
    ds2 = to_yt(out)
    back = from_yt(ds2)
    np.testing.assert_allclose(back["H2I_density"].values, out["H2I_density"].values, rtol=1e-15)


def test_gizmo_missing_species_names_field_and_family(tmp_path):
    path = tmp_path / "snapshot_011.hdf5"
    _write_gizmo(path, n=8, drop=("GrackleH2I", "GrackleHII"))
    ds = yt.load(str(path))
    with pytest.raises(KeyError) as err:
        from_yt(ds)
    msg = str(err.value)
    assert "gizmo-grackle" in msg and "GrackleH2I" in msg and "GrackleHII" in msg and "detected" in msg


# ------------------------------------------------------------------------------------------- AREPO

def test_arepo_sgchem_snapshot(tmp_path):
    n = 16
    rng = np.random.default_rng(5)
    ca = np.column_stack([rng.uniform(0, 0.4, n), rng.uniform(0, 0.1, n), rng.uniform(0, 1e-6, n),
                          rng.uniform(0, 1e-6, n), rng.uniform(0, 0.03, n), rng.uniform(0, 0.03, n)])
    density = rng.uniform(1e-3, 1.0, n)
    energy = rng.uniform(1.0, 100.0, n)
    path = tmp_path / "snap_000.hdf5"
    with h5py.File(path, "w") as f:
        _header(f.create_group("Header"), n, Time=0.0, Redshift=0.0, BoxSize=10.0, Omega0=0.0,
                OmegaLambda=0.0, HubbleParam=1.0, UnitLength_in_cm=PC_CM, UnitMass_in_g=MSUN_G,
                UnitVelocity_in_cm_per_s=1e5)
        cfg = f.create_group("Config")
        cfg.attrs["VORONOI"] = np.int32(1)
        cfg.attrs["SGCHEM"] = np.int32(1)
        cfg.attrs["CHEMISTRYNETWORK"] = np.int32(1)
        g = f.create_group("PartType0")
        g["Coordinates"] = rng.uniform(0.0, 10.0, (n, 3))
        g["Velocities"] = rng.normal(0.0, 1.0, (n, 3))
        g["ParticleIDs"] = np.arange(1, n + 1, dtype=np.uint32)
        g["Masses"] = rng.uniform(0.5, 1.0, n)
        g["Density"] = density
        g["InternalEnergy"] = energy
        g["ChemicalAbundances"] = ca
    ds = yt.load(str(path))
    from yt.frontends.arepo.data_structures import ArepoHDF5Dataset
    assert isinstance(ds, ArepoHDF5Dataset)

    out = from_yt(ds)
    _check_attrs(out, "arepo-sgchem")
    out = out.isel(cell=np.argsort(out["particle_index"].values))
    rho = density * MSUN_G / PC_CM ** 3
    np.testing.assert_allclose(out["density"].values, rho, rtol=1e-13)
    nHmH = rho / (1.0 + 4.0 * SGCHEM_ABHE)
    x_h2, x_hp, x_dp, x_hd, x_hep, x_hepp = ca.T
    expected = {"H2I_density": 2 * x_h2, "HII_density": x_hp, "HI_density": 1 - 2 * x_h2 - x_hp - x_hd,
                "HeII_density": 4 * x_hep, "HeIII_density": 4 * x_hepp,
                "HeI_density": 4 * (SGCHEM_ABHE - x_hep - x_hepp),
                "e_density": x_hp + x_dp + x_hep + 2 * x_hepp}
    for name, x in expected.items():
        np.testing.assert_allclose(out[name].values, x * nHmH, rtol=1e-13, err_msg=name)
    assert "HM_density" not in out and "H2II_density" not in out    # not in the snapshot: not invented
    np.testing.assert_allclose(out["internal_energy"].values, energy * 1e10, rtol=1e-13)
    assert "smoothing_length" in out.coords                     # generated by yt for AREPO


# ------------------------------------------------------------------------------------------- errors

def test_grid_missing_species_names_field_and_family():
    n = 4
    v = _cube_fields(n, seed=6)
    data = {name: (v[name], "g/cm**3") for name in ("density", "HI_density", "e_density")}
    data["internal_energy"] = (v["internal_energy"], "erg/g")
    ds = yt.load_uniform_grid(data, (n, n, n))
    with pytest.raises(KeyError) as err:
        from_yt(ds)
    msg = str(err.value)
    assert "'grackle'" in msg and "H2I_density" in msg and "HII_density" in msg


def test_requested_family_missing_field():
    n = 4
    v = _cube_fields(n, seed=7)
    ds = yt.load_uniform_grid({name: (v[name], "g/cm**3") for name in GRACKLE}, (n, n, n))
    with pytest.raises(KeyError) as err:
        from_yt(ds, family="gizmo-grackle")
    msg = str(err.value)
    assert "gizmo-grackle" in msg and "requested" in msg and "Density" in msg


def test_no_family_and_unknown_family():
    n = 4
    ds = yt.load_uniform_grid({"density": (np.ones((n, n, n)), "g/cm**3")}, (n, n, n))
    with pytest.raises(ValueError) as err:
        from_yt(ds)
    msg = str(err.value)
    for family in FAMILIES:
        assert repr(family) in msg
    assert "GrackleHI" in msg and "ChemicalAbundances" in msg
    with pytest.raises(ValueError, match="unknown family"):
        from_yt(ds, family="ramses")
