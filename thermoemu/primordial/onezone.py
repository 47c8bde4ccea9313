"""One-zone free-fall collapse of a primordial cloud (Ono & Sugimura 2025, section 2.1).

``dn_H/dt = n_H / t_ff`` with ``t_ff = sqrt(3 pi / (32 G rho))``. Each outer step of length
``dt = step_fraction * t_ff(n_H)``: (i) integrate eqs. (1)-(2) at fixed n_H over dt with the
reference solver, (ii) add compressional heating ``Gamma_comp = (sum y + y_He) k_B T dn_H/dt`` as
``dT = Gamma_comp dt / (n_H c_v)``, with ``dn_H/dt dt / n_H`` taken as the step's exact
``ln(n_H(t + dt)/n_H(t))``, (iii) advance n_H with the closed form
``n^-1/2(t + dt) = n^-1/2(t) - dt / (2 n^1/2 t_ff)``.

Above n_H = 1e18 cm^-3 (OS25 Appendix B) the gas is in Saha equilibrium and adiabatic: the
state follows from (n_H, E_tot) and compression adds ``dE_tot = (sum y + y_He) k_B T d ln n_H``
per H nucleus. ``high_density="table"`` (default) does this per outer step with the table
(:mod:`thermoemu.primordial.saha_table`): E_tot += (sum y + y_He) k_B T d ln n_H (trapezoidal in ln n_H, with
a table predictor), then (T, y) from the table at the new n_H. ``"saha"`` is the ground truth: the energy equation integrated in ln n_H with
scipy (rtol 1e-10) and direct Saha solves at every evaluation. ``"network"`` keeps integrating
the non-equilibrium network (not meant for n_H > 1e18). The switch happens at exactly 1e18.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import xarray as xr

from ..constants import K_BOLTZMANN, Y_HE
from ..core.protocols import StepResult
from ..solvers.rosenbrock import STATUS, SolverSettings, integrate
from .physics.network import SPECIES, TEMP, VARIABLES, as_cells, default_network, free_fall_time, project_abundances
from .physics.saha import saha_state, total_energy
from .reference import ReferenceStepper
from .saha_table import SAHA_MAX_DENSITY, SAHA_MIN_DENSITY, SahaTableSpec, load_saha_table
from .update_rules import SHAPE_PROBE, network_slope, update_fraction

__all__ = ["collapse", "initial_collapse_state", "reference_stepper", "emulator_stepper",
           "timescale_update_reference_stepper", "HIGH_DENSITY_METHODS"]

#: How the collapse proceeds above 1e18 cm^-3 (see the module docstring).
HIGH_DENSITY_METHODS = ("table", "saha", "network")
#: Regime codes of the trajectory's ``regime`` variable.
REGIMES = {0: "non-equilibrium network (or emulator)", 1: "Saha table", 2: "direct Saha solve (ground truth)",
           3: "Saha table, point outside the table solved directly"}

#: Initial state of Ono & Sugimura (2025), from Sugimura et al. (2014), z = 16.
OS25_INITIAL = {"n_H": 4.5e-3, "temperature": 21.0, "y_e": 3.7e-4, "y_H2": 2e-6}
#: Abundance given to H- and H2+ initially ("tiny positive", PM section 6).
TRACE_ABUNDANCE = 1e-20


def initial_collapse_state(temperature=21.0, y_e=3.7e-4, y_H2=2e-6):
    """Abundances and temperature ``x`` (7,) of the collapse's initial state.

    y(H+) = y(e-), y(H-) = y(H2+) = 1e-20, y(H) from hydrogen conservation.
    """
    y = np.array([0.0, y_H2, y_e, y_e, TRACE_ABUNDANCE, TRACE_ABUNDANCE])
    y[0] = 1.0 - 2 * y[1] - y[3] - y[4] - 2 * y[5]
    y = project_abundances(y[:, None])[:, 0]
    return np.concatenate([y, [temperature]])


def reference_stepper(network, settings):
    """The reference solver as a Stepper (no Saha table: the collapse handles n_H > 1e18 itself)."""
    return ReferenceStepper(network, settings)


def emulator_stepper(emulator):
    """An :class:`thermoemu.Emulator` is a Stepper itself (``substeps`` records its status code per step)."""
    return emulator


def reference_at_own_times(network, settings, n, x, t):
    """Variable i of the reference state after its own time ``t[i]``, for all cells in one batch.

    ``n`` (N,) [cm^-3], ``x`` (7, N), ``t`` (7, N) [s]. Returns ``(x_t (7, N), success (N,))``; copy j
    of the cells runs to variable j's time.
    """
    nvar, ncell = x.shape
    at = integrate(network, np.tile(x, nvar), network.cell_parameters(np.tile(n, nvar)),
                   np.asarray(t, dtype=float).ravel(), settings)
    return (at.x.reshape(nvar, nvar, ncell)[np.arange(nvar), np.arange(nvar)],
            at.success.reshape(nvar, ncell).all(axis=0))


def timescale_update_reference_stepper(network, settings, *, eps=0.1, dt_max_over_t_ff=10 ** 0.5,
                                       update="timescale"):
    """Stepper of OS25's timescale-based update (their eq. 8) with exact ingredients.

    The same rule as :class:`thermoemu.Emulator` with ``update="timescale"``, but tau_eps and the
    state x(tau) come from the reference solver instead of the DGM and DeepONet nets: a perfect
    emulator. The deviation of a collapse run with it from the reference collapse is the error of
    the update rule itself (the chord over tau_eps stands for the tangent), a floor no trained
    model can go below.

    Parameters
    ----------
    network : PrimordialNetwork
    settings : SolverSettings
    eps : float
        Relative change that defines tau_eps (OS25: 0.1).
    dt_max_over_t_ff : float
        Cap of tau_eps in units of t_ff (OS25: 10^0.5).
    update : {"timescale", "shaped", "tangent"}
        The rule: eq. 8's chord, the chord shaped by a second point x(tau / q)
        (:func:`thermoemu.primordial.update_rules.shaped_fraction`), or by the network's linearly implicit
        slope at x0 (:func:`thermoemu.primordial.update_rules.tangent_fraction`; backward-Euler steps above
        1e15 cm^-3), as the emulator's ``update=``.
    """
    if update not in ("timescale", "shaped", "tangent"):
        raise ValueError(f"update = {update!r}; allowed: 'timescale', 'shaped', 'tangent'")
    if not 0 < eps < 1:
        raise ValueError(f"eps = {eps!r}; must be in (0, 1)")
    if not dt_max_over_t_ff > 0:
        raise ValueError(f"dt_max_over_t_ff = {dt_max_over_t_ff!r}; must be > 0")

    return TimescaleUpdateReferenceStepper(network, settings, eps=eps, dt_max_over_t_ff=dt_max_over_t_ff,
                                           update=update)


class TimescaleUpdateReferenceStepper:
    """OS25 eq. 8 (or the shaped / tangent rule) with tau_eps and x(tau) from the reference solver, as a
    :class:`~thermoemu.core.protocols.Stepper` (see :func:`timescale_update_reference_stepper`)."""

    chemistry = "primordial"
    variables = VARIABLES
    status = STATUS

    def __init__(self, network, settings, *, eps=0.1, dt_max_over_t_ff=10 ** 0.5, update="timescale"):
        self.network, self.settings = network, settings
        self.eps, self.dt_max_over_t_ff, self.update = eps, dt_max_over_t_ff, update
        self.label = f"{update} update with the reference solver (eps = {eps:g})"

    def step_arrays(self, cells, x, dt):
        network, settings, eps, update = self.network, self.settings, self.eps, self.update
        n = as_cells(cells)
        dt = np.broadcast_to(np.asarray(dt, dtype=float), n.shape)
        dt_max = self.dt_max_over_t_ff * free_fall_time(n)
        res = integrate(network, x, network.cell_parameters(n), dt, settings, timescale_eps=eps,
                        timescale_horizon=dt_max)
        tau = np.minimum(res.tau, dt_max[None])                     # (7, N)
        t_eval = np.maximum(dt[None], tau)                          # eq. 8: x(tau) if dt < tau, else x(dt)
        pred, pred_ok = reference_at_own_times(network, settings, n, x, t_eval)
        pred_ok = pred_ok.copy()

        def probe_at(cols):
            probe, probe_ok = reference_at_own_times(network, settings, n[cols], x[:, cols], tau[:, cols] / SHAPE_PROBE)
            pred_ok[cols] &= probe_ok
            return probe.T

        frac = update_fraction(update, dt, tau.T, x.T, pred.T, probe_at,
                               lambda cols: network_slope(network, n[cols], x[:, cols], dt[cols], eps, settings), eps=eps).T
        x_new = x + frac * (pred - x)
        x_new[:6] = np.maximum(project_abundances(x_new[:6]), 1e-40)
        ok = res.success & pred_ok
        return StepResult(x_new, ok, np.zeros(n.shape, dtype=bool), res.status, {"substeps": res.substeps})


def _pressure_energy(x):
    """(sum y + y_He) k_B T [erg per H nucleus]: compression work per unit d ln n_H."""
    return (x[:6].sum(axis=0) + Y_HE) * K_BOLTZMANN * x[TEMP]


def collapse(*, step_fraction=1e-2, n_start=OS25_INITIAL["n_H"], n_end=1e22,
             temperature=OS25_INITIAL["temperature"], y_e=OS25_INITIAL["y_e"],
             y_H2=OS25_INITIAL["y_H2"], network=None, settings=None, progress=False,
             record_every=1, stepper=None, high_density="table", saha_table=None):
    """Run the one-zone free-fall collapse with the reference network.

    Parameters
    ----------
    step_fraction : float
        Outer step as a fraction of the current free-fall time (OS25 test 1e-1 .. 1e-4).
    n_start, n_end : float
        Initial and final n_H [cm^-3].
    temperature : float
        Initial temperature [K].
    y_e, y_H2 : float
        Initial electron (= H+) and H2 abundances.
    network : PrimordialNetwork, optional
    settings : SolverSettings, optional
    progress : bool
        Print progress (log n_H reached) to stderr.
    record_every : int
        Keep every k-th step in the trajectory (the last is always kept).
    stepper : Stepper, optional
        What advances the chemistry at fixed n_H: any :class:`~thermoemu.core.protocols.Stepper`, e.g. the
        reference solver (:class:`~thermoemu.primordial.reference.ReferenceStepper`, the default), an
        :class:`thermoemu.Emulator`, or :func:`timescale_update_reference_stepper`. ``substeps`` records
        the stepper's ``extra["substeps"]``, or its status code per step where it has none (emulators).
    high_density : {"table", "saha", "network"}
        How to go on above 1e18 cm^-3 (module docstring).
    saha_table : SahaTable, optional
        The table for ``high_density="table"`` (default: :func:`load_saha_table` with the
        network's ``cv_h2``, built and cached on first use).

    Returns
    -------
    xarray.Dataset
        Dim ``step``: ``n_H`` [cm^-3], ``temperature`` [K], ``abundance`` (step, species),
        ``time`` [s], cooling and heating rates by process [erg cm^-3 s^-1] (``cooling``, dims
        step x process), ``compressional_heating`` [erg cm^-3 s^-1], ``continuum_tau``,
        ``substeps`` of the solver per outer step, ``total_energy`` E_tot [erg per H nucleus] and
        ``regime`` (0 network, 1 Saha table, 2 direct Saha, 3 table point solved directly). The
        attribute ``saha_switch_dT_K`` is T(Saha, same E_tot) - T(network) at 1e18 cm^-3. In the
        Saha regime the gas is adiabatic: cooling and chemical heating are NaN there.
    """
    if not 0 < step_fraction <= 1:
        raise ValueError(f"step_fraction = {step_fraction!r} must be in (0, 1]")
    if not 0 < n_start < n_end:
        raise ValueError(f"need 0 < n_start < n_end, got n_start={n_start!r}, n_end={n_end!r}")
    if not 1.0 <= temperature <= 1e6:
        raise ValueError(f"temperature = {temperature!r} K is outside the allowed range [1, 1e6] K")
    if not (0 <= y_e and 0 <= y_H2 and 2 * y_H2 + y_e < 1):
        raise ValueError(f"need y_e >= 0, y_H2 >= 0 and 2 y_H2 + y_e < 1 (so that y(H) > 0); "
                         f"got y_e={y_e!r}, y_H2={y_H2!r}")
    if int(record_every) < 1:
        raise ValueError(f"record_every = {record_every!r} must be a positive integer")
    if high_density not in HIGH_DENSITY_METHODS:
        raise ValueError(f"high_density = {high_density!r}; choose one of {HIGH_DENSITY_METHODS}")
    if n_end > SAHA_MAX_DENSITY and high_density != "network":
        raise ValueError(f"n_end = {n_end!r} cm^-3 is above the Saha table's {SAHA_MAX_DENSITY:g} cm^-3")
    network = network or default_network()
    settings = settings or SolverSettings()
    stepper = stepper or reference_stepper(network, settings)
    if not hasattr(stepper, "step_arrays"):
        stepper = _CallableStepper(stepper)
    x = initial_collapse_state(temperature, y_e, y_H2)[:, None]
    n = np.array([float(n_start)])
    t = 0.0
    rows = []

    def record(substeps, regime=0):
        cell = network.cell_parameters(n)
        hc = network.heating_cooling(x, cell)
        if regime:  # adiabatic in Saha equilibrium (OS25 App. B): no radiative or chemical terms act
            hc = {k: (v if k in ("heat_capacity", "continuum_tau") else np.full_like(v, np.nan)) for k, v in hc.items()}
        tff = free_fall_time(n)
        gamma_comp = _pressure_energy(x) * n / tff
        E = float(total_energy(x[TEMP], x[:6], network.options.cv_h2)[0])
        rows.append((n[0], x[TEMP, 0], x[:6, 0].copy(), t, hc, float(gamma_comp[0]), substeps, E, regime))

    record(0)
    step = 0
    last_logn = -np.inf
    # the network runs up to n_switch; above it the Saha branch (unless high_density="network")
    n_switch = n_end if high_density == "network" else min(n_end, SAHA_MIN_DENSITY)
    regime, E_tot, adiabat = 0, None, None
    while n[0] < n_end:
        tff = free_fall_time(n)
        dt = step_fraction * tff
        # do not overshoot the switch or n_end: the closed form gives the time to reach it
        n_stop = n_switch if n[0] < n_switch else n_end
        dt_end = 2.0 * np.sqrt(n) * tff * (n ** -0.5 - n_stop ** -0.5)
        dt = np.minimum(dt, dt_end)
        n_new = (n ** -0.5 - dt / (2.0 * np.sqrt(n) * tff)) ** -2.0
        if dt[0] >= dt_end[0]:
            n_new = np.array([float(n_stop)])
        if n[0] < n_switch:
            cell = network.cell_parameters(n)
            res = stepper.step_arrays({"n_H": n}, x, dt)
            if not res.success[0]:
                raise RuntimeError(f"{getattr(stepper, 'label', 'stepper')} failed at n_H = {n[0]:.3g} cm^-3: "
                                   f"{getattr(stepper, 'status', {}).get(int(res.status[0]), int(res.status[0]))}")
            x = np.array(res.x, dtype=float)
            work = res.extra.get("substeps", res.status)
            # (iii) density, closed form; (ii) compressional heating Gamma_comp dt / (n_H c_v) with
            # the updated state, using the exact d ln n_H of the step for n_H' dt / n_H
            hc = network.heating_cooling(x, cell)
            x[TEMP] += _pressure_energy(x) * np.log(n_new / n) / hc["heat_capacity"]
            work = int(work[0])
        else:
            if E_tot is None:  # the switch: same E_tot, Saha equilibrium
                E_tot = total_energy(x[TEMP], x[:6], network.options.cv_h2)
                T_network = float(x[TEMP, 0])
                if high_density == "table":
                    table = saha_table or load_saha_table(SahaTableSpec(cv_h2=network.options.cv_h2), progress=progress)
                    T_eq, _, _ = table.state(n, E_tot)
                else:
                    T_eq, _ = saha_state(n, E_tot, cv_h2=network.options.cv_h2)
                switch_dT = float(T_eq[0]) - T_network
            if high_density == "table":
                # compression adds (sum y + y_He) k_B T d ln n_H to E_tot (trapezoidal rule, Heun
                # predictor); equilibrium at the new n_H from the table
                dln = np.log(n_new / n)
                T_p, y_p, _ = table.state(n_new, E_tot + _pressure_energy(x) * dln)
                E_tot = E_tot + 0.5 * (_pressure_energy(x) + _pressure_energy(np.concatenate([y_p, T_p[None]]))) * dln
                T_new, y_new, inside = table.state(n_new, E_tot)
                regime = 1 if inside[0] else 3
            else:
                if adiabat is None:
                    adiabat = _SahaAdiabat(float(n[0]), float(E_tot[0]), float(n_end), network.options.cv_h2)
                E_tot = adiabat.energy(n_new)
                T_new, y_new = saha_state(n_new, E_tot, cv_h2=network.options.cv_h2)
                regime = 2
            x = np.concatenate([y_new, T_new[None]])
            work = 0
        n = n_new
        t += float(dt[0])
        step += 1
        if step % record_every == 0 or n[0] >= n_end:
            record(work, regime)
        if progress and np.log10(n[0]) >= last_logn + 1:
            last_logn = np.floor(np.log10(n[0]))
            sys.stderr.write(f"\rcollapse: log10 n_H = {np.log10(n[0]):5.2f} / {np.log10(n_end):.2f}, "
                             f"T = {x[TEMP, 0]:8.1f} K")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    ds = _trajectory_dataset(rows, network, step_fraction, settings)
    ds.attrs["stepper"] = getattr(stepper, "label", "custom")
    ds.attrs["high_density"] = high_density
    if E_tot is not None:
        ds.attrs["saha_switch_dT_K"] = switch_dT
    return ds


class _CallableStepper:
    """A plain function ``f(n_H, x, dt) -> (x, success, work, reasons)`` (the stepper form before
    :class:`~thermoemu.core.protocols.Stepper`) as a Stepper; ``work`` is recorded as ``substeps``."""

    chemistry, variables = "primordial", VARIABLES

    def __init__(self, func):
        warnings.warn("collapse(stepper=f) with a plain function f(n_H, x, dt) -> 4-tuple is deprecated; pass a "
                      "Stepper (an object with step_arrays(cells, x, dt) -> StepResult)", DeprecationWarning,
                      stacklevel=3)
        self.func, self.label = func, getattr(func, "label", "custom")
        self.status = {}

    def step_arrays(self, cells, x, dt):
        x_new, ok, work, reasons = self.func(as_cells(cells), x, dt)
        ok = np.asarray(ok, dtype=bool)
        self.status = {1: str(reasons[0])} if not ok.all() else {}
        return StepResult(np.asarray(x_new, dtype=float), ok, np.zeros(ok.shape, bool),
                          np.where(ok, 0, 1).astype(np.int8), {"substeps": np.asarray(work)})


class _SahaAdiabat:
    """Ground truth above 1e18: ``dE_tot / d ln n_H = (sum y + y_He) k_B T`` with direct Saha solves.

    Integrated from the switch point (n_start, E_start) to n_end with scipy's DOP853 (rtol 1e-10);
    :meth:`energy` gives E_tot(n_H) [erg per H nucleus] by dense output.
    """

    def __init__(self, n_start, E_start, n_end, cv_h2):
        from scipy.integrate import solve_ivp

        from .physics.saha import saha_state

        def rhs(ln_n, E):
            T, y = saha_state(np.exp(ln_n), E, cv_h2=cv_h2)
            return _pressure_energy(np.concatenate([y, T[None]]))

        self.sol = solve_ivp(rhs, (np.log(n_start), np.log(n_end)), [E_start], method="DOP853",
                             rtol=1e-10, atol=0.0, dense_output=True)
        if not self.sol.success:
            raise RuntimeError(f"Saha adiabat integration failed: {self.sol.message}")

    def energy(self, n):
        return self.sol.sol(np.log(np.asarray(n, dtype=float)))[0].reshape(np.shape(n))


def _trajectory_dataset(rows, network, step_fraction, settings):
    processes = [k for k in rows[0][4] if k not in ("chemical_heating", "continuum_tau", "heat_capacity")]
    n_H = np.array([r[0] for r in rows])
    ds = xr.Dataset(
        {
            "n_H": ("step", n_H, {"units": "cm^-3", "long_name": "number density of hydrogen nuclei"}),
            "temperature": ("step", np.array([r[1] for r in rows]), {"units": "K", "long_name": "gas temperature"}),
            "abundance": (("step", "species"), np.array([r[2] for r in rows]),
                          {"units": "1", "long_name": "abundance n(i)/n_H"}),
            "time": ("step", np.array([r[3] for r in rows]), {"units": "s", "long_name": "time since start"}),
            "cooling": (("step", "process"), np.array([[float(r[4][p][0]) for p in processes] for r in rows]),
                        {"units": "erg cm^-3 s^-1", "long_name": "radiative cooling rate"}),
            "chemical_heating": ("step", np.array([float(r[4]["chemical_heating"][0]) for r in rows]),
                                 {"units": "erg cm^-3 s^-1", "long_name": "net chemical heating rate"}),
            "compressional_heating": ("step", np.array([r[5] for r in rows]),
                                      {"units": "erg cm^-3 s^-1", "long_name": "compressional heating rate"}),
            "continuum_tau": ("step", np.array([float(r[4]["continuum_tau"][0]) for r in rows]),
                              {"units": "1", "long_name": "continuum optical depth over a Jeans length"}),
            "substeps": ("step", np.array([r[6] for r in rows]), {"long_name": "solver substeps in the outer step"}),
            "total_energy": ("step", np.array([r[7] for r in rows]),
                             {"units": "erg", "long_name": "total energy U + E_chem per H nucleus (OS25 eq. B1)"}),
            "regime": ("step", np.array([r[8] for r in rows], dtype=np.int8),
                       {"long_name": "how the step was advanced", "flag_values": np.arange(4, dtype=np.int8),
                        "flag_meanings": "network saha_table saha_direct saha_table_outside_solved_directly"}),
        },
        coords={"step": np.arange(len(rows)), "species": list(SPECIES), "process": processes},
        attrs={"title": "one-zone free-fall collapse (Ono & Sugimura 2025, section 2.1)",
               "network": network.name, "rate_set_version": network.rate_set_version,
               "network_options": str(network.options.as_dict()), "step_fraction_of_t_ff": step_fraction,
               "solver_settings": str(settings.as_dict())},
    )
    return ds
