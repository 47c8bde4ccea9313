"""The primordial wing's commands: ``thermoemu collapse | integrate | sample | train | evaluate | saha-table | validate``."""

from __future__ import annotations

import sys
import time

__all__ = ["add_commands"]


def _collapse(a):
    import numpy as np

    from .onezone import collapse
    from .plotting import plot_collapse

    if a.emulator is not None:
        return _collapse_emulator(a)
    if a.updates is not None or a.compare:
        print("--updates and --compare apply with --emulator MODEL only", file=sys.stderr)
        return 2
    if not a.reference:
        print("choose the stepper: --reference, or --emulator MODEL (e.g. --emulator default)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    n_end = a.n_end if a.n_end is not None else 1e22
    ds = collapse(step_fraction=a.step_fraction, n_end=n_end, progress=not a.quiet, high_density=a.high_density)
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
    if "saha_switch_dT_K" in ds.attrs:
        print(f"switch to Saha equilibrium ({a.high_density}) at 1e18 cm^-3: T changes by "
              f"{ds.attrs['saha_switch_dT_K']:+.2f} K")
    return 0


def _collapse_emulator(a):
    from .emulator import Emulator
    from .evaluate import collapse_comparison, write_outputs

    fractions = [float(f) for f in a.compare.split(",")] if a.compare else [a.step_fraction]
    emulator = Emulator(a.emulator)
    n_end = a.n_end if a.n_end is not None else 1e18
    tracks, summary = collapse_comparison(emulator, fractions, n_end=n_end, progress=not a.quiet,
                                          updates=tuple(u.strip() for u in a.updates.split(",")) if a.updates else None)
    out = _out_dir(a.output)
    for f, t in tracks.items():
        for method, ds in t.items():
            ds.to_netcdf(out / f"collapse_{method}_dt{f:g}.nc", engine="netcdf4")
    if a.plot:
        from .plotting import plot_collapse_comparison
        plot_collapse_comparison(tracks, a.plot)
    write_outputs(out, tracks=tracks, summary=summary)
    for row in summary:
        print(f"dt = {row['step_fraction']:g} t_ff, {row['update']:9s} update: max |d log10 T| = "
              f"{row['max_dlogT']:.4f} dex over {row['steps']} steps ({row['reference_fallback_steps']} by the "
              f"reference fallback); {row['wall_s']:.1f} s (reference {row['reference_wall_s']:.1f} s); by region "
              + ", ".join(f"R{r} {v:.3f}" for r, v in row["max_dlogT_by_region"].items()))
    print(f"wrote tracks and collapse_emulator.png/json to {out}" + (f" and {a.plot}" if a.plot else ""))
    return 0


def _out_dir(path):
    from pathlib import Path
    out = Path(path)
    if out.suffix == ".nc":
        out = out.with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _train(a):
    from .models import NetConfig, TrainSettings, train_region

    predictor = NetConfig(kind=a.kind, layers=a.layers, width=a.width, latent=a.latent, anchored=a.anchored,
                          linear_skip=a.linear_skip)
    timescale = None if a.no_timescale else NetConfig(kind="dgm", layers=a.dgm_layers, width=a.dgm_width)
    settings = TrainSettings(max_epochs=a.max_epochs, batch_size=a.batch_size, patience=a.patience,
                             lr_patience=a.lr_patience, change_weight_floor=a.change_weight_floor,
                             max_minutes=a.max_minutes, timescale_max_minutes=a.timescale_max_minutes,
                             seed=a.seed, device=a.device, threads=a.threads)
    t0 = time.perf_counter()
    model = train_region(a.spec, a.catalog, a.out, predictor=predictor, timescale=timescale, settings=settings,
                         checkpoint_dir=a.checkpoints, progress=not a.quiet)
    print(f"trained region {model.region} ({model.n_parameters()} parameters) in {time.perf_counter() - t0:.0f} s; "
          f"wrote {a.out}/region{model.region}.safetensors and manifest.json")
    return 0


def _evaluate(a):
    from pathlib import Path

    from .emulator import Emulator
    from .evaluate import accuracy_table, collapse_comparison, fixed_density_test, format_table2, write_outputs

    emulator = Emulator(a.model)
    try:
        if "{region}" not in a.catalog_name:
            raise KeyError("region")
        folders = {r: Path(a.catalogs) / a.catalog_name.format(region=r) for r in emulator.regions}
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"--catalog-name = {a.catalog_name!r} must contain '{{region}}' and no other field "
                         "(e.g. popiii-r{region}-1000000)") from None
    catalogs = {r: path for r, path in folders.items() if (path / "index.json").is_file()}
    if not catalogs:
        raise FileNotFoundError(f"no built catalogs {a.catalog_name.format(region='0..4')} under {a.catalogs} "
                                "(build them with thermoemu build)")
    table = accuracy_table(emulator, catalogs, split="test")
    print(format_table2(table))
    fixed = None if a.skip_fixed_density else fixed_density_test(emulator)
    if fixed is not None:
        errors = {k[len("final_T_relative_error_"):]: v for k, v in fixed.attrs.items()
                  if k.startswith("final_T_relative_error_")}
        print("fixed density n_H = 1e3, T0 = 300 K, 1000 substeps of 4e7 s: final T relative error "
              + ", ".join(f"{m} {100 * e:+.2f} %" for m, e in errors.items()))
    tracks = summary = None
    if a.collapse:
        tracks, summary = collapse_comparison(emulator, [float(f) for f in a.collapse.split(",")])
        for row in summary:
            print(f"collapse dt = {row['step_fraction']:g} t_ff, {row['update']}: max |d log10 T| = {row['max_dlogT']:.4f} dex")
    paths = write_outputs(a.out, table=table, fixed=fixed, tracks=tracks, summary=summary)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _integrate(a):
    import numpy as np

    from ..solvers.rosenbrock import SolverSettings
    from .reference import integrate_state
    from .state import open_state

    ds = open_state(a.state, project=a.project)
    settings = SolverSettings(step_control=a.step_control, rtol=a.rtol, backend=a.backend, threads=a.threads)
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

    from .physics.network import SPECIES
    from .sampling import sample_region
    from .state import primordial_state, write_state

    rng = np.random.default_rng(a.seed)
    n_H, x = sample_region(a.region, a.cells, rng)
    ds = primordial_state(xr.DataArray(n_H, dims="cell"), xr.DataArray(x[6], dims="cell"),
                          xr.DataArray(x[:6].T, dims=("cell", "species"), coords={"species": list(SPECIES)}))
    write_state(ds, a.output)
    print(f"wrote {a.cells} random region-{a.region} states to {a.output}")
    return 0


def _saha_table(a):
    from .saha_table import SahaTableSpec, load_saha_table, table_path

    spec = SahaTableSpec(n_points=a.n_points, e_points=a.e_points, partition_functions=a.partition_functions,
                         cv_h2=a.cv_h2)
    path = table_path(spec, a.out)
    if a.force and path.exists():
        path.unlink()
    existed = path.exists()
    t0 = time.perf_counter()
    table = load_saha_table(spec, directory=a.out, progress=not a.quiet)
    wall = time.perf_counter() - t0
    e_lo, e_hi = table.energy_range
    print(f"Saha table {spec.n_points} x {spec.e_points} ({'cached' if existed else f'built in {wall:.1f} s'}): "
          f"n_H {table.n_range[0]:.3g}..{table.n_range[1]:.3g} cm^-3, E_tot {e_lo:.4g}..{e_hi:.4g} erg per H; "
          f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _validate(a):
    import numpy as np

    from ..solvers.rosenbrock import SolverSettings
    from .validation import REQUIRED_FRACTION, summarize, validate_solver, validate_timescales

    client = None
    if a.scheduler:
        from distributed import Client
        client = Client(a.scheduler)
    regions = tuple(int(r) for r in a.regions.split(","))
    if a.timescales:
        ds = validate_timescales(a.states, regions=regions, seed=a.seed, client=client, n_workers=a.workers)
        for r in regions:
            sel = ds["region"].values == r
            n_cross = int(np.isfinite(ds["tau_radau"].values[:, sel]).sum())
            print(f"region {r}: {sel.sum()} states, {n_cross} crossings, "
                  f"bracket pass fraction {ds.attrs[f'pass_fraction_region{r}']:.4f}")
        print(f"batched solver {ds.attrs['wall_batched_s']:.1f} s, Radau events {ds.attrs['wall_radau_s']:.1f} s")
        if a.output:
            ds.to_netcdf(a.output)
        return 0 if all(ds.attrs[f"pass_fraction_region{r}"] == 1.0 for r in regions) else 1
    settings = SolverSettings(rtol=a.rtol) if a.rtol else None
    ds = validate_solver(a.states, regions=regions, seed=a.seed, client=client, n_workers=a.workers,
                         block=a.block, reference_cache=a.reference_cache, settings=settings,
                         atol_reference=a.reference_atol)
    print(summarize(ds))
    print(f"batched solver {ds.attrs['wall_batched_s']:.1f} s, Radau reference {ds.attrs['wall_radau_s']:.1f} s")
    if a.output:
        ds.to_netcdf(a.output)
    return 0 if all(ds.attrs[f"pass_fraction_region{r}"] >= REQUIRED_FRACTION for r in regions) else 1


def add_commands(sub):
    """Add this wing's subcommands (collapse, integrate, sample, train, evaluate, saha-table, validate) to the
    ``thermoemu`` parser's subparsers."""
    from .validation import ATOL_REFERENCE

    c = sub.add_parser("collapse", help="one-zone free-fall collapse (Ono & Sugimura 2025)")
    c.add_argument("--reference", action="store_true", help="use the reference network and solver")
    c.add_argument("--emulator", default=None, metavar="MODEL",
                   help="run with the emulator (model folder or 'default') beside the reference, plain and "
                        "timescale-based updates (OS25 Fig. 7); -o is then an output folder")
    c.add_argument("--compare", default=None, metavar="F1,F2,...",
                   help="with --emulator: step fractions to compare, e.g. 0.1,0.01,0.001")
    c.add_argument("--updates", default=None, metavar="U1,U2,...",
                   help="with --emulator: update rules to run (timescale = OS25 eq. 8, plain, shaped, tangent; "
                        "default: timescale,plain for DeepONet sets, plain for physics-first sets)")
    c.add_argument("-o", "--output", default="collapse.nc", help="netCDF trajectory (default collapse.nc)")
    c.add_argument("--plot", default=None, help="write a plot (PNG/PDF) of T and abundances vs n_H")
    c.add_argument("--step-fraction", type=float, default=0.1,
                   help="outer step in units of t_ff (default 0.1, as OS25 Fig. 4)")
    c.add_argument("--n-end", type=float, default=None,
                   help="final n_H [cm^-3] (default 1e22; 1e18, the emulator's range, with --emulator)")
    c.add_argument("--high-density", default="table", choices=["table", "saha", "network"],
                   help="above 1e18 cm^-3: the Saha table (default), the direct Saha adiabat (ground truth), "
                        "or the non-equilibrium network")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_collapse)
    i = sub.add_parser("integrate", help="advance a state file by dt with the reference solver")
    i.add_argument("state", help="netCDF state grid (n_H, temperature, abundance with units)")
    i.add_argument("--dt", required=True, help="time step with units, e.g. 1e10s or '300 yr'")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--method", default="rosenbrock", choices=["rosenbrock", "Radau", "BDF"])
    i.add_argument("--step-control", default="error", choices=["error", "relative_change"])
    i.add_argument("--rtol", type=float, default=1e-4)
    i.add_argument("--backend", default="auto", choices=["auto", "compiled", "vectorized"],
                   help="rosenbrock: compiled (numba, per cell) or vectorized (numpy); auto: compiled where it runs")
    i.add_argument("--threads", type=int, default=1, help="rosenbrock, compiled backend: threads (0: every core)")
    i.add_argument("--project", action="store_true", help="project abundances onto conservation first")
    i.add_argument("-q", "--quiet", action="store_true")
    i.set_defaults(func=_integrate)
    s = sub.add_parser("sample", help="write random states of a density region (OS25 Table 1)")
    s.add_argument("--region", type=int, default=1, choices=range(5))
    s.add_argument("--cells", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=_sample)
    t = sub.add_parser("train", help="train one region's emulator (DeepONet + DGM) from a built catalog")
    t.add_argument("spec", help="catalog spec the catalog was built from (file or name, e.g. popiii-r1)")
    t.add_argument("--catalog", required=True, help="built catalog folder")
    t.add_argument("--out", required=True, help="model folder (region added to its manifest)")
    t.add_argument("--kind", default="fused", choices=["fused", "deeponet"],
                   help="fused multi-output DeepONet (default) or seven per-variable DeepONets (OS25)")
    t.add_argument("--layers", type=int, default=6)
    t.add_argument("--width", type=int, default=96)
    t.add_argument("--latent", type=int, default=48)
    t.add_argument("--dgm-layers", type=int, default=4)
    t.add_argument("--dgm-width", type=int, default=64)
    t.add_argument("--anchored", action="store_true",
                   help="our variant: the predicted change is exactly 0 at dt = 0 (no DeepONet bias)")
    t.add_argument("--linear-skip", action="store_true",
                   help="our variant: a linear path from the branch inputs beside the branch MLP")
    t.add_argument("--no-timescale", action="store_true", help="skip the DGM timescale net")
    t.add_argument("--max-epochs", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=1024)
    t.add_argument("--patience", type=int, default=25)
    t.add_argument("--lr-patience", type=int, default=8,
                   help="epochs without a better validation loss before the learning rate halves")
    t.add_argument("--change-weight-floor", type=float, default=None,
                   help="our variant: weight the predictor's squared errors by 1 / (|scaled change| + FLOOR)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget per network, summed over resumed runs")
    t.add_argument("--timescale-max-minutes", type=float, default=None,
                   help="budget of the DGM timescale net (default: --max-minutes)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--checkpoints", default=None, help="checkpoint folder (default OUT/checkpoints); re-run resumes")
    t.add_argument("-q", "--quiet", action="store_true")
    t.set_defaults(func=_train)
    e = sub.add_parser("evaluate", help="OS25 Table 2, fixed-density iteration test, collapse comparison")
    e.add_argument("--model", default="default", help="model folder or 'default'")
    e.add_argument("--catalogs", default="catalogs/built", help="folder holding popiii-r0 .. popiii-r4")
    e.add_argument("--catalog-name", default="popiii-r{region}",
                   help="catalog folder name under --catalogs, with {region} for the region number "
                        "(e.g. popiii-r{region}-1000000); test splits agree across sizes (hash of the sample id)")
    e.add_argument("-o", "--out", default="results/evaluate", help="output folder (tables, netCDF, plots)")
    e.add_argument("--collapse", default=None, metavar="F1,F2,...", help="also compare collapses at these dt/t_ff")
    e.add_argument("--skip-fixed-density", action="store_true")
    e.set_defaults(func=_evaluate)
    h = sub.add_parser("saha-table", help="build (or show) the cached Saha-equilibrium table above 1e18 cm^-3")
    h.add_argument("--out", default=None, help="folder (default: the user cache, $THERMOEMU_CACHE or "
                                               "~/.cache/thermoemu)")
    h.add_argument("--n-points", type=int, default=1000, help="n_H grid points, 1e18..1e22 (default 1000)")
    h.add_argument("--e-points", type=int, default=1000, help="E_tot grid points, 10 K..1e5 K (default 1000)")
    h.add_argument("--partition-functions", default="omukai", choices=["omukai", "rigid_rotor"])
    h.add_argument("--cv-h2", default="frozen", choices=["frozen", "equilibrium", "tgchem"])
    h.add_argument("--force", action="store_true", help="rebuild even if cached")
    h.add_argument("-q", "--quiet", action="store_true")
    h.set_defaults(func=_saha_table)

    v = sub.add_parser("validate", help="batched solver against per-cell Radau on a dask cluster (or, with --timescales, the recorded tau_eps against scipy events)")
    v.add_argument("--states", type=int, default=200, help="states per region (default 200)")
    v.add_argument("--workers", type=int, default=2)
    v.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    v.add_argument("--seed", type=int, default=2026)
    v.add_argument("--regions", default="0,1,2,3,4", help="comma-separated region indices")
    v.add_argument("--block", type=int, default=4, help="states per dask task (default 4)")
    v.add_argument("--reference-cache", default=None,
                   help="folder keeping finished Radau blocks; a re-run resumes from it")
    v.add_argument("--rtol", type=float, default=None, help="batched-solver rtol (default: its default)")
    v.add_argument("--reference-atol", type=float, default=ATOL_REFERENCE,
                   help="Radau absolute tolerance on abundances (default 1e-24; earlier versions 1e-30, see docs/solver.md)")
    v.add_argument("--timescales", action="store_true",
                   help="check the recorded tau_eps (eps 0.1) against scipy events instead")
    v.add_argument("-o", "--output", default=None, help="write the comparison as netCDF")
    v.set_defaults(func=_validate)
