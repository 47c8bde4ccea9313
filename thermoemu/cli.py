"""Command line: ``thermoemu collapse | integrate | build | sample | train | evaluate | saha-table | burn``."""

from __future__ import annotations

import argparse
import sys
import time


def _collapse(a):
    import numpy as np

    from .onezone import collapse
    from .plotting import plot_collapse

    if a.emulator is not None:
        return _collapse_emulator(a)
    if a.updates != "timescale,plain" or a.compare:
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
                                          updates=tuple(u.strip() for u in a.updates.split(",")))
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


def _evaluate_nuclear(a):
    from pathlib import Path

    from .nuclear_evaluate import GOALS, evaluate_nuclear, format_nuclear_table, plot_nuclear_evaluation

    from .nuclear_emulator import default_nnn_dir

    model = default_nnn_dir() if a.model == "default" else a.model  # the shipped mesa80 NNNs
    ds = evaluate_nuclear(model, a.nuclear_test, progress=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out / "nuclear_evaluation.nc")
    table = format_nuclear_table(ds)
    (out / "nuclear_evaluation.md").write_text(table + "\n")
    plot_nuclear_evaluation(ds, out / "nuclear_evaluation.png")
    print(table)
    e, imp = ds["error"], ds["improvement"]
    met = bool((e.sel(model="nnn", metric="ye_eq6") <= GOALS["ye_max"]).all()
               and (imp.sel(metric="ye_eq6") >= GOALS["ye_improvement"]).all()
               and (imp.sel(metric="e_nuc") >= GOALS["e_nuc_improvement"]).all())
    print(f"issue goals (NNN Ye <= 0.5 %, >= 3x the small net on Ye, >= 2x on e_nuc at every dt): "
          f"{'met' if met else 'not met'}; wrote {out}/nuclear_evaluation.(nc|md|png)")
    return 0


def _train_nnn(a):
    from .models.nnn import train_nnn
    from .models.training import TrainSettings

    catalogs = a.catalog.split(",")
    settings = TrainSettings(lr=a.lr, batch_size=a.batch_size, max_epochs=a.max_epochs, patience=a.patience,
                             l1=0.0, l2=0.0, max_minutes=a.max_minutes, device=a.device, threads=a.threads,
                             seed=a.seed, lr_patience=a.lr_patience)
    for dt in [float(v) for v in a.dt.split(",")]:
        layout = dict(layers=a.layers, first_width=a.first_width, width=a.width, residual=a.residual,
                      mass_loss_weight=a.mass_loss_weight, energy_loss_weight=a.energy_loss_weight,
                      log_inputs=a.log_inputs)  # n_isotopes from the catalog
        entry = train_nnn(catalogs, dt, a.out, config=layout,
                          settings=settings, progress=not a.quiet)
        m = entry["metrics"]
        print(f"NNN dt = {dt:g} s: {m['epochs']} epochs, {m['train_wall_s']} s; test mean |dX| {m.get('mean_abs_dX', float('nan')):.3g}, "
              f"e_nuc {100 * m.get('mean_rel_e_nuc', float('nan')):.3g} %, eps_nu {100 * m.get('mean_rel_eps_nu', float('nan')):.3g} %; "
              f"wrote {a.out}/{entry['file']}")
    return 0


def _evaluate(a):
    from pathlib import Path

    from .emulator import Emulator

    if a.nuclear_test:
        return _evaluate_nuclear(a)
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
        print(f"fixed density n_H = 1e3, T0 = 300 K, 1000 substeps of 4e7 s: final T relative error "
              f"timescale {100 * fixed.attrs['final_T_relative_error_timescale']:+.2f} %, "
              f"plain {100 * fixed.attrs['final_T_relative_error_plain']:+.2f} %")
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

    from .reference import integrate_state
    from .solvers.rosenbrock import SolverSettings
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


def _parse_composition(text):
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--composition item {item!r} must look like si28=0.5")
        try:
            out[name.strip().lower()] = float(value)
        except ValueError:
            raise ValueError(f"--composition: mass fraction of {name.strip()!r} is {value!r}, not a number") from None
    return out


def _burn(a):
    import numpy as np

    from .nuclear_state import burn_state, nuclear_state

    t0 = time.perf_counter()
    if a.emulator:  # the NNN set's isotope list, no network compile
        state = nuclear_state(a.density, a.temperature, _parse_composition(a.composition), normalize=a.normalize)
        out = state.emu.step(a.dt, model=a.emulator, out_of_domain=a.out_of_domain)
        label = f"NNN {out.attrs['emulator']} ({out.attrs['network']}, status {int(out['emu_status'])})"
    else:
        state = nuclear_state(a.density, a.temperature, _parse_composition(a.composition), network=a.network,
                              normalize=a.normalize)
        out = burn_state(state, a.dt, network=a.network, screening=not a.no_screening)
        label = a.network
    out.to_netcdf(a.output)
    X = out["mass_fraction"]
    top = X.isel(isotope=np.argsort(-X.values.ravel())[:6]) if X.ndim == 1 else X
    ok = bool(out["success"].all())
    print(f"{label}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s; Ye {float(state['ye']):.6f} -> "
          f"{float(out['ye']):.6f}, e_nuc = {float(out['e_nuc']):.4e} erg/g, eps_nu = {float(out['eps_nu']):.4e} erg/g/s; "
          + ", ".join(f"{i}={float(v):.4g}" for i, v in zip(top["isotope"].values, top.values)) + f"; wrote {a.output}")
    return 0 if ok else 1


def build_parser():
    p = argparse.ArgumentParser(prog="thermoemu", description="Primordial thermochemistry for simulations.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("collapse", help="one-zone free-fall collapse (Ono & Sugimura 2025)")
    c.add_argument("--reference", action="store_true", help="use the reference network and solver")
    c.add_argument("--emulator", default=None, metavar="MODEL",
                   help="run with the emulator (model folder or 'default') beside the reference, plain and "
                        "timescale-based updates (OS25 Fig. 7); -o is then an output folder")
    c.add_argument("--compare", default=None, metavar="F1,F2,...",
                   help="with --emulator: step fractions to compare, e.g. 0.1,0.01,0.001")
    c.add_argument("--updates", default="timescale,plain", metavar="U1,U2,...",
                   help="with --emulator: update rules to run (timescale = OS25 eq. 8, plain, shaped, tangent)")
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
    e.add_argument("--nuclear-test", default=None, metavar="CATALOG",
                   help="evaluate an NNN model set (--model) against this nuclear test catalog and the small net "
                        "(seed 000 Eqs. 3-8, Figs. 4-5)")
    e.set_defaults(func=_evaluate)

    tn = sub.add_parser("train-nnn", help="train nuclear neural networks (one per dt) from a nuclear catalog")
    tn.add_argument("--catalog", required=True,
                    help="built nuclear catalog folder(s), comma separated (one network; concatenated split by split)")
    tn.add_argument("--dt", required=True, help="dt values [s], comma separated, e.g. 1e-3,0.1,10")
    tn.add_argument("--out", required=True, help="NNN model set folder")
    tn.add_argument("--layers", type=int, default=9, help="hidden layers (seed 000: 9 for mesa80)")
    tn.add_argument("--first-width", type=int, default=1024)
    tn.add_argument("--width", type=int, default=2048)
    tn.add_argument("--residual", action="store_true",
                    help="our variant: learn the change of ln X over dt (logits + ln(X0 + 1e-12)), not X itself")
    tn.add_argument("--mass-loss-weight", type=float, default=0.0,
                    help="our variant: add this times sum_i |X_pred - X_target| to the L1 loss on ln X "
                         "(weighs the abundant isotopes; seed 000: 0)")
    tn.add_argument("--energy-loss-weight", type=float, default=1.0,
                    help="our variant: weight of the two energy terms of the L1 loss (seed 000: 1)")
    tn.add_argument("--log-inputs", action="store_true",
                    help="our variant: feed the net ln X0 (scaled to [0, 1]) beside X0")
    tn.add_argument("--lr", type=float, default=1e-4)
    tn.add_argument("--lr-patience", type=int, default=8,
                    help="epochs without a better validation loss before the learning rate halves")
    tn.add_argument("--batch-size", type=int, default=512)
    tn.add_argument("--max-epochs", type=int, default=300)
    tn.add_argument("--patience", type=int, default=20)
    tn.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per dt")
    tn.add_argument("--device", default=None)
    tn.add_argument("--threads", type=int, default=None)
    tn.add_argument("--seed", type=int, default=0)
    tn.add_argument("-q", "--quiet", action="store_true")
    tn.set_defaults(func=_train_nnn)

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

    n = sub.add_parser("burn", help="burn nuclear matter at constant T and rho over dt (pynucastro networks)")
    n.add_argument("--network", default="mesa80", choices=["mesa80", "small22"])
    n.add_argument("--temperature", type=float, required=True, help="[K]")
    n.add_argument("--density", type=float, required=True, help="[g cm^-3]")
    n.add_argument("--dt", required=True, help="step, e.g. 0.1 (s) or '0.1 s'")
    n.add_argument("--composition", required=True, help="mass fractions, e.g. si28=0.5,s32=0.25,ar36=0.1")
    n.add_argument("--normalize", action="store_true", help="divide the mass fractions by their sum")
    n.add_argument("--no-screening", action="store_true", help="switch off Chugunov (2007) screening")
    n.add_argument("--emulator", default=None, metavar="MODEL",
                   help="step with an NNN set instead ('default': the shipped mesa80 NNNs; dt must be one it holds "
                        "or an integer multiple of one)")
    n.add_argument("--out-of-domain", default="reference", choices=["reference", "flag", "raise"],
                   help="with --emulator: cells outside the trained domain (default: burned by the reference network)")
    n.add_argument("-o", "--output", default="burn.nc")
    n.set_defaults(func=_burn)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .catalog import CatalogError
    from .models.artifact import ArtifactError
    from .state import StateError
    from .units import UnitsError
    try:
        return args.func(args)
    except (StateError, UnitsError, ValueError, FileNotFoundError, CatalogError, ArtifactError) as exc:
        print(f"thermoemu {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
