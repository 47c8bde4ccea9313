"""The compiled burner against scipy's BDF on the same states, in the same run, on one thread.

States: sampled as the mesa80 test catalog samples them (thermoemu/data/catalogs/si-mesa80-test.yaml,
shard 0: log T in [9.2, 9.9], log rho in [7, 9], compositions over the isotopes small22 and mesa80
share), each burned once to 100 s and reported at the catalog's nine dt = 1e-6 .. 100 s (dense
output), rtol 1e-6, atol 1e-20 (the catalog's settings). For each network (mesa80, small22):

* burns/s of ``burn_times(..., method="BDF")`` (scipy's solve_ivp over pynucastro's generated
  functions) and ``method="compiled"`` (thermoemu.nuclear.implicit), both timed over all states,
  the two alternating for ``--repeat`` passes, best pass kept (other work may share the machine);
* the largest differences between them over every state and dt: |dX|, |dYe| / Ye, and |de_nuc|
  relative to the largest |e_nuc| of that state over the nine dt (e_nuc crosses zero at some dt),
  and eps_nu relative; "within tolerance" means all of them <= 10 rtol;
* right-hand-side evaluations of each.

Also, unless skipped:

* ``--catalog-samples``: a mesa80 catalog of that many states (the si-mesa80-test spec, one shard)
  built with ``thermoemu.core.catalog.build_catalog`` on a one-worker, one-thread dask cluster, once
  per method after a one-state warm-up build of each (so the worker has loaded the network);
  states/s from the build's wall time and from the shard's own burn time;
* ``--pynucastro``: small22 states burned to 0.1 s by pynucastro's own
  ``PythonNetwork.integrate_network`` (scipy BDF over its in-memory network, Chugunov 2007
  screening, same rtol and atol; it compiles its own copy of the network, ~1 minute) against the
  compiled burner: max |dX|;
* ``--first-compile``: the first use of the compiled burner on a fresh machine, in a child process
  with empty thermoemu and numba caches (mesa80: generate the network, its kernel arrays, compile
  the integrator, burn one state): wall time and peak memory. ``--first-compile-scipy`` measures
  the scipy path the same way (compiles pynucastro's generated functions: minutes and GBs).

Writes benchmarks/results/bench_burner.json.

Run: python benchmarks/bench_burner.py [--states 32] [--repeat 2] [--catalog-samples 48] [--pynucastro]
     [--first-compile] [--first-compile-scipy] [--networks mesa80,small22] [--merge]
(``--networks "" --catalog-samples 0 --first-compile-scipy --merge`` adds only the scipy first-compile figure.)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TIMES = 10.0 ** np.arange(-6, 3)   # the catalog's nine dt [s]
RTOL, ATOL = 1e-6, 1e-20


def _states(count):
    """T [K], rho [g cm^-3], mesa80 mass fractions and isotope names, as the test catalog's shard 0."""
    from thermoemu.core.spec import load_spec
    from thermoemu.nuclear.catalog import sample_nuclear_inputs
    from thermoemu.nuclear.network import load_network
    mesa80 = load_network("mesa80")
    T, rho, X, _ = sample_nuclear_inputs(load_spec("si-mesa80-test"), 0, count, mesa80)
    return T, rho, X, list(mesa80.isotopes)


def _on(net, X, isotopes):
    """Mass fractions on ``net``'s isotopes (the test states hold only isotopes both networks have)."""
    out = np.zeros((X.shape[0], len(net.isotopes)))
    for j, name in enumerate(isotopes):
        if np.any(X[:, j] > 0):
            out[:, net.isotopes.index(name)] = X[:, j]
    return out


def _differences(a, b):
    """Largest differences of burn result a against b (per-time fields (N, k, ...))."""
    dX = float(np.nanmax(np.abs(a.mass_fraction - b.mass_fraction)))
    dye = float(np.nanmax(np.abs(a.ye - b.ye) / b.ye))
    scale = np.nanmax(np.abs(b.e_nuc), axis=1, keepdims=True)
    de = float(np.nanmax(np.abs(a.e_nuc - b.e_nuc) / scale))
    dnu = float(np.nanmax(np.abs(a.eps_nu - b.eps_nu) / np.abs(b.eps_nu)))
    limit = 10 * RTOL
    return {"max_abs_dX": dX, "max_rel_dYe": dye, "max_rel_de_nuc": de, "max_rel_deps_nu": dnu,
            "within_tolerance": bool(max(dX, dye, de, dnu) <= limit), "tolerance": limit}


def bench_network(name, T, rho, X, isotopes, repeat):
    from thermoemu.nuclear.burner import burn_times
    from thermoemu.nuclear.network import load_network
    net = load_network(name)
    X = _on(net, X, isotopes)
    for method in ("BDF", "compiled"):   # load / compile outside the timing
        burn_times(net, rho[:1], T[:1], X[:1], TIMES, method=method)
    best = {"BDF": np.inf, "compiled": np.inf}
    results = {}
    for _ in range(repeat):
        for method in ("BDF", "compiled"):
            t0 = time.perf_counter()
            results[method] = burn_times(net, rho, T, X, TIMES, rtol=RTOL, atol=ATOL, method=method)
            best[method] = min(best[method], time.perf_counter() - t0)
    a, b = results["compiled"], results["BDF"]
    row = {
        "network": name, "states": int(T.size), "times_s": TIMES.tolist(),
        "scipy_bdf": {"wall_s": best["BDF"], "burns_per_s": T.size / best["BDF"],
                      "failed": int((~b.success).sum()), "nfev_total": int(b.nfev.sum())},
        "compiled": {"wall_s": best["compiled"], "burns_per_s": T.size / best["compiled"],
                     "failed": int((~a.success).sum()), "nfev_total": int(a.nfev.sum())},
        "speedup": best["BDF"] / best["compiled"],
        "differences": _differences(a, b),
    }
    print(f"{name}: scipy BDF {row['scipy_bdf']['burns_per_s']:.2f} burns/s, compiled "
          f"{row['compiled']['burns_per_s']:.1f} burns/s, speedup {row['speedup']:.1f}x; "
          f"nfev {row['scipy_bdf']['nfev_total']} / {row['compiled']['nfev_total']}; {row['differences']}", flush=True)
    return row


def bench_catalog(samples):
    import distributed

    from thermoemu.core.catalog import build_catalog
    from thermoemu.core.spec import load_spec
    base = copy.deepcopy(load_spec("si-mesa80-test").raw)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    rows = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for method in ("BDF", "compiled"):      # warm-up: the worker loads (and compiles) what it needs
                raw = copy.deepcopy(base)
                raw.update(samples=1, shard_size=1, name=f"warm-{method}")
                raw["solver"]["method"] = method
                build_catalog(raw, Path(tmp) / f"warm-{method}", client=client, progress=False)
            for method in ("BDF", "compiled"):
                raw = copy.deepcopy(base)
                raw.update(samples=samples, shard_size=samples, name=f"bench-{method}")
                raw["solver"]["method"] = method
                t0 = time.perf_counter()
                index = build_catalog(raw, Path(tmp) / method, client=client, progress=False)
                wall = time.perf_counter() - t0
                shard_wall = sum(s["wall_s"] for s in index["shards"])
                rows[method] = {"samples": samples, "wall_s": wall, "states_per_s": samples / wall,
                                "shard_burn_s": shard_wall, "burn_states_per_s": samples / shard_wall,
                                "failed": index["failed"]}
                print(f"catalog ({method}): {samples} states in {wall:.1f} s = {samples / wall:.2f} states/s "
                      f"(burning alone {samples / shard_wall:.2f} states/s)", flush=True)
    finally:
        client.close()
        cluster.close()
    rows["speedup"] = rows["BDF"]["wall_s"] / rows["compiled"]["wall_s"]
    return rows


def bench_pynucastro(T, rho, X, isotopes, count=3, dt=0.1):
    """pynucastro's own integrate_network against the compiled burner (small22, screened)."""
    import pynucastro as pyna

    from thermoemu.nuclear.burner import burn
    from thermoemu.nuclear.network import NETWORKS, load_network
    net = load_network("small22")
    X = _on(net, X, isotopes)[:count]
    pnet = NETWORKS["small22"](pyna)
    if [getattr(net.module, "j" + n.raw) for n in pnet.unique_nuclei] != list(range(len(net.isotopes))):
        raise RuntimeError("pynucastro's small22 nuclei are not in the generated module's order")
    ours = burn(net, rho[:count], T[:count], X, dt, method="compiled")
    rows = []
    t0 = time.perf_counter()
    for i in range(count):
        sol = pnet.integrate_network(dt, rho[i], T[i], molar_composition=X[i] / net.A, screen_method="chugunov_2007",
                                     rtol=RTOL, atol=ATOL)
        Xp = sol.X[:, -1]
        rows.append({"T": float(T[i]), "rho": float(rho[i]), "success": bool(sol.success),
                     "max_abs_dX": float(np.abs(Xp - ours.mass_fraction[i]).max())})
    out = {"dt_s": dt, "states": rows, "max_abs_dX": max(r["max_abs_dX"] for r in rows),
           "wall_s_including_its_compile": time.perf_counter() - t0}
    print(f"pynucastro integrate_network vs compiled (small22, dt {dt} s): max |dX| {out['max_abs_dX']:.2e}",
          flush=True)
    return out


_FIRST = """
import resource, sys, time
import numpy as np
t0 = time.perf_counter()
from thermoemu.nuclear.network import load_network
from thermoemu.nuclear.burner import burn
net = load_network("mesa80")
X = np.zeros(len(net.isotopes)); X[net.isotopes.index("si28")] = 1.0
r = burn(net, [1e8], [5e9], X[None], 0.1, method=sys.argv[1])
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, bool(r.success[0]))
"""


def bench_first_compile(method):
    """First use of ``method`` for mesa80 in a child process with empty caches: (wall s, peak GB)."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as numba_cache:
        env = dict(os.environ, THERMOEMU_CACHE=cache, NUMBA_CACHE_DIR=numba_cache, PYTHONWARNINGS="ignore")
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", _FIRST, method], env=env, capture_output=True, text=True,
                             check=True)
        wall = time.perf_counter() - t0
        _, peak_gb, ok = run.stdout.split()[-3:]
        env2 = dict(env)
        t1 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _FIRST, method], env=env2, capture_output=True, text=True, check=True)
        again = time.perf_counter() - t1
    out = {"method": method, "wall_s": wall, "peak_rss_gb": float(peak_gb), "success": ok == "True",
           "second_process_wall_s": again}
    print(f"first use, {method}: {wall:.1f} s, {float(peak_gb):.2f} GB peak; a second process {again:.1f} s",
          flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--networks", default="mesa80,small22")
    parser.add_argument("--catalog-samples", type=int, default=48, help="0 skips the catalog build")
    parser.add_argument("--pynucastro", action="store_true", help="pynucastro's integrate_network check (small22)")
    parser.add_argument("--first-compile", action="store_true")
    parser.add_argument("--first-compile-scipy", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the parts of an existing --out file this run does not measure")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_burner.json"))
    args = parser.parse_args(argv)

    import numba
    import pynucastro
    import scipy

    import thermoemu
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": 1,
                          "load_average_start": os.getloadavg()},
              "versions": {"thermoemu": getattr(thermoemu, "__version__", "?"), "pynucastro": pynucastro.__version__,
                           "numba": numba.__version__, "scipy": scipy.__version__, "numpy": np.__version__},
              "settings": {"rtol": RTOL, "atol": ATOL, "times_s": TIMES.tolist(), "states": args.states,
                           "repeat": args.repeat}}
    out = Path(args.out)
    if args.merge and out.exists():
        result = {**json.loads(out.read_text()), **result}
    T, rho, X, isotopes = _states(args.states)
    if args.networks:
        result["networks"] = [bench_network(name, T, rho, X, isotopes, args.repeat)
                              for name in args.networks.split(",")]
    if args.catalog_samples:
        result["catalog_mesa80"] = bench_catalog(args.catalog_samples)
    if args.pynucastro:
        result["pynucastro_integrate_network"] = bench_pynucastro(T, rho, X, isotopes)
    if args.first_compile or args.first_compile_scipy:
        rows = [bench_first_compile(m) for m, on in
                (("compiled", args.first_compile), ("BDF", args.first_compile_scipy)) if on]
        kept = [r for r in result.get("first_compile_mesa80", []) if r["method"] not in {n["method"] for n in rows}]
        result["first_compile_mesa80"] = kept + rows
    result["machine"]["load_average_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
