"""Command line and the reference solver on xarray grids (numpy- and dask-backed)."""

import numpy as np
import pytest
import xarray as xr

from thermoemu import integrate_state, primordial_state, ureg
from thermoemu.cli import main
from thermoemu.primordial.sampling import sample_region
from thermoemu.primordial.state import open_state, write_state


def cube(shape=(4, 3, 2), seed=0):
    n_H, x = sample_region(1, int(np.prod(shape)), np.random.default_rng(seed))
    dims = ("x", "y", "z")[:len(shape)]
    y = xr.DataArray(x[:6].T.reshape(shape + (6,)), dims=dims + ("species",),
                     coords={"species": ["H", "H2", "e-", "H+", "H-", "H2+"]})
    return primordial_state(xr.DataArray(n_H.reshape(shape), dims=dims),
                            xr.DataArray(x[6].reshape(shape), dims=dims), y)


def test_integrate_state_numpy_and_dask_agree():
    ds = cube()
    a = integrate_state(ds, "1e10 s")
    b = integrate_state(ds.chunk({"x": 2}), "1e10 s")
    assert b["temperature"].chunks is not None  # lazy
    b = b.compute()
    assert a["abundance"].dims == ("x", "y", "z", "species")
    assert a["success"].all()
    np.testing.assert_allclose(b["temperature"].values, a["temperature"].values, rtol=1e-4)
    np.testing.assert_allclose(b["abundance"].values, a["abundance"].values, rtol=1e-4, atol=1e-30)
    assert a["temperature"].attrs["units"] == "K"


def test_integrate_state_units_and_bad_dt():
    ds = cube((3,))
    a = integrate_state(ds, ureg.Quantity(1e10 / 3600.0, "hour"))
    b = integrate_state(ds, 1e10)
    np.testing.assert_allclose(a["temperature"].values, b["temperature"].values, rtol=1e-6)
    with pytest.raises(ValueError, match="dt = -1 s is not allowed"):
        integrate_state(ds, -1.0)
    with pytest.raises(ValueError, match="dt has units kg"):
        integrate_state(ds, "3 kg")


def test_cli_sample_integrate(tmp_path, capsys):
    state = tmp_path / "state.nc"
    out = tmp_path / "out.nc"
    assert main(["sample", "--region", "2", "--cells", "50", "-o", str(state)]) == 0
    assert main(["integrate", str(state), "--dt", "1e8s", "-o", str(out), "-q"]) == 0
    res = xr.open_dataset(out)
    assert res["success"].all() and res.sizes["cell"] == 50
    assert res["temperature"].attrs["units"] == "K"
    assert "flag_meanings" in res["status"].attrs
    res.close()
    assert main(["integrate", str(state), "--dt", "1e8 kg", "-o", str(out)]) == 2
    assert "dt has units kg" in capsys.readouterr().err
    # both backends (and threads) give the same cells to well within the tolerance
    other = tmp_path / "vectorized.nc"
    assert main(["integrate", str(state), "--dt", "1e8s", "-o", str(other), "-q", "--backend", "vectorized"]) == 0
    threaded = tmp_path / "threaded.nc"
    assert main(["integrate", str(state), "--dt", "1e8s", "-o", str(threaded), "-q", "--threads", "2"]) == 0
    with xr.open_dataset(out) as a, xr.open_dataset(other) as b, xr.open_dataset(threaded) as c:
        np.testing.assert_allclose(a["abundance"], b["abundance"], rtol=1e-5, atol=1e-30)
        np.testing.assert_array_equal(a["abundance"], c["abundance"])


def test_cli_integrate_any_dims(tmp_path):
    path = tmp_path / "cube.nc"
    write_state(cube(), path)
    assert main(["integrate", str(path), "--dt", "1e9s", "-o", str(tmp_path / "o.nc"), "-q"]) == 0
    back = open_state(tmp_path / "o.nc")
    assert back["abundance"].dims == ("x", "y", "z", "species")


def test_cli_collapse_writes_netcdf_and_plot(tmp_path):
    nc, png = tmp_path / "c.nc", tmp_path / "c.png"
    assert main(["collapse", "--reference", "--step-fraction", "0.1", "--n-end", "1e4", "-q",
                 "-o", str(nc), "--plot", str(png)]) == 0
    ds = xr.open_dataset(nc)
    assert set(ds.dims) >= {"step", "species"}
    assert float(ds["n_H"][-1]) == pytest.approx(1e4)
    ds.close()
    assert png.stat().st_size > 10_000


def test_uniform_density_broadcasts_over_temperature_grid():
    ds = primordial_state(1e6, xr.DataArray([50.0, 500.0, 5000.0], dims="cell"),
                          {"H2": 1e-3, "H+": 1e-5, "H-": 1e-12, "H2+": 1e-14}, complete=True)
    out = integrate_state(ds, "1e5")  # a plain number string is in seconds
    assert out["n_H"].dims == ("cell",) and bool(out["success"].all())


def test_cli_collapse_short_track_reports_success(tmp_path):
    assert main(["collapse", "--reference", "--n-end", "5", "-q", "-o", str(tmp_path / "c.nc")]) == 0


def test_collapse_refuses_impossible_initial_abundances():
    from thermoemu import collapse
    with pytest.raises(ValueError, match="2 y_H2 \\+ y_e < 1"):
        collapse(y_e=0.7, y_H2=0.2)
