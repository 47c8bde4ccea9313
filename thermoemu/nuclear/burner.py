"""Burn at constant temperature and density over dt (Grichener et al. 2025, section 2.1).

Per cell, a BDF integrator with the network's analytic Jacobian integrates the molar abundances
Y = X / A together with the weak-neutrino energy E_nu (``dE_nu/dt`` = the tabulated weak rates'
neutrino losses). Two implementations of the same method:

* ``method="compiled"`` (default): :mod:`thermoemu.nuclear.implicit`, scipy's BDF ported to numba
  over a compiled network kernel; ~10x faster, the same steps up to round-off;
* ``method="BDF"`` (or ``"LSODA"``, ``"Radau"``): scipy's ``solve_ivp`` over pynucastro's generated
  right-hand side and Jacobian.

Then

* ``e_nuc = E_mass - E_nu`` [erg g^-1]: E_mass from the mass change of the whole step (AME
  masses), not from instantaneous rates, which near NSE cancel to round-off;
* ``eps_nu`` [erg g^-1 s^-1]: the weak-neutrino loss rate at the end of the step;
* ``ye`` at the end of the step.

The absolute tolerance on Y defaults to 1e-20: free neutrons and protons sit at Y ~ 1e-17..1e-15
and a looser one lets them go negative (``../shared/physics/nuclear.md``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ..core.protocols import StepResult
from .network import NuclearNetwork, load_network

__all__ = ["BURN_STATUS", "METHODS", "BurnResult", "BurnerStepper", "burn", "burn_times"]

BURN_STATUS = {0: "ok", 1: "integrator failed", 2: "negative abundance beyond tolerance", 3: "non-finite result",
               4: "weak-rate table left (rho Ye or T outside it)"}
#: Integration methods: the compiled BDF and scipy's solve_ivp methods.
METHODS = ("compiled", "BDF", "LSODA", "Radau")
#: Negative mass fractions down to this are clipped to zero after a successful step.
NEGATIVE_TOLERANCE = 1e-12


@dataclass
class BurnResult:
    """Per cell: ``mass_fraction`` (N, isotopes), ``ye``, ``e_nuc`` [erg g^-1], ``eps_nu``
    [erg g^-1 s^-1], ``success``, ``status`` (:data:`BURN_STATUS`), ``nfev``, and ``wall_s``."""

    mass_fraction: np.ndarray
    ye: np.ndarray
    e_nuc: np.ndarray
    eps_nu: np.ndarray
    success: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    wall_s: float


def _burn_one(net: NuclearNetwork, rho, T, X0, times, rtol, atol, method):
    """Burn one cell; results at each of the increasing ``times`` [s] (all > 0)."""
    Y0 = X0 / net.A
    n = Y0.size
    rhs_nu, jac = net.rhs_with_neutrino, net.jacobian
    nu_rate = net.module.neutrino_loss_rate

    def f(t, z):  # dY/dt and dE_nu/dt from one rate evaluation
        return rhs_nu(t, z, rho, T)

    def J(t, z):
        out = np.zeros((n + 1, n + 1))
        out[:n, :n] = jac(t, z[:n], rho, T)
        return out

    z0 = np.concatenate([Y0, [0.0]])
    atol_vec = np.concatenate([np.full(n, atol), [1e-6 * max(1.0, abs(net.energy_release(-Y0)))]])
    sol = solve_ivp(f, (0.0, times[-1]), z0, method=method, jac=J, rtol=rtol, atol=atol_vec, t_eval=times)
    if not sol.success or sol.y.shape[1] != len(times):
        return None, sol.nfev, 1
    if not np.all(np.isfinite(sol.y)):
        return None, sol.nfev, 3
    Y = sol.y[:n].T  # (times, isotopes)
    X = Y * net.A
    if X.min() < -NEGATIVE_TOLERANCE:
        return None, sol.nfev, 2
    e_nuc = np.array([net.energy_release(y - Y0) for y in Y]) - sol.y[n]
    eps_nu = np.array([float(nu_rate(y, rho, T)) for y in Y])
    ye = np.array([net.ye(y) for y in Y])
    return (np.maximum(X, 0.0), ye, e_nuc, eps_nu), sol.nfev, 0


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method = {method!r}; choose one of {', '.join(METHODS)}")


def _check_cells(rho, T, X0):
    """Refuse non-finite or non-positive density and temperature and non-finite mass fractions, naming the cell."""
    for label, values, unit in (("density", rho, "g cm^-3"), ("temperature", T, "K")):
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            raise ValueError(f"{label} = {float(values[bad[0]])!r} {unit} in cell {bad[0]}: must be finite and > 0")
    bad = np.argwhere(~np.isfinite(X0))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"mass_fraction = {float(X0[i, j])!r} in cell {i}, isotope {j}: must be finite")


def _burn_compiled(net, rho, T, X0, times, rtol, atol, out, progress):
    """Fill ``out`` (a BurnResult over the cells) with the compiled integrator, in chunks for progress."""
    from .implicit import integrate_cells
    from .network import load_burner_kernel

    kernel = load_burner_kernel(net, progress=progress)
    N = rho.size
    chunk = 32 if progress else max(N, 1)
    for lo in range(0, N, chunk):
        sel = slice(lo, min(N, lo + chunk))
        Y0 = X0[sel] / net.A
        r = integrate_cells(kernel, rho[sel], T[sel], Y0, times, rtol=rtol, atol=atol)
        n = Y0.shape[1]
        Y = r["z"][:, :, :n]
        X = Y * net.A
        status = np.where(r["status"] == 0, 0, np.where(r["status"] == 3, 4, 1)).astype(np.int8)
        finite = np.isfinite(r["z"]).all(axis=(1, 2)) & np.isfinite(r["eps_nu"]).all(axis=1)
        status[(status == 0) & ~finite] = 3
        negative = np.where(np.isnan(X), 0.0, X).reshape(X.shape[0], -1).min(axis=1) < -NEGATIVE_TOLERANCE
        status[(status == 0) & negative] = 2
        ok = status == 0
        e_mass = kernel.energy_release((Y - Y0[:, None, :]).reshape(-1, n)).reshape(Y.shape[:2])
        out.status[sel], out.nfev[sel], out.success[sel] = status, r["nfev"], ok
        idx = np.arange(lo, sel.stop)[ok]
        out.mass_fraction[idx] = np.maximum(X[ok], 0.0)
        out.e_nuc[idx] = e_mass[ok] - r["z"][ok, :, n]
        out.eps_nu[idx] = r["eps_nu"][ok]
        out.ye[idx] = (Y[ok] @ net.Z) / (Y[ok] @ net.A)
        if progress:
            sys.stderr.write(f"\rburn {net.name}: {sel.stop}/{N} cells")


def burn_times(network, density, temperature, mass_fraction, times, *, screening=True, rtol=1e-6, atol=1e-20,
               method="compiled", progress=False):
    """Like :func:`burn`, but each cell is integrated once and reported at several ``times`` [s].

    Returns a :class:`BurnResult` whose per-time fields have a times axis after the cell axis:
    ``mass_fraction`` (N, len(times), isotopes), ``ye``, ``e_nuc``, ``eps_nu`` (N, len(times)).
    One integration to the longest time gives all shorter ones (dense output), which is how a
    catalog gets its nine dt values per state at the cost of one burn.
    """
    _check_method(method)
    net = network if isinstance(network, NuclearNetwork) else load_network(network, screening=screening)
    rho = np.atleast_1d(np.asarray(density, dtype=float))
    T = np.broadcast_to(np.asarray(temperature, dtype=float), rho.shape)
    X0 = np.atleast_2d(np.asarray(mass_fraction, dtype=float))
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if not (np.all(np.isfinite(times)) and times[0] > 0 and np.all(np.diff(times) > 0)):
        raise ValueError(f"times = {times.tolist()} s: need finite, positive, increasing values")
    N, n_iso = X0.shape
    if n_iso != len(net.isotopes) or N != rho.size:
        raise ValueError(f"mass_fraction has shape {X0.shape}; expected ({rho.size}, {len(net.isotopes)}) "
                         f"for {rho.size} cells of network {net.name}")
    _check_cells(rho, T, X0)
    k = times.size
    out = BurnResult(np.full((N, k, n_iso), np.nan), np.full((N, k), np.nan), np.full((N, k), np.nan),
                     np.full((N, k), np.nan), np.zeros(N, bool), np.zeros(N, np.int8), np.zeros(N, np.int64), 0.0)
    t0 = time.perf_counter()
    if method == "compiled":
        _burn_compiled(net, rho, T, X0, times, rtol, atol, out, progress)
    else:
        for i in range(N):  # scipy's integrators are per system; the cells are independent
            res, nfev, status = _burn_one(net, rho[i], T[i], X0[i], times, rtol, atol, method)
            out.nfev[i], out.status[i] = nfev, status
            if res is not None:
                out.mass_fraction[i], out.ye[i], out.e_nuc[i], out.eps_nu[i] = res
                out.success[i] = True
            if progress:
                sys.stderr.write(f"\rburn {net.name}: {i + 1}/{N} cells")
    if progress:
        sys.stderr.write("\n")
    out.wall_s = time.perf_counter() - t0
    return out


def burn(network, density, temperature, mass_fraction, dt, *, screening=True, rtol=1e-6, atol=1e-20,
         method="compiled", progress=False):
    """Burn cells at constant density and temperature over ``dt``.

    Parameters
    ----------
    network : str or NuclearNetwork
        ``"mesa80"`` or ``"small22"`` (:func:`load_network`).
    density : array_like (N,)
        [g cm^-3]
    temperature : array_like (N,)
        [K]
    mass_fraction : array_like (N, isotopes)
        In the network's isotope order (``network.isotopes``); each row sums to 1.
    dt : float or array_like (N,)
        [s], > 0.
    screening : bool
        Chugunov et al. (2007) screening (default) or none.
    rtol, atol : float
        Tolerances (atol on molar abundances Y = X/A).
    method : {"compiled", "BDF", "LSODA", "Radau"}
        ``"compiled"``: :mod:`thermoemu.nuclear.implicit` (scipy's BDF in numba over a compiled
        kernel; its first use on a machine compiles ~1.5 minutes for mesa80); the others:
        scipy's ``solve_ivp`` over pynucastro's generated functions (first mesa80 compile ~6.5
        minutes and ~5 GB).
    progress : bool
        Print progress to stderr.

    Returns
    -------
    BurnResult
        Failed cells hold NaN and ``success = False`` with a status code.

    Raises
    ------
    ValueError
        For a dt that is not finite and > 0, a non-finite or non-positive density or temperature, a
        non-finite mass fraction, or an unknown method; the message names the value.
    """
    _check_method(method)
    net = network if isinstance(network, NuclearNetwork) else load_network(network, screening=screening)
    rho = np.atleast_1d(np.asarray(density, dtype=float))
    dt = np.broadcast_to(np.asarray(dt, dtype=float), rho.shape)
    if not (np.all(np.isfinite(dt)) and np.all(dt > 0)):
        bad = np.flatnonzero(~(np.isfinite(dt) & (dt > 0)))[0]
        raise ValueError(f"dt = {float(dt[bad])!r} s in cell {bad}: must be finite and > 0")
    T = np.broadcast_to(np.asarray(temperature, dtype=float), rho.shape)
    X0 = np.atleast_2d(np.asarray(mass_fraction, dtype=float))
    parts = []
    t0 = time.perf_counter()
    for value in np.unique(dt):  # cells sharing a dt go together
        sel = np.flatnonzero(dt == value)
        parts.append((sel, burn_times(net, rho[sel], T[sel], X0[sel] if len(X0) == rho.size else X0, [value],
                                      rtol=rtol, atol=atol, method=method, progress=progress)))
    N = rho.size
    n_iso = len(net.isotopes)
    out = BurnResult(np.full((N, n_iso), np.nan), np.full(N, np.nan), np.full(N, np.nan), np.full(N, np.nan),
                     np.zeros(N, bool), np.zeros(N, np.int8), np.zeros(N, np.int64), 0.0)
    for sel, r in parts:
        out.mass_fraction[sel] = r.mass_fraction[:, 0]
        out.ye[sel], out.e_nuc[sel], out.eps_nu[sel] = r.ye[:, 0], r.e_nuc[:, 0], r.eps_nu[:, 0]
        out.success[sel], out.status[sel], out.nfev[sel] = r.success, r.status, r.nfev
    out.wall_s = time.perf_counter() - t0
    return out


class BurnerStepper:
    """The pynucastro network and the burner (``method``, default the compiled BDF) as a
    :class:`~thermoemu.core.protocols.Stepper`.

    ``cells``: ``{"temperature": [K], "density": [g cm^-3]}``; ``x``: mass fractions (isotopes, N) in
    the network's order. Cells with dt = 0 are left as they are. ``StepResult.status`` holds
    :data:`BURN_STATUS`; ``extra`` holds ``e_nuc`` [erg g^-1], ``eps_nu`` [erg g^-1 s^-1], ``ye`` and
    ``nfev``.
    """

    chemistry = "nuclear"
    status = BURN_STATUS

    def __init__(self, network="mesa80", *, screening=True, rtol=1e-6, atol=1e-20, method="compiled", progress=False):
        _check_method(method)
        self.network = network if isinstance(network, NuclearNetwork) else load_network(network, screening=screening)
        self.rtol, self.atol, self.method, self.progress = rtol, atol, method, progress

    @property
    def variables(self):
        return tuple(self.network.isotopes)

    @property
    def label(self):
        return f"{self.network.name} burner ({self.method})"

    def step_arrays(self, cells, x, dt):
        """Burn every cell with dt > 0 over dt [s] at constant T and rho."""
        T = np.asarray(cells["temperature"], dtype=float).ravel()
        rho = np.asarray(cells["density"], dtype=float).ravel()
        n_iso = len(self.network.isotopes)
        X = np.asarray(x, dtype=float)
        if X.shape != (n_iso, T.size):
            raise ValueError(f"x has shape {X.shape}; a Stepper takes mass fractions variable-first, shape "
                             f"(isotopes, cells) = ({n_iso}, {T.size}) in the network's order")
        X = X.T.copy()
        dt = np.broadcast_to(np.asarray(dt, dtype=float), T.shape)
        e_nuc, eps_nu = np.zeros(T.size), np.zeros(T.size)
        success, status = np.ones(T.size, bool), np.zeros(T.size, np.int8)
        nfev = np.zeros(T.size, np.int64)
        idx = np.flatnonzero(dt > 0)
        if idx.size:
            res = burn(self.network, rho[idx], T[idx], X[idx], dt[idx], rtol=self.rtol, atol=self.atol,
                       method=self.method, progress=self.progress)
            X[idx], e_nuc[idx], eps_nu[idx] = res.mass_fraction, res.e_nuc, res.eps_nu
            success[idx], status[idx], nfev[idx] = res.success, res.status, res.nfev
        ye = X @ (self.network.Z / self.network.A)
        return StepResult(X.T, success, np.zeros(T.size, bool), status,
                          {"e_nuc": e_nuc, "eps_nu": eps_nu, "ye": ye, "nfev": nfev})
