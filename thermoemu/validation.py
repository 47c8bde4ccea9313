"""Validation of the batched solver against per-cell scipy Radau, on a dask cluster.

``validate_solver(states_per_region=200)`` draws states from each Table 1 region, integrates them
over ``dt = dt_max = 10^0.5 t_ff`` with the batched Rosenbrock solver and with per-cell Radau
(rtol 1e-8), and compares ``log10 T`` and ``log10 y`` for every species above 1e-20 in either
result. The Radau integrations are spread over a dask cluster (a LocalCluster by default).

Run: ``python -m thermoemu.validation --states 200 --workers 2 -o validation.nc``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import xarray as xr

from .networks.primordial.network import SPECIES
from .reference import default_network, free_fall_time
from .sampling import REGIONS, sample_region
from .solvers.percell import integrate_per_cell
from .solvers.rosenbrock import SolverSettings, integrate

#: Acceptance: |d log10| per variable and fraction of states that must meet it.
TOLERANCE_DEX = 0.01
REQUIRED_FRACTION = 0.99
#: Species below this abundance in both results are not compared.
COMPARE_FLOOR = 1e-20


def _radau_block(n_H, x, dt, rtol):
    network = default_network()
    res = integrate_per_cell(network, x, network.cell_parameters(n_H), dt, method="Radau", rtol=rtol)
    return res.x, res.success


def validate_solver(states_per_region=200, *, regions=(0, 1, 2, 3, 4), seed=2026, rtol_reference=1e-8,
                    settings=None, client=None, n_workers=2, block=4, progress=True):
    """Compare the batched solver with per-cell Radau on random Table 1 states.

    Parameters
    ----------
    states_per_region : int
    regions : sequence of int
    seed : int
    rtol_reference : float
        Radau relative tolerance (absolute 1e-30 on abundances, 1e-8 K).
    settings : SolverSettings, optional
        Batched-solver settings (default settings if None).
    client : distributed.Client, optional
        An existing cluster's client; otherwise a LocalCluster with ``n_workers`` single-threaded
        worker processes is started and closed.
    block : int
        Cells per dask task.
    progress : bool

    Returns
    -------
    xarray.Dataset
        Per state (dim ``state``): region, n_H, initial state, both results, ``max_dlog10`` and
        ``passed``; attrs hold the pass fraction per region and wall times.
    """
    from distributed import Client, LocalCluster, as_completed

    network = default_network()
    settings = settings or SolverSettings()
    rng = np.random.default_rng(seed)
    parts = [sample_region(r, states_per_region, rng) for r in regions]
    n_H = np.concatenate([p[0] for p in parts])
    x0 = np.concatenate([p[1] for p in parts], axis=1)
    region = np.repeat(np.asarray(regions), states_per_region)
    dt = 10**0.5 * free_fall_time(n_H)

    t0 = time.perf_counter()
    batched = integrate(network, x0, network.cell_parameters(n_H), dt, settings)
    t_batched = time.perf_counter() - t0

    own = client is None
    if own:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        t0 = time.perf_counter()
        starts = list(range(0, n_H.size, block))
        futures = {client.submit(_radau_block, n_H[s:s + block], x0[:, s:s + block], dt[s:s + block],
                                 rtol_reference, pure=False): s for s in starts}
        ref = np.empty_like(x0)
        ref_ok = np.zeros(n_H.size, bool)
        for k, fut in enumerate(as_completed(futures), 1):
            s = futures[fut]
            xr_, ok = fut.result()
            ref[:, s:s + xr_.shape[1]] = xr_
            ref_ok[s:s + xr_.shape[1]] = ok
            if progress:
                sys.stderr.write(f"\rRadau reference: {k}/{len(starts)} blocks")
                sys.stderr.flush()
        if progress:
            sys.stderr.write("\n")
        t_radau = time.perf_counter() - t0
    finally:
        if own:
            client.close()
            cluster.close()

    d = _dlog10(batched.x, ref)
    max_d = d.max(axis=0)
    passed = (max_d <= TOLERANCE_DEX) & batched.success & ref_ok
    ds = xr.Dataset(
        {
            "region": ("state", region),
            "n_H": ("state", n_H, {"units": "cm^-3"}),
            "dt": ("state", dt, {"units": "s"}),
            "initial": (("variable", "state"), x0),
            "batched": (("variable", "state"), batched.x),
            "radau": (("variable", "state"), ref),
            "dlog10": (("variable", "state"), d),
            "max_dlog10": ("state", max_d),
            "batched_success": ("state", batched.success),
            "radau_success": ("state", ref_ok),
            "batched_substeps": ("state", batched.substeps),
            "passed": ("state", passed),
        },
        coords={"variable": list(SPECIES) + ["temperature"]},
        attrs={"tolerance_dex": TOLERANCE_DEX, "compare_floor": COMPARE_FLOOR,
               "rtol_reference": rtol_reference, "seed": seed, "batched_settings": str(settings.as_dict()),
               "wall_batched_s": t_batched, "wall_radau_s": t_radau},
    )
    for r in regions:
        ds.attrs[f"pass_fraction_region{r}"] = float(passed[region == r].mean())
    return ds


def _dlog10(a, b):
    """|log10 a - log10 b| for T and for abundances above COMPARE_FLOOR in either; 0 otherwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(np.log10(np.maximum(a, 1e-300)) - np.log10(np.maximum(b, 1e-300)))
    compare = np.maximum(a, b) > COMPARE_FLOOR
    compare[-1] = True
    return np.where(compare, d, 0.0)


def summarize(ds):
    """A text table of pass fractions and error percentiles per region."""
    lines = [f"{'region':>6} {'states':>6} {'pass':>7} {'median dex':>11} {'99% dex':>9} {'max dex':>9}"]
    for r in np.unique(ds["region"].values):
        sel = ds["region"].values == r
        m = ds["max_dlog10"].values[sel]
        lines.append(f"{r:>6} {sel.sum():>6} {ds['passed'].values[sel].mean():>7.3f} "
                     f"{np.median(m):>11.2e} {np.percentile(m, 99):>9.2e} {m.max():>9.2e}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--states", type=int, default=200, help="states per region (default 200)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--regions", default="0,1,2,3,4", help="comma-separated region indices")
    p.add_argument("-o", "--output", default=None, help="write the comparison as netCDF")
    a = p.parse_args(argv)
    client = None
    if a.scheduler:
        from distributed import Client
        client = Client(a.scheduler)
    regions = tuple(int(r) for r in a.regions.split(","))
    ds = validate_solver(a.states, regions=regions, seed=a.seed, client=client, n_workers=a.workers)
    print(summarize(ds))
    print(f"batched solver {ds.attrs['wall_batched_s']:.1f} s, Radau reference {ds.attrs['wall_radau_s']:.1f} s")
    if a.output:
        ds.to_netcdf(a.output)
    return 0 if all(ds.attrs[f"pass_fraction_region{r}"] >= REQUIRED_FRACTION for r in regions) else 1


if __name__ == "__main__":
    sys.exit(main())
