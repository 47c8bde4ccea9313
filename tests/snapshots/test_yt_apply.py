"""yt datasets applied: a uniform grid, a particle set and a Gadget-format (GIZMO) HDF5 file read by yt's own
frontend; each result equals ``ds.emu.step`` on the same cells."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

yt = pytest.importorskip("yt")
h5py = pytest.importorskip("h5py")

from thermoemu.snapshots.apply import apply_snapshot  # noqa: E402
from thermoemu.snapshots.examples import collapse_cube  # noqa: E402
from thermoemu.snapshots.grackle import (fields_from_state, fields_to_state,  # noqa: E402
                                         state_to_fields)
from thermoemu.snapshots.yt import from_yt  # noqa: E402

from test_yt import _header  # noqa: E402  (the hand-written Gadget header of the adapter's tests)

DT = "2e10 s"


def _cgs_fields(n=6, seed=5):
    """Grackle fields in CGS (density_units = 1) of a snapshot-like cube."""
    return fields_from_state(collapse_cube(n, seed=seed))


def _expected(fields):
    state = fields_to_state(fields)
    return state_to_fields(state.emu.step(DT), fields)


def _compare(out, expected, names=("HI_density", "H2I_density", "HII_density", "e_density", "internal_energy")):
    for name in names:
        np.testing.assert_allclose(out[name].values, expected[name].values, rtol=2e-6, atol=0, err_msg=name)


def test_a_yt_uniform_grid_applied(tmp_path):
    fields = _cgs_fields()
    units = {k: "erg/g" if k == "internal_energy" else "g/cm**3" for k in fields.data_vars}
    ds = yt.load_uniform_grid({k: (fields[k].values, units[k]) for k in fields.data_vars}, fields["density"].shape,
                              length_unit="pc")
    summary = apply_snapshot(ds, DT, tmp_path / "grid.nc", progress=False)
    assert summary["cells"] == 6 ** 3 and summary["failed"] == 0
    out = xr.open_dataset(tmp_path / "grid.nc")
    assert out["HI_density"].dims == ("x", "y", "z") and out.attrs["source"] == "yt:grackle"
    _compare(out, _expected(from_yt(ds)))


def test_a_yt_particle_dataset_applied(tmp_path):
    fields = _cgs_fields().stack(cell=("x", "y", "z")).reset_index("cell", drop=True)
    n = fields.sizes["cell"]
    rng = np.random.default_rng(1)
    data = {("io", k): (fields[k].values, "erg/g" if k == "internal_energy" else "g/cm**3") for k in fields.data_vars}
    for ax in "xyz":
        data[("io", f"particle_position_{ax}")] = (rng.uniform(0.0, 1.0, n), "pc")
    data[("io", "particle_mass")] = (np.full(n, 1e30), "g")
    ds = yt.load_particles(data, length_unit="pc", bbox=np.array([[0.0, 1.0]] * 3))
    summary = apply_snapshot(ds, DT, tmp_path / "particles.nc", progress=False)
    assert summary["cells"] == n
    out = xr.open_dataset(tmp_path / "particles.nc")
    assert out["HI_density"].dims == ("cell",)
    _compare(out, _expected(from_yt(ds)))


def test_a_gadget_format_file_through_yts_frontend_and_the_command_line(tmp_path):
    """A GIZMO snapshot of a Grackle-coupled run (mass fractions of the gas density, n_e/n_H, (km/s)^2),
    written by hand, read by yt's GIZMO frontend inside ``thermoemu apply``."""
    state = collapse_cube(4, seed=9).stack(cell=("x", "y", "z")).reset_index("cell", drop=True)
    fields = fields_from_state(state)                                   # CGS, neutral helium, y_He = 0.097
    n = fields.sizes["cell"]
    a, h = 1.0, 1.0   # h = 1: yt reads a non-cosmological GIZMO run without the h of its kpc/h units
    length, mass = 3.085677580962325e21 / h, 1e10 * 1.98841586e33 / h   # kpc/h, 1e10 Msun/h (a = 1)
    rho = fields["density"].values
    hydrogen = sum(fields[f].values for f in ("HI_density", "HII_density", "HM_density", "H2I_density",
                                              "H2II_density"))
    arrays = {"Coordinates": np.random.default_rng(2).uniform(0, 10.0, (n, 3)),
              "Velocities": np.zeros((n, 3)), "ParticleIDs": np.arange(1, n + 1, dtype=np.uint32),
              "Masses": np.full(n, 1e-6), "Density": rho / (mass / length ** 3),
              "InternalEnergy": fields["internal_energy"].values / 1e10, "SmoothingLength": np.full(n, 0.5),
              "ElectronAbundance": fields["e_density"].values / hydrogen}
    for name, gizmo in (("HI_density", "GrackleHI"), ("HII_density", "GrackleHII"), ("HM_density", "GrackleHM"),
                        ("H2I_density", "GrackleH2I"), ("H2II_density", "GrackleH2II"), ("HeI_density", "GrackleHeI"),
                        ("HeII_density", "GrackleHeII"), ("HeIII_density", "GrackleHeIII")):
        arrays[gizmo] = fields[name].values / rho
    path = tmp_path / "snapshot_000.hdf5"
    with h5py.File(path, "w") as f:
        _header(f.create_group("Header"), n, Time=a, Redshift=0.0, BoxSize=10.0, Omega0=0.3, OmegaLambda=0.7,
                HubbleParam=h, GIZMO_version=np.int32(2022), ComovingIntegrationOn=np.int32(0), Omega_Matter=0.3,
                Omega_Lambda=0.7, Omega_Baryon=0.05, Omega_Radiation=0.0)
        g = f.create_group("PartType0")
        for k, v in arrays.items():
            g[k] = v
    loaded = from_yt(yt.load(str(path)))
    assert loaded.attrs["source"] == "yt:gizmo-grackle"
    # the state yt's frontend gives back is the one written (n_H, T to rounding)
    again = fields_to_state(loaded)
    order = np.argsort(loaded["particle_index"].values)
    np.testing.assert_allclose(again["n_H"].values[order], state["n_H"].values, rtol=1e-12)
    np.testing.assert_allclose(again["temperature"].values[order], state["temperature"].values, rtol=1e-9)
    run = subprocess.run([sys.executable, "-m", "thermoemu.cli", "apply", str(path), "--dt", DT, "-o",
                          str(tmp_path / "gizmo.nc"), "-q"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"to {n} cells" in run.stdout
    _compare(xr.open_dataset(tmp_path / "gizmo.nc"), _expected(loaded))
