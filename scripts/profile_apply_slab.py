"""Where one slab of ``thermoemu apply`` spends its time, in this process (issue 25; docs/snapshots.md).

    python scripts/profile_apply_slab.py [--n 64] [--rows 32] [--dt "0.01 t_ff"]

Writes a Grackle-convention collapse cube (``grackle_cube``) of n^3 cells as netCDF in a temporary folder,
then times ``_slab_task`` (read, Grackle fields -> state, ``ds.emu.step``, state -> fields, write) on its
first ``rows`` x-planes against ``state.emu.step`` alone on the same cells (one torch thread, best of two),
and prints a cProfile of one slab by internal time.
"""

import argparse
import cProfile
import os
import pstats
import tempfile
import time

import torch

import thermoemu  # noqa: F401 - registers ds.emu
from thermoemu.snapshots.apply import _dt_of, _load_slab, _slab_task, parse_dt
from thermoemu.snapshots.conventions import detect_convention
from thermoemu.snapshots.examples import grackle_cube


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--dt", default="0.01 t_ff")
    a = p.parse_args()
    torch.set_num_threads(1)
    folder = tempfile.mkdtemp()
    source = os.path.join(folder, "cube.nc")
    grackle_cube(a.n, seed=a.n).to_netcdf(source)
    cells = a.rows * a.n * a.n
    options = {"dt": a.dt, "model": "default", "reference": False, "update": None, "out_of_domain": "reference",
               "convention": None}
    _slab_task(source, "x", 0, 1, options, os.path.join(folder, "warm.nc"), threads=1)
    best = min(_timed(lambda: _slab_task(source, "x", 0, a.rows, options, os.path.join(folder, "part.nc"), threads=1))
               for _ in range(2))
    fields = _load_slab(source, "x", 0, a.rows)
    convention = detect_convention(fields, None)
    state = convention.to_state(fields)
    dt = _dt_of(parse_dt(a.dt), fields, state, convention)
    step = min(_timed(lambda: state.emu.step(dt, model="default", out_of_domain="reference")) for _ in range(2))
    print(f"slab of {cells} cells: {best / cells * 1e6:.2f} us per cell; state.emu.step alone: "
          f"{step / cells * 1e6:.2f} us per cell")
    profile = cProfile.Profile()
    profile.enable()
    _slab_task(source, "x", 0, a.rows, options, os.path.join(folder, "part.nc"), threads=1)
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
