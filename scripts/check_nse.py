"""Reference check (issue 6): a long unscreened burn ends in NSE at its own Ye.

Burns X(28Si, 32S, 36Ar, 40Ca, 54Fe) = (0.5, 0.25, 0.1, 0.1, 0.05) at T = 5e9 K, rho = 1e8 g/cc
for ``--dt`` without screening, then solves pynucastro's NSE (same rates, same nuclei, no Coulomb
correction) at the end state's Ye and compares the mass fractions. Also times burns per second per
core at dt = 0.1 s with screening.

    python scripts/check_nse.py --network mesa80 --dt 1000 [--out results/nse_mesa80.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from thermoemu.nuclear.network import NETWORKS, load_network
from thermoemu.nuclear.burner import burn

START = {"si28": 0.5, "s32": 0.25, "ar36": 0.1, "ca40": 0.1, "fe54": 0.05}


def nse_mass_fractions(name, rho, T, ye, isotopes):
    import pynucastro as pyna
    net = NETWORKS[name](pyna)
    nse = pyna.NSENetwork(rates=net.get_rates())
    comp = nse.get_comp_nse(rho, T, ye, use_coulomb_corr=False)
    X = {str(k).lower().replace("h1", "p"): v for k, v in comp.X.items()}
    X = {("p" if k == "p" else k): v for k, v in X.items()}
    return np.array([X.get(i, 0.0) for i in isotopes])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="mesa80", choices=sorted(NETWORKS))
    p.add_argument("--dt", type=float, default=1000.0, help="long burn [s]")
    p.add_argument("--temperature", type=float, default=5e9)
    p.add_argument("--density", type=float, default=1e8)
    p.add_argument("--timing-burns", type=int, default=10)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    net = load_network(a.network, screening=False, progress=True)
    X0 = np.zeros(len(net.isotopes))
    for k, v in START.items():
        X0[net.isotopes.index(k)] = v
    burn(net, [a.density], [a.temperature], X0[None], 1e-6)  # compiles on a new machine
    compile_s = time.perf_counter() - t0
    r = burn(net, [a.density], [a.temperature], X0[None], a.dt, rtol=1e-8)
    if not r.success[0]:
        raise SystemExit(f"long burn failed: status {r.status[0]}")
    X_nse = nse_mass_fractions(a.network, a.density, a.temperature, float(r.ye[0]), net.isotopes)
    X = r.mass_fraction[0]
    diff = np.abs(X - X_nse)
    top = np.argsort(-X)[:8]
    screened = load_network(a.network, screening=True)
    burn(screened, [a.density], [a.temperature], X0[None], 1e-6)
    rt = burn(screened, np.full(a.timing_burns, a.density), np.full(a.timing_burns, a.temperature),
              np.repeat(X0[None], a.timing_burns, 0), 0.1)
    summary = {
        "network": a.network, "isotopes": len(net.isotopes), "T_K": a.temperature, "rho_g_cc": a.density,
        "dt_s": a.dt, "ye_end": float(r.ye[0]), "max_abs_dX_vs_nse": float(diff.max()),
        "isotope_of_max_dX": net.isotopes[int(np.argmax(diff))],
        "largest": {net.isotopes[i]: [float(X[i]), float(X_nse[i])] for i in top},
        "load_and_compile_s": round(compile_s, 1),
        "burns_per_s_per_core_dt0.1_screened": round(a.timing_burns / rt.wall_s, 2),
        "dt0.1_screened": {"ye": float(rt.ye[0]), "e_nuc_erg_g": float(rt.e_nuc[0]),
                           "eps_nu_erg_g_s": float(rt.eps_nu[0]), "success": int(rt.success.sum())},
    }
    print(json.dumps(summary, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
