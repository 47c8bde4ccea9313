"""Where the time of the shipped physics-first NNN step goes (issue 27; docs/nuclear.md "Physics-first NNNs").

    python scripts/profile_nnn_step.py [--dt 1e-3] [--cells 256] [--catalog catalogs/built/si-mesa80-test]

On the first ``--cells`` states of the catalog (default: the seed's test set), one thread, each part timed
as the minimum of 3 repeats in this process:

* the whole ``PhysicsFirstNNN.predict`` of the shipped set at ``--dt``;
* its parts: the first physics step (the set's substeps and ratio) over all cells, the retry over the
  cells whose first step is not usable (their share), the net over the cells still not usable;
* the cost of one substep's pieces on one typical state (rates + dY/dt, rates + Jacobian, the LU
  factorization of I - h J, its compression, one solve), each repeated 2000 times in compiled code.
"""

import argparse
import time

import numpy as np
import numba

from thermoemu.core.catalog import open_catalog
from thermoemu.nuclear.emulator import default_nnn_dir
from thermoemu.nuclear.nnn import load_nnn_set
from thermoemu.nuclear.physics_first import _usable
from thermoemu.nuclear.physics_step import _fun_jac, _lu_factor_static, _lu_gather, _lu_pattern, physics_step
from thermoemu.nuclear.implicit import (_burn_constants, _constant_arrays, _fun, _jac, _lu_compress, _lu_factor,
                                        _lu_solve)


def _best(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@numba.njit(cache=False)
def _pieces(z, rho, T, base, D, screened, h, reps, times, S):
    """Time the pieces of one substep at state z (times: out, seconds per call of each piece)."""
    m = z.size
    pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.size)
    _burn_constants(T, rho, D, pc, cf, wk)
    C = (pc, cf, wk, True, log_scor, kb, k, flux)
    f = np.zeros(m)
    J = np.zeros((m, m))
    LU = np.zeros((m, m))
    piv = np.zeros(m, np.int64)
    cols = np.zeros(m, np.int64)
    Lp, Li, Lv = np.zeros(m + 1, np.int64), np.zeros(m * m, np.int64), np.zeros(m * m)
    Up, Ui, Uv = np.zeros(m + 1, np.int64), np.zeros(m * m, np.int64), np.zeros(m * m)
    dinv, x, w = np.zeros(m), np.zeros(m), np.zeros(m)
    acc = 0.0
    with numba.objmode(t0="f8"):
        t0 = time.perf_counter()
    for _ in range(reps):
        _fun(z, rho, T, base, D, screened, C, f)
        acc += f[0]
    with numba.objmode(t1="f8"):
        t1 = time.perf_counter()
    for _ in range(reps):
        _jac(z, rho, T, base, D, screened, C, J)
        acc += J[0, 0]
    with numba.objmode(t2="f8"):
        t2 = time.perf_counter()
    for _ in range(reps):
        _lu_factor(J, h, D.order, LU, piv, cols)
        acc += LU[0, 0]
    with numba.objmode(t3="f8"):
        t3 = time.perf_counter()
    for _ in range(reps):
        _lu_compress(LU, Lp, Li, Lv, Up, Ui, Uv, dinv)
        acc += dinv[0]
    with numba.objmode(t4="f8"):
        t4 = time.perf_counter()
    for _ in range(reps):
        _lu_solve(piv, D.order, Lp, Li, Lv, Up, Ui, Uv, dinv, f, x, w)
        acc += x[0]
    with numba.objmode(t5="f8"):
        t5 = time.perf_counter()
    dirty = np.zeros(1, np.bool_)
    swaps = 0
    jv = np.zeros(S[0].size + D.react.size)
    _fun_jac(z, rho, T, base, D, screened, C, (np.zeros(2), np.zeros(base.size), 0.0), f, J, jv, S, True)
    for _ in range(reps):
        if not _lu_factor_static(J, jv, h, D.order, LU, piv, cols, S, dirty):
            swaps += 1
        acc += LU[0, 0]
    with numba.objmode(t6="f8"):
        t6 = time.perf_counter()
    for _ in range(reps):
        _lu_gather(LU, S, Lv, Uv, dinv)
        acc += dinv[0]
    with numba.objmode(t7="f8"):
        t7 = time.perf_counter()
    for _ in range(reps):
        _fun_jac(z, rho, T, base, D, screened, C, (np.zeros(2), np.zeros(base.size), 0.0), f, J, jv, S, True)
        acc += jv[0]
    with numba.objmode(t8="f8"):
        t8 = time.perf_counter()
    times[5] = (t6 - t5) / reps
    times[6] = (t7 - t6) / reps
    times[7] = (t8 - t7) / reps
    times[8] = swaps
    times[0] = (t1 - t0) / reps
    times[1] = (t2 - t1) / reps
    times[2] = (t3 - t2) / reps
    times[3] = (t4 - t3) / reps
    times[4] = (t5 - t4) / reps
    nnz = 0
    for i in range(m):
        for j in range(m):
            if LU[i, j] != 0.0:
                nnz += 1
    return acc, nnz


def main(argv=None):
    import torch
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dt", type=float, default=1e-3)
    p.add_argument("--cells", type=int, default=256)
    p.add_argument("--catalog", default="catalogs/built/si-mesa80-test")
    p.add_argument("--split", default=None)
    p.add_argument("--model", default=None, help="an NNN set (default: the shipped one)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    with open_catalog(a.catalog, split=a.split) as lazy:
        cat = lazy.load()
    T, rho, X0 = (cat[v].values[:a.cells] for v in ("temperature", "density", "initial_mass_fraction"))
    models, _ = load_nnn_set(a.model or default_nnn_dir())
    model = models[a.dt]
    model.predict(T[:4], rho[:4], X0[:4])   # compile / load outside the timing
    N = len(T)
    kernel = model.kernel
    t_all = _best(lambda: model.predict(T, rho, X0))
    abort = getattr(model, "abort", 0.0) if getattr(model, "retry", None) is not None else 0.0
    screen = getattr(model, "screen_rtol", 0.0)
    kw = dict(substeps=model.substeps, ratio=model.ratio, abort=abort, screen_rtol=screen)
    first = physics_step(kernel, rho, T, X0, a.dt, **kw)
    t_first = _best(lambda: physics_step(kernel, rho, T, X0, a.dt, **kw))
    t_step = _best(lambda: model.step(T, rho, X0))
    again = np.flatnonzero(~_usable(first))
    t_retry, net_cells = 0.0, again
    retry = getattr(model, "retry", None)
    if retry is not None and again.size:
        if hasattr(model, "_retry_step"):
            fn = lambda: model._retry_step(T[again], rho[again], X0[again])   # noqa: E731
        else:
            fn = lambda: physics_step(kernel, rho[again], T[again], X0[again], a.dt, substeps=retry[0],   # noqa: E731
                                      ratio=retry[1])
        r2 = fn()
        t_retry = _best(fn)
        net_cells = again[~_usable(r2)]
    t_net = _best(lambda: model.net.predict(T[net_cells], rho[net_cells], X0[net_cells])) if net_cells.size else 0.0
    print(f"dt = {a.dt:g} s, {N} states of {a.catalog}; per cell of all {N} (us):")
    print(f"  predict (all)         {t_all / N * 1e6:9.1f}")
    print(f"  physics step (both)   {t_step / N * 1e6:9.1f}  (the retry in the same call where the first aborts)")
    print(f"  first step {model.substeps}:{model.ratio:g}      {t_first / N * 1e6:9.1f}  (abort {abort:g}: "
          f"{np.mean(first['status'] == 5):.1%} of cells given up; screening kept to {screen:g})")
    if retry is not None:
        print(f"  retry {retry}        {t_retry / N * 1e6:9.1f}  on {again.size / N:.1%} of cells "
              f"({t_retry / max(again.size, 1) * 1e6:.1f} per retried cell)")
    print(f"  net                   {t_net / N * 1e6:9.1f}  on {net_cells.size / N:.1%} of cells")
    print(f"  rest (copies, checks) {(t_all - t_first - t_retry - t_net) / N * 1e6:9.1f}  (first + retry + net "
          f"against the whole; negative: the retry in the same call saves that much)")
    # the pieces of one substep, at a mid-step state of a typical retried cell
    c = int(again[0]) if again.size else 0
    A = np.asarray(kernel.network.A, float)
    mid = physics_step(kernel, rho[c:c + 1], T[c:c + 1], X0[c:c + 1], a.dt * 1e-3, substeps=8, ratio=4)
    z = np.zeros(A.size + 1)
    z[:A.size] = mid["mass_fraction"][0] / A
    base = kernel.base_rates(T[c:c + 1])[0]
    times = np.zeros(9)
    S = _lu_pattern(kernel.data)
    _pieces(z, rho[c], T[c], base, kernel.data, kernel.screening, a.dt / 100, 10, times, S)
    _pieces(z, rho[c], T[c], base, kernel.data, kernel.screening, a.dt / 100, 2000, times, S)
    _, nnz = _pieces(z, rho[c], T[c], base, kernel.data, kernel.screening, a.dt / 100, 2000, times, S)
    names = ("rates + dY/dt (_fun)", "rates + Jacobian (_jac)", "LU factor of I - hJ", "LU compress", "LU solve",
             "LU factor, static pattern", "LU gather, static pattern",
             "rates + dY/dt + Jacobian on its nonzeros (one rates)")
    print(f"static pattern: {S[4].size} entries; row swaps needed in {times[8]:.0f} of 2000 factorizations")
    times = times[:8]
    print(f"one substep's pieces (state {c}, us per call; the factors hold {nnz} nonzeros of {z.size ** 2}):")
    for name, t in zip(names, times):
        print(f"  {name:24s} {t * 1e6:8.2f}")
    print(f"  one Euler substep before: jac + factor + compress + solve + fun {times[:5].sum() * 1e6:.1f}; "
          f"now: fun_jac + static factor + gather + solve {(times[4] + times[5] + times[6] + times[7]) * 1e6:.1f}")
    t_base = _best(lambda: kernel.base_rates(T))
    print(f"temperature-only rates (kernel.base_rates) per cell: {t_base / N * 1e6:.1f} us")


if __name__ == "__main__":
    main()
