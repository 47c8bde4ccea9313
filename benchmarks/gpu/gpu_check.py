"""The emulator on a GPU (torch CUDA) against the CPU path, and its speed on a 256^3 cube of snapshot-like states.

1. Correctness: 32768 cells of the cube stepped by ``ds.emu.step(..., device="cuda")`` and on the CPU:
   max relative differences per variable (fp32 nets: expect ~1e-6).
2. Speed: cells/s of ``Emulator.step_arrays`` on the whole 256^3 cube (16.8M cells) in batches, fp32 and
   with TF32 matmuls (torch.backends.cuda.matmul.allow_tf32), with the accuracy cost of TF32 against fp32.

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
    cpu = state.emu.step(dt, device="cpu")
    gpu = state.emu.step(dt, device="cuda")
    diff = {"temperature": float(abs(gpu["temperature"] / cpu["temperature"] - 1).max())}
    for s in te.SPECIES:
        c, g = cpu["abundance"].sel(species=s), gpu["abundance"].sel(species=s)
        diff[s] = float((abs(g - c) / c.where(c > 1e-30)).max())
    result["max_rel_diff_cuda_vs_cpu"] = diff
    print("CUDA vs CPU, max relative difference:", json.dumps(diff))

    big = collapse_cube(a.size, seed=4)
    n_H, x = state_to_arrays(big["n_H"].values, big["temperature"].values, big["abundance"].values)
    dts = 0.01 * te.free_fall_time(n_H)
    emulator = Emulator("default", device="cuda")
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
    rel = np.abs(result["tf32_out"] / result["fp32_out"] - 1)
    result["tf32_max_rel_change"] = float(np.nanmax(rel))
    result["tf32_median_rel_change"] = float(np.nanmedian(rel))
    del result["fp32_out"], result["tf32_out"]
    print(f"TF32 against fp32: max relative change {result['tf32_max_rel_change']:.2e}, median "
          f"{result['tf32_median_rel_change']:.2e}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
