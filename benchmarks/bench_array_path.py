"""Cells/s of the emulator's numpy loop against the torch loop (thermoemu.primordial.tensor_path) on the CPU.

32768 cells of one density region (random states of OS25 Table 1), dt = 0.01 t_ff by default, one torch
thread, the shipped OS25-design models (os25-deeponet; the tensor path runs DeepONet sets). Prints cells/s of

* ``numpy``: ``Emulator.step_arrays`` on numpy arrays (the default path),
* ``torch (numpy in)``: the same call with ``array_path="torch"`` (numpy in, numpy out; what CI tests),
* ``torch (tensors in)``: CPU torch tensors in and out,

the best of ``--repeat`` timed calls each, and the ratios to the numpy loop, with the largest relative
difference of the torch loop's state from the numpy loop's.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_array_path.py [--cells 32768] [--region 2] [--dt-over-tff 0.01]
"""

import argparse
import time

import numpy as np
import torch


def best_time(fn, repeat):
    """Smallest wall time [s] of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=32768)
    p.add_argument("--region", type=int, default=2)
    p.add_argument("--dt-over-tff", type=float, default=0.01, help="step as a multiple of the free-fall time")
    p.add_argument("--update", default="timescale", choices=("timescale", "plain"))
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from thermoemu.primordial.emulator import get_emulator
    from thermoemu.primordial.physics.network import free_fall_time
    from thermoemu.primordial.sampling import sample_region

    n_H, x = sample_region(a.region, a.cells, np.random.default_rng(0))
    dt = a.dt_over_tff * free_fall_time(n_H)
    numpy_path = get_emulator("os25-deeponet").with_options(update=a.update, array_path="numpy")
    torch_path = numpy_path.with_options(array_path="torch")
    tn, tx, tdt = (torch.from_numpy(v) for v in (n_H, x, dt))
    runs = {"numpy": lambda: numpy_path.step_arrays(n_H, x, dt),
            "torch (numpy in)": lambda: torch_path.step_arrays(n_H, x, dt),
            "torch (tensors in)": lambda: numpy_path.with_options(array_path="auto").step_arrays(tn, tx, tdt)}
    speed = {name: a.cells / best_time(fn, a.repeat) for name, fn in runs.items()}
    ref, new = numpy_path.step_arrays(n_H, x, dt).x, torch_path.step_arrays(n_H, x, dt).x
    print(f"{a.cells} cells of region {a.region}, dt = {a.dt_over_tff:g} t_ff, update={a.update}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} thread")
    for name, v in speed.items():
        print(f"  {name:20s} {v:10.0f} cells/s   ratio to numpy {v / speed['numpy']:.2f}")
    print(f"  torch loop vs numpy loop: max relative difference {np.abs(new / ref - 1).max():.1e}")


if __name__ == "__main__":
    main()
