"""``thermoemu apply``: a snapshot stepped slab by slab on a real dask cluster, written back in its convention;
resumed after an interruption; bad input refused clearly with the input untouched."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import thermoemu as te
from thermoemu.core.files import file_sha256
from thermoemu.snapshots.apply import ApplyError, apply_snapshot, parse_dt
from thermoemu.snapshots.examples import collapse_cube, grackle_cube
from thermoemu.snapshots.grackle import GrackleUnits, fields_to_state, state_to_fields

HYDROGEN = ("HI_density", "HII_density", "HM_density", "H2I_density", "H2II_density")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A 12^3 Grackle-convention cube of states along the reference collapse, in code units, as netCDF."""
    path = tmp_path_factory.mktemp("snap") / "snapshot.nc"
    grackle_cube(12, seed=7).to_netcdf(path)
    return path


def _expected(path, dt_fraction=0.01):
    fields = xr.open_dataset(path).load()
    state = fields_to_state(fields)
    new = state.emu.step(dt_fraction * te.free_fall_time(state["n_H"]))
    return fields, state_to_fields(new, fields), new


def test_apply_on_a_dask_cluster_equals_ds_emu_step_and_conserves(snapshot, tmp_path, dask_client):
    before = file_sha256(snapshot)
    summary = apply_snapshot(snapshot, "0.01 t_ff", tmp_path / "out.nc", client=dask_client, chunk_cells=500,
                             progress=False)
    assert file_sha256(snapshot) == before                                  # the input is only read
    assert summary["cells"] == 12 ** 3 and summary["parts"] == 4 and summary["parts_computed"] == 4
    assert summary["failed"] == 0 and summary["cells_per_s"] > 0 and summary["cluster"]["workers"] == 2
    out = xr.open_dataset(tmp_path / "out.nc")
    fields, expected, new = _expected(snapshot)
    for name in fields.data_vars:                                           # float32 nets: slabs move last bits
        np.testing.assert_allclose(out[name].values, expected[name].values, rtol=2e-6, atol=0, err_msg=name)
    np.testing.assert_array_equal(out["emu_status"].values, new["emu_status"].values)
    assert out["emu_status"].attrs["flag_meanings"].startswith("emulated ")
    assert out.attrs["thermoemu_apply_convention"] == "grackle" and out.attrs["density_units"] == fields.attrs[
        "density_units"]
    # hydrogen nuclei and charge, cell by cell, from the written fields
    h_in = sum(fields[k] for k in HYDROGEN)
    h_out = sum(out[k] for k in HYDROGEN)
    assert float(abs(h_out / h_in - 1).max()) < 1e-12
    charge = out["e_density"] - out["HeII_density"] / 4 - 2 * out["HeIII_density"] / 4 - (
        out["HII_density"] + out["H2II_density"] / 2 - out["HM_density"])
    assert float(abs(charge / out["e_density"]).max()) < 1e-12
    assert not (tmp_path / "out.nc.parts").exists()


def test_an_interrupted_run_resumes_with_only_the_missing_slabs(snapshot, tmp_path):
    whole = apply_snapshot(snapshot, "3e10 s", tmp_path / "whole.nc", n_workers=0, chunk_cells=300, progress=False)
    with pytest.raises(KeyboardInterrupt):
        apply_snapshot(snapshot, "3e10 s", tmp_path / "resumed.nc", n_workers=0, chunk_cells=300, progress=False,
                       stop_after=2)
    assert len(list((tmp_path / "resumed.nc.parts").glob("part-*.nc"))) == 2
    again = apply_snapshot(snapshot, "3e10 s", tmp_path / "resumed.nc", n_workers=0, chunk_cells=300,
                           progress=False)
    assert again["parts_kept"] == 2 and again["parts_computed"] == whole["parts"] - 2
    a, b = xr.open_dataset(tmp_path / "whole.nc"), xr.open_dataset(tmp_path / "resumed.nc")
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert a.attrs == b.attrs
    with pytest.raises(KeyboardInterrupt):
        apply_snapshot(snapshot, "3e10 s", tmp_path / "other.nc", n_workers=0, chunk_cells=300, progress=False,
                       stop_after=1)
    with pytest.raises(ApplyError, match="holds the parts of another run"):
        apply_snapshot(snapshot, "1e10 s", tmp_path / "other.nc", n_workers=0, chunk_cells=300, progress=False)


def test_dt_forms_and_their_errors(snapshot, tmp_path):
    assert parse_dt("1e10 s") == {"kind": "seconds", "value": 1e10}
    assert parse_dt("300 yr")["value"] == pytest.approx(300 * 3.15576e7)
    assert parse_dt("0.01 t_ff") == {"kind": "t_ff", "value": 0.01}
    assert parse_dt("timestep") == {"kind": "field", "name": "timestep"}
    with pytest.raises(ValueError, match="dt = -5.0 s is not allowed"):
        parse_dt(-5.0)
    fields = xr.open_dataset(snapshot).load()
    units = GrackleUnits.from_attrs(fields.attrs)
    local = xr.full_like(fields["density"], 2e10 / units.time_units)       # a code's local step, code units
    fields["timestep"] = local
    path = tmp_path / "with_dt.nc"
    fields.to_netcdf(path)
    by_field = apply_snapshot(path, "timestep", tmp_path / "a.nc", n_workers=0, progress=False)
    by_value = apply_snapshot(path, "2e10 s", tmp_path / "b.nc", n_workers=0, progress=False)
    assert by_field["cells"] == by_value["cells"]
    a, b = xr.open_dataset(tmp_path / "a.nc"), xr.open_dataset(tmp_path / "b.nc")
    np.testing.assert_allclose(a["H2I_density"].values, b["H2I_density"].values, rtol=1e-12)
    fields["timestep"] = fields["timestep"].isel(z=0)                        # the wrong shape
    fields.to_netcdf(tmp_path / "bad_dt.nc")
    with pytest.raises(te.StateError, match=r"dt field 'timestep' has dims \('x', 'y'\)"):
        apply_snapshot(tmp_path / "bad_dt.nc", "timestep", tmp_path / "c.nc", n_workers=0, progress=False)
    with pytest.raises(te.StateError, match="dt field 'nosuch' is not in the snapshot"):
        apply_snapshot(path, "nosuch", tmp_path / "d.nc", n_workers=0, progress=False)


def test_bad_input_is_refused_clearly_and_left_untouched(snapshot, tmp_path):
    fields = xr.open_dataset(snapshot).load()
    missing = tmp_path / "missing.nc"
    fields.drop_vars("H2I_density").to_netcdf(missing)
    with pytest.raises(te.StateError, match="no known snapshot convention matches the fields"):
        apply_snapshot(missing, "1e10 s", tmp_path / "o1.nc", n_workers=0, progress=False)
    negative = tmp_path / "negative.nc"
    fields.assign(HI_density=fields["HI_density"].where(fields["x"] > -0.4, -1.0)).to_netcdf(negative)
    digest = file_sha256(negative)
    with pytest.raises(te.StateError, match=r"slab 0 \(x 0\.\.11\): HI_density = -1 at"):
        apply_snapshot(negative, "1e10 s", tmp_path / "o2.nc", n_workers=0, progress=False)
    assert file_sha256(negative) == digest
    with pytest.raises(ApplyError, match="does not exist"):
        apply_snapshot(snapshot, "1e10 s", tmp_path / "no" / "such" / "o3.nc", n_workers=0, progress=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(ApplyError, match="is not writable"):
                apply_snapshot(snapshot, "1e10 s", locked / "o4.nc", n_workers=0, progress=False)
    finally:
        locked.chmod(0o700)
    with pytest.raises(ValueError, match="write .nc"):
        apply_snapshot(snapshot, "1e10 s", tmp_path / "o5.txt", n_workers=0, progress=False)
    # a state grid whose n_H lost its units attribute: the units are needed, and the message says so
    state = collapse_cube(3, seed=0)
    state["n_H"].attrs.pop("units")
    state.to_netcdf(tmp_path / "no_units.nc")
    with pytest.raises(te.UnitsError, match="n_H has no 'units' attribute; expected units convertible to cm"):
        apply_snapshot(tmp_path / "no_units.nc", "1e10 s", tmp_path / "o6.nc", n_workers=0, progress=False)


def test_state_grids_zarr_hdf5_and_the_reference_solver(tmp_path):
    pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    state = collapse_cube(6, seed=2)
    te.write_state(state, tmp_path / "state.nc")
    out = apply_snapshot(tmp_path / "state.nc", "1e10 s", tmp_path / "state_out.zarr", n_workers=0, progress=False)
    got = xr.open_zarr(tmp_path / "state_out.zarr").load()
    direct = te.open_state(tmp_path / "state.nc").emu.step("1e10 s")
    np.testing.assert_allclose(got["temperature"].values, direct["temperature"].values, rtol=2e-6)
    assert out["cells"] == 216 and got.attrs["thermoemu_apply_convention"] == "thermoemu"
    # Grackle fields in an HDF5 file (code units as root attributes), stepped by the reference solver
    fields = grackle_cube(6, seed=4)
    with h5py.File(tmp_path / "fields.h5", "w") as f:
        for k, v in fields.attrs.items():
            f.attrs[k] = v
        for name in fields.data_vars:
            f[name] = fields[name].values
    ref = apply_snapshot(tmp_path / "fields.h5", "1e10 s", tmp_path / "ref.nc", reference=True, n_workers=0,
                         progress=False)
    assert ref["failed"] == 0
    stepped = xr.open_dataset(tmp_path / "ref.nc")
    expected = state_to_fields(te.integrate_state(fields_to_state(fields), "1e10 s"), fields)
    np.testing.assert_allclose(stepped["H2I_density"].values, expected["H2I_density"].values, rtol=1e-12)
    assert stepped["emu_status"].attrs["long_name"] == "reference solver status"


def test_the_command_line(snapshot, tmp_path):
    run = subprocess.run([sys.executable, "-m", "thermoemu.cli", "apply", str(snapshot), "--dt", "0.01 t_ff", "-o",
                          str(tmp_path / "cli.nc"), "--workers", "0", "-q", "--summary", str(tmp_path / "s.json")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "applied default models to 1728 cells" in run.stdout and "0 flagged" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "thermoemu.cli", "apply", str(snapshot), "--dt", "soon", "-o",
                          str(tmp_path / "x.nc")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "dt field 'soon' is not in the snapshot" in bad.stderr


def test_the_command_line_and_the_function_share_the_default_slab_size():
    from thermoemu.snapshots import apply, cli
    assert cli.CHUNK_CELLS == apply.CHUNK_CELLS
