"""Does more training data help the shipped emulator layout? One region, 10x the catalog.

    python scripts/emulator_data_scaling.py [--region 1] [--samples 1000000] [--max-minutes 40] [--threads 1]

Builds (or resumes) the region's catalog with ``--samples`` states into
catalogs/built/popiii-r{R}-{N} (the first 1e5 / 1e6 of them are the smaller catalogs' states: same
seed, same shards), trains the shipped predictor layout (fused DeepONet 6 x 96, latent 48) on its
train split for ``--max-minutes`` on ``--threads`` torch threads, and compares OS25 Table 2
(fractions of relative errors below 5 % and 10 %) of that predictor and of the shipped one on the
same held-out test split of the large catalog (a hash of the sample id, so no smaller catalog's
model has trained on it). The label of the shipped row gives its training-sample count from its
manifest. Writes results/emulator-data-scaling/{table.md,scaling.json} and the model to
results/emulator-data-scaling/model (``--out`` moves all three).
"""

import argparse
import json
import sys
import time
from pathlib import Path

from thermoemu.core.catalog import build_catalog
from thermoemu.core.spec import load_spec
from thermoemu.primordial.emulator import Emulator
from thermoemu.primordial.evaluate import accuracy_table
from thermoemu.primordial.models import TrainSettings, train_region

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_models import PREDICTOR, ROOT, catalog_folder  # noqa: E402  the shipped layout and folders


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--region", type=int, default=1)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--max-minutes", type=float, default=40.0)
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the training")
    p.add_argument("--out", default=str(ROOT / "results" / "emulator-data-scaling"))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(f"popiii-r{a.region}")
    catalog = catalog_folder(a.region, a.samples)
    t0 = time.perf_counter()
    build_catalog(spec, catalog, samples=a.samples, n_workers=a.workers)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = train_region(spec, catalog, out / "model", predictor=PREDICTOR, timescale=None,
                         settings=TrainSettings(max_epochs=a.max_epochs, max_minutes=a.max_minutes, threads=a.threads),
                         checkpoint_dir=out / "checkpoints")
    t_train = time.perf_counter() - t0
    def fractions(table, key):
        return {v: [float(table[key].sel(variable=v, region=a.region, threshold=t)) for t in (0.05, 0.10)]
                for v in table["variable"].values.tolist()}

    shipped = Emulator("default")
    shipped_samples = shipped.regions[a.region].metadata["training"]["train_samples"]
    this_run = Emulator(out / "model")
    training = this_run.regions[a.region].metadata["training"]
    tables = {label: accuracy_table(emulator, {a.region: catalog})
              for label, emulator in ((f"shipped ({shipped_samples:.1e} training samples)", shipped),
                                      (f"this run ({training['train_samples']:.1e} training samples)", this_run))}
    rows = {label: fractions(table, "fraction_below") for label, table in tables.items()}
    any_table = next(iter(tables.values()))
    rows["OS25 (5.12e8 samples, GPU)"] = fractions(any_table, "seed")
    samples = int(any_table["samples"].sel(region=a.region))
    names = list(rows["OS25 (5.12e8 samples, GPU)"])
    lines = [f"Region {a.region}, test split of {catalog.name} ({samples} samples): fraction below 5 % / 10 %", "",
             "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, r in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{100 * r[v][0]:.0f} / {100 * r[v][1]:.0f}" for v in names) + " |")
    text = "\n".join(lines)
    print(text)
    info = {"region": a.region, "samples": a.samples, "build_s": round(t_build, 1), "train_s": round(t_train, 1),
            "threads": a.threads, "predictor": PREDICTOR.to_dict(), "parameters": model.n_parameters(),
            "training": {k: v for k, v in training.items() if not k.endswith("history")}, "rows": rows}
    (out / "table.md").write_text(text + "\n")
    (out / "scaling.json").write_text(json.dumps(info, indent=2, default=str))
    print(f"catalog {t_build:.0f} s, training {t_train:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
