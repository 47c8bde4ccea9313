"""The emulator on a GPU (torch CUDA) against the CPU path, and its speed on a 256^3 cube of snapshot-like states.

1. Correctness: 32768 cells of the cube stepped by ``ds.emu.step(..., device="cuda")`` (the tensor path of
   thermoemu.primordial.tensor_path on the GPU, numpy blocks in) and on the CPU (the numpy path): max relative
   differences per variable (fp32 nets: expect ~1e-6).
   The one array path on the GPU against the numpy path on the CPU, on the same cells: torch CUDA tensors in
   and out, cupy arrays in and out (DLPack, when cupy is installed), and ``ds.emu.step`` on a cupy-backed
   dask grid (on a dask-cuda LocalCUDACluster when dask-cuda is installed): max relative differences, status
   codes equal, conservation.
2. Speed: cells/s of ``Emulator.step_arrays`` on the whole 256^3 cube (16.8M cells) in batches, fp32 and
   with TF32 matmuls (torch.backends.cuda.matmul.allow_tf32), with the accuracy cost of TF32 against fp32
   (numpy batches in and out: host copies per batch), and fp32 with the cube resident on the GPU as torch
   tensors (no host copies).

Run: python benchmarks/gpu/gpu_check.py [--size 256] [--batch 1048576] [--out DIR]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1 << 20)
    p.add_argument("--out", default="benchmarks/results/gpu")
    a = p.parse_args(argv)
    import thermoemu as te
    from thermoemu.primordial.emulator import Emulator
    from thermoemu.primordial.reference import state_to_arrays
    from thermoemu.snapshots.examples import collapse_cube

    result = {"cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    result["device"] = torch.cuda.get_device_name(0)
    n = 32
    state = collapse_cube(n, seed=3)
    dt = 0.01 * te.free_fall_time(state["n_H"])
    cpu = state.emu.step(dt, model="os25-deeponet", device="cpu")
    gpu = state.emu.step(dt, model="os25-deeponet", device="cuda")
    diff = {"temperature": float(abs(gpu["temperature"] / cpu["temperature"] - 1).max())}
    for s in te.SPECIES:
        c, g = cpu["abundance"].sel(species=s), gpu["abundance"].sel(species=s)
        diff[s] = float((abs(g - c) / c.where(c > 1e-30)).max())
    result["max_rel_diff_cuda_vs_cpu"] = diff
    print("CUDA vs CPU, max relative difference:", json.dumps(diff))
    result["tensor_path"] = check_tensor_path(state, dt)

    big = collapse_cube(a.size, seed=4)
    n_H, x = state_to_arrays(big["n_H"].values, big["temperature"].values, big["abundance"].values)
    dts = 0.01 * te.free_fall_time(n_H)
    emulator = Emulator("os25-deeponet", device="cuda")
    for mode in ("fp32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        emulator.step_arrays(n_H[:4096], x[:, :4096], dts[:4096])   # warm up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = np.empty_like(x)
        for i in range(0, n_H.size, a.batch):
            sl = slice(i, i + a.batch)
            out[:, sl] = emulator.step_arrays(n_H[sl], x[:, sl], dts[sl]).x
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        result[f"{mode}_cells_per_s"] = n_H.size / wall
        result[f"{mode}_out"] = out
        print(f"{mode}: {n_H.size} cells in {wall:.1f} s = {n_H.size / wall:.3e} cells/s")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    tn, tx, tdt = (torch.from_numpy(np.ascontiguousarray(v)).cuda() for v in (n_H, x, dts))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, n_H.size, a.batch):
        sl = slice(i, i + a.batch)
        emulator.step_arrays(tn[sl], tx[:, sl], tdt[sl])
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    result["fp32_resident_cells_per_s"] = n_H.size / wall
    print(f"fp32, tensors resident on the GPU: {n_H.size} cells in {wall:.1f} s = {n_H.size / wall:.3e} cells/s")
    del tn, tx, tdt
    rel = np.abs(result["tf32_out"] / result["fp32_out"] - 1)
    result["tf32_max_rel_change"] = float(np.nanmax(rel))
    result["tf32_median_rel_change"] = float(np.nanmedian(rel))
    del result["fp32_out"], result["tf32_out"]
    print(f"TF32 against fp32: max relative change {result['tf32_max_rel_change']:.2e}, median "
          f"{result['tf32_median_rel_change']:.2e}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))


def _max_rel(new, ref):
    """Largest relative difference per variable (7 rows: six abundances, T) where ref > 1e-30."""
    new, ref = np.asarray(new), np.asarray(ref)
    with np.errstate(all="ignore"):
        rel = np.where(np.abs(ref) > 1e-30, np.abs(new / ref - 1), 0.0)
    return [float(v) for v in np.nanmax(rel, axis=1)]


def check_tensor_path(state, dt):
    """The one array path on CUDA (torch tensors, cupy arrays, a cupy-backed dask grid) against the numpy path."""
    from thermoemu.primordial.emulator import Emulator
    from thermoemu.primordial.physics.network import CONSERVATION_MATRIX, CONSERVATION_TARGET
    from thermoemu.primordial.reference import state_to_arrays

    out = {}
    n_H, x = state_to_arrays(state["n_H"].values, state["temperature"].values, state["abundance"].values)
    dts = np.broadcast_to(np.asarray(getattr(dt, "values", dt), dtype=float), state["n_H"].shape).ravel().copy()
    ref = Emulator("os25-deeponet", device="cpu").step_arrays(n_H, x, dts)
    gpu = Emulator("os25-deeponet", device="cuda")
    t = gpu.step_arrays(*(torch.from_numpy(np.ascontiguousarray(v)).cuda() for v in (n_H, x, dts)))
    tx = t.x.cpu().numpy()
    out["torch_cuda"] = {"max_rel_diff": _max_rel(tx, ref.x), "device": str(t.x.device),
                         "status_equal": bool((t.status.cpu().numpy() == ref.status).all()),
                         "conservation": float(np.abs(CONSERVATION_MATRIX @ tx[:6] - CONSERVATION_TARGET[:, None]).max())}
    print("tensor path, torch CUDA vs numpy CPU:", json.dumps(out["torch_cuda"]))
    try:
        import cupy
    except ImportError:
        print("cupy not installed: cupy checks skipped")
        return out
    c = gpu.step_arrays(cupy.asarray(n_H), cupy.asarray(x), cupy.asarray(dts))
    out["cupy"] = {"types": sorted({type(v).__module__ for v in (c.x, c.success, c.out_of_domain, c.status)}),
                   "max_rel_diff": _max_rel(cupy.asnumpy(c.x), ref.x),
                   "status_equal": bool((cupy.asnumpy(c.status) == ref.status).all())}
    print("tensor path, cupy vs numpy CPU:", json.dumps(out["cupy"]))
    grid = state.chunk({d: max(1, n // 2) for d, n in state["n_H"].sizes.items()})
    for name in ("n_H", "temperature", "abundance"):
        grid[name] = grid[name].copy(data=grid[name].data.map_blocks(cupy.asarray))
    cpu_step = state.emu.step(dt, model="os25-deeponet", device="cpu")
    client = None
    try:
        from dask_cuda import LocalCUDACluster
        from distributed import Client
        client = Client(LocalCUDACluster(n_workers=1))
    except ImportError:
        print("dask-cuda not installed: the cupy-backed grid runs on dask's threads")
    try:
        stepped = grid.emu.step(dt, model="os25-deeponet", device="cuda").compute()
        out["cupy_dask"] = {
            "on": "LocalCUDACluster" if client is not None else "threads",
            "block_type": type(stepped["temperature"].data).__module__,
            "max_rel_diff_temperature": float(np.max(np.abs(cupy.asnumpy(stepped["temperature"].data)
                                                            / cpu_step["temperature"].values - 1))),
            "status_equal": bool((cupy.asnumpy(stepped["emu_status"].data) == cpu_step["emu_status"].values).all())}
    except Exception as exc:  # noqa: BLE001 -- one device call: report any failure and go on to the speed part
        out["cupy_dask"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if client is not None:
            client.cluster.close()
            client.close()
    print("ds.emu.step on a cupy-backed dask grid:", json.dumps(out["cupy_dask"]))
    return out


if __name__ == "__main__":
    main()
