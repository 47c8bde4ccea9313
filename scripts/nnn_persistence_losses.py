"""Where a physics-first NNN set loses to persistence on the composition (issue 27; docs/nuclear.md).

    python scripts/nnn_persistence_losses.py --model results/nnn-ros2 [--catalog catalogs/built/si-mesa80-test]
        [--compare default] [--rows 12] [--save results/losses.npz]

Per dt: the states where the set's sum_i |X_i - X_i,ref| is not below persistence's sum_i |X0_i - X_i,ref|
(as ``thermoemu evaluate-nnn`` counts "beats persistence"), with the true change (persistence's error),
the set's error, the step's own error estimate, the steps taken, which step answered (first Euler step,
retry, net), T, rho; and the same counts for ``--compare``.
"""

import argparse

import numpy as np

from thermoemu.core.catalog import open_catalog
from thermoemu.core.emulator import resolve_model
from thermoemu.nuclear.emulator import default_nnn_dir
from thermoemu.nuclear.nnn import load_nnn_set
from thermoemu.nuclear.physics_first import _usable


def _answers(model, T, rho, X0):
    """X from the model, and per cell: the step's error estimate, steps, retried, net answered, guard answered."""
    r = model.step(T, rho, X0)
    X, _, _, use_net = model.predict(T, rho, X0, return_source=True)
    guard = r.get("guarded", np.zeros(len(T), bool))
    return X, r["error"], r["steps"], r["retried"], use_net, guard, _usable(r)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--compare", default=None)
    p.add_argument("--catalog", default="catalogs/built/si-mesa80-test")
    p.add_argument("--rows", type=int, default=12)
    p.add_argument("--save", default=None)
    a = p.parse_args(argv)
    with open_catalog(a.catalog) as lazy:
        cat = lazy.load()
    cat = cat.isel(sample=np.flatnonzero(cat["success"].values.astype(bool)))
    X0 = cat["initial_mass_fraction"].values
    T, rho, dts = cat["temperature"].values, cat["density"].values, cat["dt"].values
    models, _ = load_nnn_set(resolve_model(a.model, default_nnn_dir()))
    other = load_nnn_set(resolve_model(a.compare, default_nnn_dir()))[0] if a.compare else None
    saved = {}
    for dt in sorted(models):
        k = int(np.flatnonzero(np.isclose(dts, dt, rtol=1e-9))[0])
        X_true = cat["mass_fraction"].values[:, k]
        pers = np.abs(X0 - X_true).sum(axis=1)
        X, est, steps, retried, use_net, guard, usable = _answers(models[dt], T, rho, X0)
        err = np.abs(X - X_true).sum(axis=1)
        lose = ~(err < pers)
        print(f"\n## dt = {dt:g} s: {len(T)} states; beats persistence on X in {100 * (1 - lose.mean()):.3g} % "
              f"({lose.sum()} lose); retried {retried.mean():.3f}, net {use_net.mean():.3f}, "
              f"guard {guard.mean():.3f}")
        if other is not None:
            Xo = other[dt].predict(T, rho, X0)[0]
            erro = np.abs(Xo - X_true).sum(axis=1)
            lose_o = ~(erro < pers)
            print(f"   compare: beats persistence in {100 * (1 - lose_o.mean()):.3g} %; of this set's losers, "
                  f"compare beats persistence on {int((~lose_o & lose).sum())}; losers in both: "
                  f"{int((lose_o & lose).sum())}")
        for name, sel in (("losers", lose), ("winners", ~lose)):
            if sel.any():
                q = lambda v: " / ".join(f"{x:.2g}" for x in np.percentile(v[sel], [10, 50, 90]))  # noqa: E731
                print(f"   {name} ({sel.sum()}): true change sum|dX| p10/50/90 {q(pers)}; own error {q(err)}; "
                      f"estimate {q(np.nan_to_num(est, nan=-1))}; steps {q(np.nan_to_num(steps, nan=-1))}; "
                      f"log T {q(np.log10(T))}; retried {retried[sel].mean():.2f}, net {use_net[sel].mean():.2f}")
        ratio = np.where(pers > 0, est / np.maximum(pers, 1e-300), np.inf)
        for lim in (1e-4, 1e-3, 1e-2, 3e-2, 1e-1):
            small = pers < lim
            if small.any():
                print(f"   true change < {lim:g}: {small.sum()} states, {lose[small].sum()} lose "
                      f"({100 * lose[small].mean():.3g} %)")
        order = np.argsort(-(err - pers) * lose)[:min(a.rows, lose.sum())]
        print("   | state | log T | log rho | true change | error | error / change | estimate | estimate / change "
              "| steps | answered by |")
        for i in order:
            by = "net" if use_net[i] else ("guard" if guard[i] else ("retry" if retried[i] else "first step"))
            print(f"   | {i} | {np.log10(T[i]):.3f} | {np.log10(rho[i]):.2f} | {pers[i]:.3g} | {err[i]:.3g} | "
                  f"{err[i] / pers[i]:.3g} | {est[i]:.3g} | {ratio[i]:.3g} | {steps[i]:.0f} | {by} |")
        saved[f"lose_{dt:g}"] = np.flatnonzero(lose)
        saved[f"pers_{dt:g}"], saved[f"err_{dt:g}"], saved[f"est_{dt:g}"] = pers, err, est
    if a.save:
        np.savez(a.save, **saved)


if __name__ == "__main__":
    main()
