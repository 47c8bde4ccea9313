"""Does more training data help the shipped emulator layout? One region, 10x the catalog.

    python scripts/emulator_data_scaling.py [--region 1] [--samples 1000000] [--max-minutes 40]

Builds (or resumes) the region's catalog with ``--samples`` states into
catalogs/built/popiii-r{R}-{N} (the first 1e5 of them are the shipped catalog's states: same seed,
same shards), trains the shipped predictor layout (fused DeepONet 6 x 96, latent 48) on its train
split for ``--max-minutes`` on one thread, and compares OS25 Table 2 (fractions of relative errors
below 5 % and 10 %) of that predictor and of the shipped one on the same held-out test split of the
large catalog. The shipped predictor was trained on ~9e4 samples for <= 8 minutes. Writes
results/emulator-data-scaling/{table.md,scaling.json} and the model to results/emulator-data-scaling/model.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from thermoemu.catalog import build_catalog
from thermoemu.catalog_spec import load_spec
from thermoemu.emulator import Emulator
from thermoemu.evaluate import accuracy_table
from thermoemu.models import TrainSettings, train_region

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_models import PREDICTOR, ROOT, catalog_folder  # noqa: E402  the shipped layout and folders


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--region", type=int, default=1)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--max-minutes", type=float, default=40.0)
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--workers", type=int, default=2)
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
                         settings=TrainSettings(max_epochs=a.max_epochs, max_minutes=a.max_minutes, threads=1),
                         checkpoint_dir=out / "checkpoints")
    t_train = time.perf_counter() - t0
    def fractions(table, key):
        return {v: [float(table[key].sel(variable=v, region=a.region, threshold=t)) for t in (0.05, 0.10)]
                for v in table["variable"].values.tolist()}

    tables = {label: accuracy_table(Emulator(folder), {a.region: catalog})
              for label, folder in (("shipped (9e4 samples)", "default"), (f"{a.samples:.0e} samples", out / "model"))}
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
            "predictor": PREDICTOR.to_dict(), "parameters": model.n_parameters(), "rows": rows}
    (out / "table.md").write_text(text + "\n")
    (out / "scaling.json").write_text(json.dumps(info, indent=2, default=str))
    print(f"catalog {t_build:.0f} s, training {t_train:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
