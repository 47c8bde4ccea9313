"""Ye through the clip of a physics-first NNN set's step (issue 27; docs/nuclear.md, "Ye through the clip").

    python scripts/nnn_ye_clip.py [--model nnn-mesa80-accurate] [--catalog catalogs/built/si-mesa80-test]
        [--dt 1e-3] [--rows 20]

Per dt: the states where the set's Ye is not closer to the reference than persistence's (as ``thermoemu
evaluate-nnn`` counts "beats persistence" on Ye), with the true |dYe|, the mass fraction clipped below zero,
the step's Ye error before the clip (its unclipped result), after the clip and renormalization (what the
set answers without ``conserve_ye``) and after :func:`thermoemu.nuclear.physics_step.restore_ye`; and over
all step-answered states, Ye and sum X after restore_ye against the unclipped Ye and 1.
"""

import argparse

import numpy as np

from thermoemu.core.catalog import open_catalog
from thermoemu.core.emulator import resolve_model
from thermoemu.nuclear.emulator import default_nnn_dir
from thermoemu.nuclear.nnn import load_nnn_set
from thermoemu.nuclear.physics_step import restore_ye


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nnn-mesa80-accurate")
    p.add_argument("--catalog", default="catalogs/built/si-mesa80-test")
    p.add_argument("--dt", type=float, nargs="*", default=None)
    p.add_argument("--rows", type=int, default=20)
    a = p.parse_args(argv)
    with open_catalog(a.catalog) as lazy:
        cat = lazy.load()
    cat = cat.isel(sample=np.flatnonzero(cat["success"].values.astype(bool)))
    X0 = cat["initial_mass_fraction"].values
    T, rho, dts = cat["temperature"].values, cat["density"].values, cat["dt"].values
    models, _ = load_nnn_set(resolve_model(a.model, default_nnn_dir()))
    for dt in sorted(models) if not a.dt else a.dt:
        model = models[dt]
        net = model.kernel.network
        q = np.asarray(net.Z, float) / np.asarray(net.A, float)
        k = int(np.flatnonzero(np.isclose(dts, dt, rtol=1e-9))[0])
        X_true = cat["mass_fraction"].values[:, k]
        ye0, ye_true = X0 @ q, X_true @ q
        r = model.step(T, rho, X0)
        X, _, _, use_net = model.predict(T, rho, X0, return_source=True)
        step = ~use_net
        Xr = X.copy()
        Xr[step] = restore_ye(X[step], r["ye"][step], q)
        err_pred, err_pers = np.abs(X @ q - ye_true), np.abs(ye0 - ye_true)
        err_unclipped, err_restored = np.abs(r["ye"] - ye_true), np.abs(Xr @ q - ye_true)
        lose = ~(err_pred < err_pers)
        lose_r = ~(err_restored < err_pers)
        print(f"\n## dt = {dt:g} s: {len(T)} states, step answers {step.sum()}; Ye loses to persistence in "
              f"{lose.sum()} ({100 * lose.mean():.3g} %; step-answered {(lose & step).sum()}); with restore_ye "
              f"{lose_r.sum()} ({100 * lose_r.mean():.3g} %)")
        dye = np.abs(Xr[step] @ q - r["ye"][step])
        dmass = np.abs(Xr[step].sum(axis=1) - 1.0)
        print(f"   after restore_ye, step-answered: max |Ye - Ye unclipped| {dye.max():.3g}, max |sum X - 1| "
              f"{dmass.max():.3g}; min X {Xr[step].min():.3g}; clip's Ye shift |Ye clipped - Ye unclipped| "
              f"median / max {np.median(np.abs(X[step] @ q - r['ye'][step])):.3g} / "
              f"{np.abs(X[step] @ q - r['ye'][step]).max():.3g}")
        print("   | state | log T | answered by | clipped | true abs dYe | Ye error: unclipped | clipped | restored "
              "| beats persistence after |")
        rows = np.flatnonzero(lose | lose_r)[:a.rows]
        for i in rows:
            by = "net" if use_net[i] else ("retry" if r["retried"][i] else "first step")
            print(f"   | {i} | {np.log10(T[i]):.3f} | {by} | {r['negative'][i]:.2g} | {err_pers[i]:.2g} | "
                  f"{err_unclipped[i]:.2g} | {err_pred[i]:.2g} | {err_restored[i]:.2g} | "
                  f"{'yes' if err_restored[i] < err_pers[i] else 'no'} |")


if __name__ == "__main__":
    main()
