"""Command line: ``thermoemu collapse | integrate | build | sample``."""

from __future__ import annotations

import argparse
import sys
import time


def _collapse(a):
    import numpy as np

    from .onezone import collapse
    from .plotting import plot_collapse

    if not a.reference:
        print("only the reference network is available yet: pass --reference", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    ds = collapse(step_fraction=a.step_fraction, n_end=a.n_end, progress=not a.quiet)
    wall = time.perf_counter() - t0
    ds.attrs["wall_time_s"] = wall
    ds.to_netcdf(a.output, engine="netcdf4")
    if a.plot:
        plot_collapse(ds, a.plot)
    dense = ds["n_H"].values > 10 if (ds["n_H"].values > 10).any() else np.ones(ds.sizes["step"], bool)
    i = int(np.argmin(np.where(dense, ds["temperature"].values, np.inf)))
    print(f"collapse to n_H = {float(ds['n_H'][-1]):.3g} cm^-3 in {ds.sizes['step'] - 1} steps ({wall:.1f} s); "
          f"T_min = {float(ds['temperature'][i]):.0f} K at n_H = {float(ds['n_H'][i]):.3g} cm^-3; "
          f"final T = {float(ds['temperature'][-1]):.0f} K; wrote {a.output}" + (f" and {a.plot}" if a.plot else ""))
    return 0


def _integrate(a):
    import numpy as np

    from .reference import integrate_state
    from .solvers.rosenbrock import SolverSettings
    from .state import open_state

    ds = open_state(a.state, project=a.project)
    settings = SolverSettings(step_control=a.step_control, rtol=a.rtol)
    t0 = time.perf_counter()
    out = integrate_state(ds, a.dt, method=a.method, settings=settings, progress=not a.quiet)
    out = out.compute()
    wall = time.perf_counter() - t0
    out.to_netcdf(a.output, engine="netcdf4")
    n = int(out["success"].size)
    failed = int((~out["success"]).sum())
    print(f"integrated {n} cells over dt = {a.dt} in {wall:.2f} s ({n / wall:.0f} cells/s); "
          f"{failed} failed; median substeps {int(np.median(out['substeps'].values))}; wrote {a.output}")
    return 0 if failed == 0 else 1


def _sample(a):
    import numpy as np
    import xarray as xr

    from .networks.primordial.network import SPECIES
    from .sampling import sample_region
    from .state import primordial_state, write_state

    rng = np.random.default_rng(a.seed)
    n_H, x = sample_region(a.region, a.cells, rng)
    ds = primordial_state(xr.DataArray(n_H, dims="cell"), xr.DataArray(x[6], dims="cell"),
                          xr.DataArray(x[:6].T, dims=("cell", "species"), coords={"species": list(SPECIES)}))
    write_state(ds, a.output)
    print(f"wrote {a.cells} random region-{a.region} states to {a.output}")
    return 0


def _build(a):
    from .catalog import build_catalog

    t0 = time.perf_counter()
    index = build_catalog(a.spec, a.out, samples=a.samples, n_workers=a.workers, scheduler=a.scheduler,
                          progress=not a.quiet)
    wall = time.perf_counter() - t0
    print(f"catalog {index['name']}: {index['samples_written']} samples in {len(index['shards'])} shards "
          f"({index['failed']} failed integrations, flagged) in {a.out}; {wall:.1f} s")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="thermoemu", description="Primordial thermochemistry for simulations.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("collapse", help="one-zone free-fall collapse (Ono & Sugimura 2025)")
    c.add_argument("--reference", action="store_true", help="use the reference network and solver")
    c.add_argument("-o", "--output", default="collapse.nc", help="netCDF trajectory (default collapse.nc)")
    c.add_argument("--plot", default=None, help="write a plot (PNG/PDF) of T and abundances vs n_H")
    c.add_argument("--step-fraction", type=float, default=0.1,
                   help="outer step in units of t_ff (default 0.1, as OS25 Fig. 4)")
    c.add_argument("--n-end", type=float, default=1e18, help="final n_H [cm^-3] (default 1e18)")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_collapse)

    i = sub.add_parser("integrate", help="advance a state file by dt with the reference solver")
    i.add_argument("state", help="netCDF state grid (n_H, temperature, abundance with units)")
    i.add_argument("--dt", required=True, help="time step with units, e.g. 1e10s or '300 yr'")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--method", default="rosenbrock", choices=["rosenbrock", "Radau", "BDF"])
    i.add_argument("--step-control", default="error", choices=["error", "relative_change"])
    i.add_argument("--rtol", type=float, default=1e-4)
    i.add_argument("--project", action="store_true", help="project abundances onto conservation first")
    i.add_argument("-q", "--quiet", action="store_true")
    i.set_defaults(func=_integrate)

    b = sub.add_parser("build", help="build or resume a training catalog from a YAML spec on a dask cluster")
    b.add_argument("spec", help="catalog spec (YAML file, or a built-in name such as popiii-r1)")
    b.add_argument("--out", required=True, help="catalog folder (shards + index.json)")
    b.add_argument("--samples", type=int, default=None, help="override the spec's sample count")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of a LocalCluster (default: number of cores)")
    where.add_argument("--scheduler", default=None, help="address of an existing dask scheduler, e.g. tcp://host:8786")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=_build)

    s = sub.add_parser("sample", help="write random states of a density region (OS25 Table 1)")
    s.add_argument("--region", type=int, default=1, choices=range(5))
    s.add_argument("--cells", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=_sample)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .catalog import CatalogError
    from .state import StateError
    from .units import UnitsError
    try:
        return args.func(args)
    except (StateError, UnitsError, ValueError, FileNotFoundError, CatalogError) as exc:
        print(f"thermoemu {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
