"""The nuclear wing's commands: ``thermoemu burn | train-nnn | evaluate-nnn``."""

from __future__ import annotations

import time

__all__ = ["add_commands"]


def _evaluate_nuclear(a):
    from pathlib import Path

    from .evaluate import GOALS, evaluate_nuclear, format_nuclear_table, format_persistence_table, goals_met, plot_nuclear_evaluation

    # "default": the shipped mesa80 NNNs
    ds = evaluate_nuclear(a.model, a.catalog, compare=a.compare, split=a.split,
                          small_network=None if a.small_net == "none" else a.small_net, progress=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out / "nuclear_evaluation.nc")
    table = format_nuclear_table(ds) + "\n\n" + format_persistence_table(ds)
    (out / "nuclear_evaluation.md").write_text(table + "\n")
    plot_nuclear_evaluation(ds, out / "nuclear_evaluation.png")
    print(table)
    met = goals_met(ds)
    print("issue goals (" + ", ".join(f"{k} {GOALS.get(k, 'all states')}" for k in met) + "): "
          + ", ".join(f"{k} {'n/a' if v is None else 'met' if v else 'NOT met'}" for k, v in met.items())
          + f"; wrote {out}/nuclear_evaluation.(nc|md|png)")
    return 0


def _train_nnn(a):
    from ..core.training import TrainSettings
    from .nnn import train_nnn

    catalogs = a.catalog.split(",")
    settings = TrainSettings(lr=a.lr, batch_size=a.batch_size, max_epochs=a.max_epochs, patience=a.patience,
                             l1=0.0, l2=0.0, max_minutes=a.max_minutes, device=a.device, threads=a.threads,
                             seed=a.seed, lr_patience=a.lr_patience)
    for dt in [float(v) for v in a.dt.split(",")]:
        layout = dict(layers=a.layers, first_width=a.first_width, width=a.width, residual=a.residual,
                      mass_loss_weight=a.mass_loss_weight, energy_loss_weight=a.energy_loss_weight,
                      log_inputs=a.log_inputs, target=a.target,
                      activation=a.activation)  # n_isotopes from the catalog
        entry = train_nnn(catalogs, dt, a.out, config=layout,
                          settings=settings, progress=not a.quiet)
        m = entry["metrics"]
        print(f"NNN dt = {dt:g} s: {m['epochs']} epochs, {m['train_wall_s']} s; test mean |dX| {m.get('mean_abs_dX', float('nan')):.3g}, "
              f"e_nuc {100 * m.get('mean_rel_e_nuc', float('nan')):.3g} %, eps_nu {100 * m.get('mean_rel_eps_nu', float('nan')):.3g} %; "
              f"wrote {a.out}/{entry['file']}")
    if a.physics_substeps:
        from .physics_first import attach_physics, parse_abort, parse_retry
        for dt, (trust, scores) in attach_physics(a.out, catalogs, substeps=a.physics_substeps,
                                                  retry=parse_retry(a.physics_retry),
                                                  abort=parse_abort(a.physics_abort),
                                                  screen_rtol=a.physics_screening_rtol).items():
            print(f"NNN dt = {dt:g} s: physics-first, the step trusted below an error estimate of {trust:g} "
                  f"(validation score {scores[trust]:.3g}; net only {scores[0.0]:.3g})")
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

    from .state import burn_state, nuclear_state

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


def add_commands(sub):
    """Add this wing's subcommands (burn, train-nnn, evaluate-nnn) to the ``thermoemu`` parser's subparsers."""
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
    tn.add_argument("--target", default="composition", choices=["composition", "change", "hybrid"],
                    help="composition: the seed's end composition (softmax); change: our residual design, the "
                         "asinh-scaled changes of X, Ye, e_nuc and eps_nu over dt (zero output = nothing changes)")
    tn.add_argument("--activation", default="relu", choices=["relu", "silu"])
    tn.add_argument("--physics-substeps", type=int, default=0, metavar="N",
                    help="make the set physics-first (the network's own step with N substeps where it is usable "
                         "and trusted; the trust chosen on the catalogs' validation splits); 0: plain nets")
    tn.add_argument("--physics-retry", default=None, metavar="N:RATIO",
                    help="with --physics-substeps: step again with N substeps growing by RATIO where the first "
                         "step overshoots (e.g. 32:2; or ros2:TOL, adaptive ROS2), before the net answers")
    tn.add_argument("--physics-abort", type=float, default=0.0, metavar="X",
                    help="with a retry: give the first step up once more than X of mass fraction is below zero after "
                         "a substep (the retry takes the cell at once; the shipped set: 1e-6); 0: never")
    tn.add_argument("--physics-screening-rtol", type=float, default=0.0, metavar="R",
                    help="keep the step's screening factors while the electron density moves by < R relative "
                         "(the shipped set: 1e-8); 0: evaluate them at every substep")
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

    en = sub.add_parser("evaluate-nnn", help="evaluate an NNN model set against a nuclear test catalog and the small "
                                            "net (seed 000 Eqs. 3-8, Figs. 4-5)")
    en.add_argument("catalog", help="built nuclear test catalog folder (e.g. of si-mesa80-test)")
    en.add_argument("--model", default="default", help="NNN model set folder or 'default' (the shipped mesa80 NNNs)")
    en.add_argument("--compare", default=None, metavar="MODEL",
                    help="a second NNN set evaluated on the same states (e.g. 'default', the shipped set)")
    en.add_argument("--small-net", default="small22", choices=["small22", "none"],
                    help="the small network burned from the same states ('none' for states it cannot start from)")
    en.add_argument("--split", default=None, choices=["train", "validation", "test"],
                    help="score only this split of the catalog (e.g. the test split of si-mesa80-trajectory)")
    en.add_argument("-o", "--out", default="results/evaluate", help="output folder (tables, netCDF, plots)")
    en.set_defaults(func=_evaluate_nuclear)
