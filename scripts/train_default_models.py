"""Build (if needed) the five region catalogs and train the default models shipped in the package.

    python scripts/train_default_models.py [--regions 0,1,2,3,4] [--samples 1000000] [--workers 2] [--max-minutes 20]
    python scripts/train_default_models.py --design physics-first [...]

``--design deeponet`` (OS25's design: fused DeepONet predictor plus DGM timescale net, eq. 8) or
``--design physics-first`` (ours: a small residual net over the physics step with closures for H-
and H2+, no timescale net; docs/emulator.md).

Catalogs go to catalogs/built/popiii-r{0..4}-{samples} (resumable builds; 1e5-sample catalogs keep
their old folder catalogs/built/popiii-r{0..4}); models to thermoemu/data/models/default
(safetensors + manifest.json); checkpoints to results/train-checkpoints-{samples} (re-running resumes
an interrupted training). Prints the wall time of each region; docs/emulator.md quotes them. The
shipped models were trained with 1e6 samples per region, 20 minutes per network on one thread, two
regions at a time on a 2-core machine (``--threads 1``).
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from thermoemu.core.catalog import build_catalog
from thermoemu.core.spec import load_spec
from thermoemu.primordial.models import NetConfig, TrainSettings, train_region
from thermoemu.primordial.models.artifact import default_model_dir

ROOT = Path(__file__).resolve().parent.parent
#: Sizes of the shipped models: small enough to ship (about 0.8 MB per region) and train on a CPU.
PREDICTOR = NetConfig(kind="fused", layers=6, width=96, latent=48)
TIMESCALE = NetConfig(kind="dgm", layers=4, width=64)
#: The physics-first model: a residual net over the physics step (geometric substeps where one is not
#: gentle; 17 inputs, 7 corrections).
RESIDUAL = NetConfig(kind="residual", layers=4, width=96, n_inputs=17, n_outputs=7, substeps=8)
#: Substeps of the physics step per region where one substep is not gentle: the dense regions' random
#: states relax through faster transients (Table 2 of the physics step alone, region 4, H / T below 5 %:
#: 14 / 18 % with 8 substeps, 51 / 60 % with 32; docs/emulator.md).
SUBSTEPS = {0: 8, 1: 8, 2: 32, 3: 32, 4: 32}
#: Of those, how many at the end are equal (1: all geometric; physics_step.substep_fractions).
UNIFORM = {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}


def catalog_folder(region, samples):
    """catalogs/built/popiii-r{region}-{samples}; the 1e5-sample catalogs keep catalogs/built/popiii-r{region}."""
    name = f"popiii-r{region}" if samples == 100_000 else f"popiii-r{region}-{samples}"
    return ROOT / "catalogs" / "built" / name


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", default="0,1,2,3,4")
    p.add_argument("--design", choices=("deeponet", "physics-first"), default="deeponet")
    p.add_argument("--layers", type=int, default=None, help="hidden layers of the physics-first net")
    p.add_argument("--width", type=int, default=None, help="width of the physics-first net")
    p.add_argument("--substeps", type=int, default=None, help="physics-step substeps (default: per region, SUBSTEPS)")
    p.add_argument("--uniform-substeps", type=int, default=None,
                   help="of those, how many at the end are equal (default: per region, UNIFORM)")
    p.add_argument("--samples", type=int, default=1_000_000, help="catalog size per region")
    p.add_argument("--workers", type=int, default=2, help="dask workers for catalog builds")
    p.add_argument("--max-minutes", type=float, default=20.0,
                   help="training budget per network, summed over runs: a larger one resumes the checkpoints")
    p.add_argument("--timescale-max-minutes", type=float, default=None,
                   help="budget of the DGM timescale nets (default: --max-minutes)")
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--lr-patience", type=int, default=8,
                   help="epochs without a better validation loss before the learning rate halves")
    p.add_argument("--anchored", action="store_true",
                   help="anchored predictors: the predicted change is exactly 0 at dt = 0")
    p.add_argument("--change-weight-floor", type=float, default=None,
                   help="weight the predictor's squared errors by 1 / (|scaled change| + FLOOR)")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default results/train-checkpoints-{samples}); re-running resumes")
    p.add_argument("--out", default=str(default_model_dir()))
    a = p.parse_args(argv)
    timings = {}
    for r in (int(x) for x in a.regions.split(",")):
        spec = load_spec(f"popiii-r{r}")
        catalog = catalog_folder(r, a.samples)
        t0 = time.perf_counter()
        build_catalog(spec, catalog, samples=a.samples, n_workers=a.workers)  # resumes; no-op when complete
        t1 = time.perf_counter()
        if a.design == "physics-first":
            predictor = replace(RESIDUAL, layers=a.layers or RESIDUAL.layers, width=a.width or RESIDUAL.width,
                                substeps=a.substeps or SUBSTEPS[r],
                                uniform_substeps=a.uniform_substeps or UNIFORM[r])
            timescale = None
        else:
            predictor, timescale = replace(PREDICTOR, anchored=a.anchored), TIMESCALE
        train_region(spec, catalog, a.out, predictor=predictor, timescale=timescale,
                     settings=TrainSettings(max_epochs=a.max_epochs, max_minutes=a.max_minutes,
                                            timescale_max_minutes=a.timescale_max_minutes, threads=a.threads,
                                            lr_patience=a.lr_patience,
                                            change_weight_floor=a.change_weight_floor),
                     checkpoint_dir=a.checkpoints or ROOT / "results" / f"train-checkpoints-{a.samples}")
        timings[r] = {"catalog_s": round(t1 - t0, 1), "train_s": round(time.perf_counter() - t1, 1)}
        print(f"region {r}: catalog {timings[r]['catalog_s']} s, training {timings[r]['train_s']} s", flush=True)
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
