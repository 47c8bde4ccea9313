"""Build (if needed) the mesa80 catalogs and train the small NNNs shipped in the package.

    python scripts/train_default_nnn.py [--samples 1600,16000] [--dt 1e-3,0.1,10] [--workers 2] [--max-minutes 10]

The catalogs go to catalogs/built/si-mesa80 (compositions over all 78 non-nucleon isotopes) and
catalogs/built/si-mesa80-smallnet (over the isotopes small22 shares, the distribution of the test set
si-mesa80-test, from other states): resumable builds of their first ``--samples`` states; the first
mesa80 compile takes ~6.5 CPU-minutes and ~6 GB. The NNNs train on both, split by split. The models go to
thermoemu/data/models/nnn-mesa80 (safetensors + manifest.json), checkpoints to
results/nnn-default-checkpoints (re-running resumes). The shipped models are small (4 hidden layers of
256, about 1 MB per dt) so that they ship and train on a CPU; the seed's 1024/2048-wide, 9-12 layer
NNNs need far more data and a GPU. Prints the wall time of each part; docs/nuclear.md quotes them.

The learning rate halves after ``--lr-patience`` (40) epochs without a better validation loss: with
the library's default of 8, the noisy validation loss of these small catalogs drove it to its floor
(1e-6) within ~600 epochs, and the rest of the budget trained at that floor.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

from thermoemu.core.catalog import build_catalog
from thermoemu.core.spec import load_spec
from thermoemu.nuclear.nnn import train_nnn
from thermoemu.core.training import TrainSettings
from thermoemu.nuclear.emulator import default_nnn_dir

ROOT = Path(__file__).resolve().parent.parent
#: Size of the shipped NNNs (about 240k parameters, 0.95 MB each).
LAYERS, WIDTH = 4, 256


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", default="1600,16000",
                   help="states of si-mesa80 and si-mesa80-smallnet[, and si-mesa80-trajectory]")
    p.add_argument("--dt", default="1e-3,0.1,10", help="dt [s] to ship, comma separated")
    p.add_argument("--workers", type=int, default=2, help="dask workers for the catalog build")
    p.add_argument("--max-minutes", type=float, default=10.0, help="training budget per dt")
    p.add_argument("--mass-loss-weight", type=float, default=10.0,
                   help="NNNConfig.mass_loss_weight (our variant; the seed's loss: 0)")
    p.add_argument("--energy-loss-weight", type=float, default=20.0,
                   help="NNNConfig.energy_loss_weight (our variant; the seed's loss: 1)")
    p.add_argument("--lr-patience", type=int, default=40,
                   help="epochs without a better validation loss before the learning rate halves")
    p.add_argument("--log-inputs", action="store_true",
                   help="NNNConfig.log_inputs (our variant: ln X0 as inputs beside X0)")
    p.add_argument("--residual", action="store_true",
                   help="NNNConfig.residual (our variant: the net learns the change of ln X over dt)")
    p.add_argument("--target", default="composition", choices=["composition", "change", "hybrid"],
                   help="NNNConfig.target: the seed's end composition, or our asinh-scaled changes over dt")
    p.add_argument("--activation", default="relu", choices=["relu", "silu"], help="NNNConfig.activation")
    p.add_argument("--physics-substeps", type=int, default=0,
                   help="make the set physics-first (issue 27): the network's step with this many substeps where "
                        "its error estimate is below a trust chosen on the catalogs' validation splits (0: no)")
    p.add_argument("--physics-retry", default=None, metavar="N:RATIO",
                   help="with --physics-substeps: a finer step (e.g. 32:2) where the first one overshoots")
    p.add_argument("--physics-abort", type=float, default=0.0, metavar="X",
                   help="with a retry: give the first step up once more than X of mass fraction is below zero after "
                        "a substep (the retry takes the cell at once; the shipped set: 1e-6); 0: never")
    p.add_argument("--physics-screening-rtol", type=float, default=0.0, metavar="R",
                   help="keep the step's screening factors while the electron density moves by < R relative "
                        "(the shipped set: 1e-8); 0: evaluate them at every substep")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=str(default_nnn_dir()))
    p.add_argument("--checkpoints", default=str(ROOT / "results" / "nnn-default-checkpoints"),
                   help="checkpoint folder (a re-run resumes from it; the key names data, layout and loss, "
                        "not the optimiser settings: a resumed run keeps the saved learning rate)")
    a = p.parse_args(argv)
    names = ("si-mesa80", "si-mesa80-smallnet", "si-mesa80-trajectory")[:len(a.samples.split(","))]
    catalogs = [ROOT / "catalogs" / "built" / name for name in names]
    timings = {}
    for name, folder, samples in zip(names, catalogs, (int(v) for v in a.samples.split(","))):
        t0 = time.perf_counter()
        build_catalog(load_spec(name), folder, samples=samples, n_workers=a.workers)  # no-op when built
        timings[f"catalog_{name}_s"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)  # a fresh set: the manifest lists exactly the dt trained here
    settings = TrainSettings(lr=1e-3, batch_size=512, max_epochs=5000, patience=150, l1=0.0, l2=0.0,
                             max_minutes=a.max_minutes, threads=a.threads, seed=0,
                             lr_patience=a.lr_patience)
    for dt in (float(v) for v in a.dt.split(",")):
        t1 = time.perf_counter()
        layout = dict(layers=LAYERS, first_width=WIDTH, width=WIDTH, mass_loss_weight=a.mass_loss_weight,
                      energy_loss_weight=a.energy_loss_weight, residual=a.residual,
                      log_inputs=a.log_inputs, target=a.target,
                      activation=a.activation)  # n_isotopes from the catalogs
        entry = train_nnn(catalogs, dt, out, config=layout, settings=settings,
                          checkpoint_dir=a.checkpoints)
        timings[f"train_dt{dt:g}_s"] = round(time.perf_counter() - t1, 1)
        m = entry["metrics"]
        print(f"dt = {dt:g} s: {m['epochs']} epochs in {timings[f'train_dt{dt:g}_s']} s; test mean |dX| "
              f"{m['mean_abs_dX']:.3g}, e_nuc {100 * m['mean_rel_e_nuc']:.3g} %, eps_nu {100 * m['mean_rel_eps_nu']:.3g} %",
              flush=True)
    if a.physics_substeps:
        from thermoemu.nuclear.physics_first import attach_physics, parse_abort, parse_retry
        t1 = time.perf_counter()
        for dt, (trust, scores) in attach_physics(out, catalogs, substeps=a.physics_substeps,
                                                  retry=parse_retry(a.physics_retry),
                                                  abort=parse_abort(a.physics_abort),
                                                  screen_rtol=a.physics_screening_rtol).items():
            print(f"dt = {dt:g} s: physics step trusted below an error estimate of {trust:g} "
                  f"(validation score {scores[trust]:.3g}; net only: {scores[0.0]:.3g})", flush=True)
        timings["attach_physics_s"] = round(time.perf_counter() - t1, 1)
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
