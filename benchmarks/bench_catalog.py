"""Catalog build throughput: samples per second for Region 1 with 1, 2, ... dask workers.

Each worker count builds the same Region-1 catalog (the built-in popiii-r1 spec with a smaller
sample count and shard size) into a fresh folder on a fresh LocalCluster of single-threaded worker
processes. The rate is samples over the build's wall time after the cluster is up
(``index["build_wall_s"]``); per-worker efficiency is rate(k) / (k * rate(1)). The shards of every
run are compared by checksum, which must agree (the build is deterministic whatever the workers).

Run: python benchmarks/bench_catalog.py [--workers 1,2] [--samples 8000] [--shard-size 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from thermoemu.core.catalog import build_catalog
from thermoemu.core.spec import load_spec


def run(workers=(1, 2), samples=8000, shard_size=500, spec="popiii-r1"):
    base = load_spec(spec)
    raw = dict(base.raw, samples=samples, shard_size=shard_size)
    from thermoemu.core.spec import validate_spec
    spec_obj = validate_spec(raw)
    rows = []
    checksums = None
    for k in workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            index = build_catalog(spec_obj, Path(tmp) / "cat", n_workers=k, progress=False)
            total = time.perf_counter() - t0
            sums = [e["sha256"] for e in index["shards"]]
        if checksums is None:
            checksums = sums
        rate = samples / index["build_wall_s"]
        rows.append({"workers": k, "samples": samples, "build_wall_s": index["build_wall_s"],
                     "wall_with_cluster_start_s": total, "samples_per_s": rate,
                     "identical_shards": sums == checksums})
        print(f"{k} worker(s): {rate:.0f} samples/s ({index['build_wall_s']:.1f} s; "
              f"{total:.1f} s with cluster start-up); shards identical to the first run: {sums == checksums}")
    r1 = rows[0]["samples_per_s"] / rows[0]["workers"]
    for row in rows:
        row["per_worker_efficiency"] = row["samples_per_s"] / (row["workers"] * r1)
        print(f"{row['workers']} worker(s): per-worker efficiency {row['per_worker_efficiency']:.2f}")
    return {"spec": spec, "shard_size": shard_size, "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2")
    p.add_argument("--samples", type=int, default=8000)
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--spec", default="popiii-r1")
    p.add_argument("-o", "--output", default="benchmarks/results")
    a = p.parse_args()
    result = run(tuple(int(w) for w in a.workers.split(",")), a.samples, a.shard_size, a.spec)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'catalog.json'}")


if __name__ == "__main__":
    main()
