"""One array path (issue 25): the emulator's hot loop in torch (thermoemu.primordial.tensor_path) against the
numpy loop, on the CPU in CI; torch tensors in and out; out-of-domain and Saha cells through the numpy code;
torch CUDA and cupy (DLPack, ``ds.emu.step`` on cupy-backed dask) where a GPU is present, skipped otherwise."""

import numpy as np
import pytest
import torch
from conftest import region_states

import thermoemu as te
from thermoemu.core.emulator import OutOfDomainError
from thermoemu.primordial.emulator import get_emulator
from thermoemu.primordial.physics.network import CONSERVATION_MATRIX, CONSERVATION_TARGET, free_fall_time
from thermoemu.primordial.saha_table import SahaTableSpec
from thermoemu.primordial.tensor_path import wants_tensor_path

#: The torch loop on the CPU against the numpy loop: the same float32 net inputs and batches, so the states
#: agree to float64 round-off (measured: 3.5e-14 relative at most over 2000 cells per region and update,
#: dt = 1e-4 to 30 t_ff). The contract is float32 rounding, which a GPU's nets reach.
RTOL = 2e-6
#: A small Saha table (built in about a second) for the cells above 1e18 cm^-3.
SMALL_SAHA = SahaTableSpec(n_points=60, e_points=80)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def emulator():
    return get_emulator("os25-deeponet").with_options(saha_table=SMALL_SAHA)


def _conservation(x):
    """Hydrogen-nucleus and charge residuals (2, N) of a state (7, N)."""
    return CONSERVATION_MATRIX @ x[:6] - CONSERVATION_TARGET[:, None]


def _steps(region, n, seed, lo, hi):
    """States of a region and steps log-uniform in [lo, hi] t_ff [s]."""
    n_H, x = region_states(region, n, seed=seed)
    dt = free_fall_time(n_H) * 10.0 ** np.random.default_rng(seed + 1).uniform(np.log10(lo), np.log10(hi), n)
    return n_H, x, dt


@pytest.mark.parametrize("update", ["timescale", "plain"])
@pytest.mark.parametrize("region", [0, 1, 2, 3, 4])
def test_torch_cpu_path_equals_numpy_path(emulator, region, update):
    n_H, x, dt = _steps(region, 400, 10 + region, 1e-4, 3.0)   # dt < tau for many variables, up to dt_max
    numpy_path = emulator.with_options(update=update)
    torch_path = numpy_path.with_options(array_path="torch")
    assert not wants_tensor_path(numpy_path, n_H, x, dt) and wants_tensor_path(torch_path, n_H, x, dt)
    ref, new = numpy_path.step_arrays(n_H, x, dt), torch_path.step_arrays(n_H, x, dt)
    assert isinstance(new.x, np.ndarray) and new.x.dtype == np.float64 and new.status.dtype == np.int8
    np.testing.assert_array_equal(new.status, ref.status)
    np.testing.assert_array_equal(new.success, ref.success)
    assert (ref.status == 0).all()
    np.testing.assert_allclose(new.x, ref.x, rtol=RTOL, atol=0)                   # abundances and T [K]
    assert np.abs(new.x - x).max(axis=1)[6] > 0                                   # the state did move
    assert np.abs(_conservation(new.x)).max() <= 1e-12                            # as on the numpy path
    assert np.abs(_conservation(ref.x)).max() <= 1e-12


@pytest.mark.parametrize("update", ["timescale", "plain"])
def test_substeps_above_dt_max_agree(emulator, update):
    """dt from 0.5 to 40 t_ff: 1 to 13 equal substeps <= dt_max = 10^0.5 t_ff, cells finishing at different times."""
    n_H, x, dt = _steps(2, 300, 21, 0.5, 40.0)
    numpy_path = emulator.with_options(update=update)
    nsub = np.ceil(dt / (numpy_path.regions[2].dt_max_over_t_ff * free_fall_time(n_H)) - 1e-12)
    assert nsub.min() == 1 and nsub.max() >= 12
    ref = numpy_path.step_arrays(n_H, x, dt)
    new = numpy_path.with_options(array_path="torch").step_arrays(n_H, x, dt)
    np.testing.assert_allclose(new.x, ref.x, rtol=RTOL, atol=0)
    assert np.abs(_conservation(new.x)).max() <= 1e-12


def test_torch_tensors_in_tensors_out(emulator):
    n_H, x, dt = _steps(1, 200, 31, 1e-3, 1.0)
    ref = emulator.step_arrays(n_H, x, dt)
    out = emulator.step_arrays({"n_H": torch.from_numpy(n_H)}, torch.from_numpy(x), torch.from_numpy(dt))
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu"
               for v in (out.x, out.success, out.out_of_domain, out.status))
    assert (out.x.dtype, out.success.dtype, out.out_of_domain.dtype, out.status.dtype) == (
        torch.float64, torch.bool, torch.bool, torch.int8)
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(out.status.numpy(), ref.status)
    # a scalar dt, and only n_H a tensor: still tensors out
    one = emulator.step_arrays(torch.from_numpy(n_H), x, float(dt[0]))
    assert isinstance(one.x, torch.Tensor)
    np.testing.assert_allclose(one.x.numpy(), emulator.step_arrays(n_H, x, float(dt[0])).x, rtol=RTOL, atol=0)


def _mixed_cells():
    """Cells of every region, then: too hot (1e5 K), n_H below the regions (1e-5 cm^-3), above the Saha density
    (1e19 and 1e20 cm^-3; one with dt = 0), H- below the trained floor (clamped), and dt = 0."""
    n_H, x = np.concatenate([region_states(r, 6, seed=40 + r)[0] for r in range(5)]), np.concatenate(
        [region_states(r, 6, seed=40 + r)[1] for r in range(5)], axis=1)
    base = region_states(1, 6, seed=50)[1]
    extra_n = np.array([1e6, 1e-5, 1e19, 1e20, 1e6, 1e6])
    extra_x = base.copy()
    extra_x[6, 0] = 1e5
    extra_x[6, 2:4] = [2000.0, 500.0]
    extra_x[4, 4] = 1e-35
    n_H, x = np.concatenate([n_H, extra_n]), np.concatenate([x, extra_x], axis=1)
    dt = 0.1 * free_fall_time(n_H)
    dt[[-3, -1]] = 0.0
    return n_H, x, dt


@pytest.mark.parametrize("policy", ["reference", "flag"])
def test_out_of_domain_and_saha_cells_as_on_the_numpy_path(emulator, policy):
    n_H, x, dt = _mixed_cells()
    numpy_path = emulator.with_options(out_of_domain=policy)
    ref = numpy_path.step_arrays(n_H, x, dt)
    new = numpy_path.with_options(array_path="torch").step_arrays(n_H, x, dt)
    tail = np.s_[-6:]
    np.testing.assert_array_equal(ref.status[tail], [2 if policy == "reference" else 3, 2 if policy == "reference"
                                                     else 3, 6, 6, 1, 0])
    for field in ("status", "success", "out_of_domain"):
        np.testing.assert_array_equal(getattr(new, field), getattr(ref, field))
    host = ref.status >= 2                      # fallback, flagged and Saha cells: the numpy code, bit for bit
    np.testing.assert_array_equal(new.x[:, host], ref.x[:, host])
    np.testing.assert_allclose(new.x[:, ~host], ref.x[:, ~host], rtol=RTOL, atol=0)
    assert np.isnan(new.x[:, ref.status == 3]).all() and np.isfinite(new.x[:, ref.status != 3]).all()
    # torch tensors in: the same, as tensors
    t = numpy_path.step_arrays(torch.from_numpy(n_H), torch.from_numpy(x), torch.from_numpy(dt))
    np.testing.assert_array_equal(t.status.numpy(), ref.status)
    np.testing.assert_array_equal(t.x.numpy()[:, host], ref.x[:, host])


def test_raise_policy_names_the_same_cell(emulator):
    n_H, x, dt = _mixed_cells()
    strict = emulator.with_options(out_of_domain="raise")
    with pytest.raises(OutOfDomainError) as numpy_error:
        strict.step_arrays(n_H, x, dt)
    with pytest.raises(OutOfDomainError) as torch_error:
        strict.with_options(array_path="torch").step_arrays(n_H, x, dt)
    assert str(torch_error.value) == str(numpy_error.value)


def test_updates_and_inputs_the_tensor_path_refuses(emulator):
    n_H, x, dt = _steps(1, 8, 60, 1e-3, 1e-2)
    tx = torch.from_numpy(x)
    for update in ("tangent", "shaped"):
        with pytest.raises(ValueError, match=f"update = '{update}' needs the reference network on the host; .* "
                                             "takes update 'timescale' or 'plain'"):
            emulator.with_options(update=update).step_arrays(n_H, tx, dt)
        with pytest.raises(ValueError, match=f"update = '{update}'"):
            emulator.with_options(update=update, array_path="torch").step_arrays(n_H, x, dt)
        # numpy input with array_path "auto" keeps the numpy loop for these updates
        assert isinstance(emulator.with_options(update=update).step_arrays(n_H, x, dt).x, np.ndarray)
    with pytest.raises(ValueError, match="array_path = 'numpy' takes numpy arrays, got torch input"):
        emulator.with_options(array_path="numpy").step_arrays(n_H, tx, dt)
    with pytest.raises(ValueError, match="array_path = 'cuda'; allowed: 'auto', 'numpy', 'torch'"):
        emulator.with_options(array_path="cuda")


# ----------------------------------------------------------------------------- GPU (skipped without one)
def _cuda_emulator():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    return get_emulator("os25-deeponet", device="cuda").with_options(saha_table=SMALL_SAHA)


#: The nets on a GPU against the CPU: float32 matmuls in another order (not measured here: no GPU in CI).
GPU_RTOL = 1e-5


@pytest.mark.gpu
def test_torch_cuda_tensors_against_the_numpy_path(emulator):
    gpu = _cuda_emulator()
    n_H, x, dt = _mixed_cells()
    ref = emulator.step_arrays(n_H, x, dt)
    out = gpu.step_arrays(*(torch.from_numpy(v).cuda() for v in (n_H, x, dt)))
    assert out.x.device.type == "cuda" and out.status.device.type == "cuda"
    np.testing.assert_array_equal(out.status.cpu().numpy(), ref.status)
    np.testing.assert_allclose(out.x.cpu().numpy(), ref.x, rtol=GPU_RTOL, atol=0)
    assert np.abs(_conservation(out.x.cpu().numpy())).max() <= 1e-12
    host = gpu.step_arrays(n_H, x, dt)        # numpy in with the nets on CUDA: the tensor path, numpy out
    assert isinstance(host.x, np.ndarray)
    np.testing.assert_allclose(host.x, ref.x, rtol=GPU_RTOL, atol=0)


def _cupy():
    cupy = pytest.importorskip("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:       # no driver, or no device
        count = 0
    if count < 1 or not torch.cuda.is_available():
        pytest.skip("no CUDA device for cupy and torch")
    return cupy


@pytest.mark.gpu
def test_cupy_arrays_in_cupy_arrays_out(emulator):
    cupy = _cupy()
    gpu = _cuda_emulator()
    n_H, x, dt = _mixed_cells()
    ref = emulator.step_arrays(n_H, x, dt)
    out = gpu.step_arrays(cupy.asarray(n_H), cupy.asarray(x), cupy.asarray(dt))
    assert all(isinstance(v, cupy.ndarray) for v in (out.x, out.success, out.out_of_domain, out.status))
    assert out.success.dtype == bool and out.status.dtype == np.int8
    np.testing.assert_array_equal(cupy.asnumpy(out.status), ref.status)
    np.testing.assert_allclose(cupy.asnumpy(out.x), ref.x, rtol=GPU_RTOL, atol=0)


@pytest.mark.gpu
def test_emu_step_on_a_cupy_backed_dask_grid():
    """``ds.emu.step(device="cuda")`` on a cupy-backed dask grid (on a dask-cuda LocalCUDACluster when the gpu
    extra is installed): cupy blocks through apply_stepper to the tensor path and back, as on the CPU."""
    cupy = _cupy()
    n_H, x = region_states(2, 512, seed=70)
    ds = te.primordial_state(n_H, x[6], abundance=x[:6].T, dims="cell")
    dt = 0.01 * te.free_fall_time(ds["n_H"])
    ref = ds.emu.step(dt, model="os25-deeponet")
    gpu_ds = ds.chunk({"cell": 128})
    for name in ("n_H", "temperature", "abundance"):
        gpu_ds[name] = gpu_ds[name].copy(data=gpu_ds[name].data.map_blocks(cupy.asarray))
    try:
        from dask_cuda import LocalCUDACluster
        from distributed import Client
    except ImportError:
        client = None
    else:
        client = Client(LocalCUDACluster(n_workers=1))
    try:
        out = gpu_ds.emu.step(dt, model="os25-deeponet", device="cuda").compute()
    finally:
        if client is not None:
            client.cluster.close()
            client.close()
    assert isinstance(out["temperature"].data, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(out["temperature"].data), ref["temperature"].values, rtol=GPU_RTOL)
    np.testing.assert_allclose(cupy.asnumpy(out["abundance"].data), ref["abundance"].values, rtol=GPU_RTOL)
    np.testing.assert_array_equal(cupy.asnumpy(out["emu_status"].data), ref["emu_status"].values)


def test_apply_stepper_bridge_on_dask_blocks_with_the_tensor_path(emulator):
    """The xarray / dask bridge (core.grid.apply_stepper) hands each block to step_arrays; with the tensor path
    forced on the CPU it returns what the numpy path does (the route cupy blocks take on a GPU)."""
    from thermoemu.core.grid import apply_stepper
    from thermoemu.primordial.state import state_vector

    n_H, x = region_states(3, 256, seed=80)
    ds = te.primordial_state(n_H, x[6], abundance=x[:6].T, dims="cell").chunk({"cell": 64})
    dt = ds["n_H"] * 0 + 0.05 * free_fall_time(n_H)
    results = [apply_stepper(e, {"n_H": ds["n_H"]}, state_vector(ds), dt, vector_dim="variable")
               for e in (emulator, emulator.with_options(array_path="torch"))]
    (ref, *_), (new, *_) = results
    assert new.chunks is not None
    np.testing.assert_allclose(new.values, ref.values, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(results[1][3].values, results[0][3].values)
