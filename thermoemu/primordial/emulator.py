"""The emulator as a stepper: region routing, the timescale-based update, conservation, domain guard.

For each cell (n_H, x0 = abundances and T) and step dt:

1. **Routing**: the cell goes to the region of OS25 Table 1 that holds its n_H.
2. **Domain guard**: a cell is *out of domain* if no loaded region holds its n_H, or its
   temperature or an abundance lies outside the ranges the region was trained on (the observed
   range of the training inputs), with one exception: the trace species H- and H2+ below their
   trained floor are raised to that floor in the network's input (``clamped``); they relax to
   equilibrium in far less than any trained step, so their initial value does not matter.
   Out-of-domain cells are, by default, advanced by the reference solver (``"reference"``); the
   alternatives are ``"flag"`` (returned as NaN, flagged) and ``"raise"``.
3. **Update** (OS25 eq. 8, ``update="timescale"``): per variable x with timescale tau from the DGM
   net, capped at dt_max = 10^0.5 t_ff, ``x' = x0 + (dt / tau) (x_pred(tau) - x0)`` when dt < tau
   and ``x' = x_pred(dt)`` otherwise. ``update="plain"`` is ``x' = x_pred(dt)`` (OS25's simple
   DeepONet iteration). ``update="shaped"`` (ours, experimental) replaces eq. 8's straight chord
   by the exponential path through x0, x_pred(tau / 30) and x_pred(tau)
   (:mod:`thermoemu.primordial.update_rules`): one more DeepONet evaluation; with exact predictions far less
   lag where a variable decelerates or relaxes to a balance within tau, but it needs predictions
   accurate at tau / 30 (how it fares with the shipped nets: docs/emulator.md).
   ``update="tangent"`` (ours) bends the chord along the exponential path whose initial slope is
   the reference network's own linearly implicit rate at x0 (one right-hand side, Jacobian and
   7 x 7 solve per cell, no integration); for dt << tau that is the linearly implicit step
   itself, and the DeepONet's x(tau) bends and bounds it over longer steps. Above 1e15 cm^-3,
   where the linearization fails, variables with dt < tau take the network's backward-Euler step
   (Newton; the reference solver's step where Newton fails or the step changes a variable by more
   than eps). At short steps this rule is the network's implicit step more than an emulator
   (measured collapse errors of each rule: docs/emulator.md). A step longer than dt_max is split
   into equal substeps <= dt_max.
4. **Conservation**: abundances are projected onto hydrogen-nucleus and charge conservation after
   every update (OS25 section 2.3.1).
5. **High density**: cells with n_H > 1e18 cm^-3 go to the Saha-equilibrium table at conserved
   E_tot (OS25 Appendix B, :mod:`thermoemu.primordial.saha_table`; status 6), as OS25 do instead of an emulator.

Any non-finite emulator output is treated like an out-of-domain cell. Nothing comes back NaN
without ``success = False`` and a status code.
"""

from __future__ import annotations

import numpy as np

from ..core.emulator import (
    OUT_OF_DOMAIN_POLICIES,
    RANGE_SLACK,
    EmulatorBase,
    apply_fallback,
    cached_model,
    check_choice,
)
from ..core.protocols import StepResult
from ..solvers.rosenbrock import SolverSettings, integrate
from .models.artifact import load_model_set, resolve_model_dir
from .models.features import LOG_FLOOR, VARIABLES
from .physics.network import as_cells, default_network, free_fall_time, project_abundances
from .saha_table import SAHA_MIN_DENSITY, load_saha_table, table_reference
from .sampling import region_of
from .tensor_path import ARRAY_PATHS, host_round_trip_needed, step_on_host, wants_tensor_path
from .tensor_path import step_arrays as tensor_step_arrays
from .update_rules import SHAPE_PROBE, network_slope, update_fraction

__all__ = ["Emulator", "EMU_STATUS", "get_emulator", "UPDATES"]

UPDATES = ("timescale", "plain", "shaped", "tangent")
#: Status codes of ``emu_status`` (CF flag_values / flag_meanings).
EMU_STATUS = {
    0: "emulated",
    1: "emulated with trace abundances raised to the trained floor",
    2: "out of domain, advanced by the reference solver",
    3: "out of domain, not advanced (flag only)",
    4: "non-finite emulator output, advanced by the reference solver",
    5: "reference solver failed",
    6: "Saha equilibrium table (n_H > 1e18 cm^-3)",
}
TRACE = (4, 5)  # H-, H2+ in network order


def _clamp_trace(model, x):
    """Copy of ``x`` (7, N) with H- and H2+ raised to the region's trained floor: the nets' input (and, for
    physics-first sets, the physics step's start; the raised trace species relax within the step)."""
    out = x.copy()
    for i in TRACE:
        out[i] = np.maximum(out[i], model.ranges[VARIABLES[i]][0])
    return out


class Emulator(EmulatorBase):
    """A loaded model set used as a :class:`~thermoemu.core.protocols.Stepper`.

    Parameters
    ----------
    model : str or path
        ``"default"`` (shipped) or a model folder written by ``thermoemu train``.
    update : {"timescale", "plain", "shaped", "tangent"}, optional
        None (default): the model set's own rule, ``"plain"`` for physics-first models (a residual
        net over the physics step predicts x(dt) itself; they have no timescale nets and take no
        other rule) and OS25 eq. 8 (``"timescale"``) for DeepONet models. Otherwise: OS25 eq. 8, plain DeepONet iteration, the experimental shaped chord (needs
        predictions accurate at tau / 30; worse than eq. 8 with the shipped nets), or the chord
        bent to the network's linearly implicit slope, with backward-Euler steps of the network
        above 1e15 cm^-3 (most accurate at short steps).
    out_of_domain : {"reference", "flag", "raise"}
    device : str
        torch device (``"cpu"``, ``"cuda"``).
    network : PrimordialNetwork, optional
        The reference network (compatibility check and fallback).
    settings : SolverSettings, optional
        Reference-solver settings for the fallback.
    saha_table : SahaTable or SahaTableSpec, optional
        Table for cells above 1e18 cm^-3 (default: OS25's 1000 x 1000 table, cached on first use).
    """

    chemistry = "primordial"
    variables = VARIABLES
    status = EMU_STATUS
    _OPTIONS = {"update": UPDATES, "out_of_domain": OUT_OF_DOMAIN_POLICIES, "saha_table": None,
                "array_path": ARRAY_PATHS}
    #: "auto": torch / cupy input or nets on CUDA take the torch loop; "torch" / "numpy" force one (tensor_path.py).
    array_path = "auto"

    def __init__(self, model="default", *, update=None, out_of_domain="reference", device="cpu",
                 network=None, settings=None, saha_table=None):
        check_choice("out_of_domain", out_of_domain, OUT_OF_DOMAIN_POLICIES)
        self.network = network or default_network()
        self.model_dir = resolve_model_dir(model)
        self.regions = load_model_set(model, network=self.network, device=device)
        kinds = {m.residual for m in self.regions.values()}
        if len(kinds) > 1:
            raise ValueError(f"{self.model_dir} mixes physics-first (residual) and DeepONet regions; a model set "
                             "takes one update rule, so it must be one kind")
        self.update = self._checked_update(update or self.default_update)
        self.out_of_domain = out_of_domain
        self.settings = settings or SolverSettings()
        self.saha_table = table_reference(saha_table, cv_h2=self.network.options.cv_h2)

    @property
    def physics_first(self):
        """True if every loaded region is a physics-first model (residual net over the physics step)."""
        return all(m.residual for m in self.regions.values())

    @property
    def default_update(self):
        """The update rule of this model set: ``"plain"`` for physics-first models, else OS25 eq. 8."""
        return "plain" if self.physics_first else "timescale"

    def _checked_update(self, update):
        check_choice("update", update, UPDATES)
        if update != "plain" and any(m.residual for m in self.regions.values()):
            raise ValueError(f"update = {update!r}: the models in {self.model_dir} are physics-first (a residual net "
                             f"over the physics step, no timescale net); they take update='plain' only")
        return update

    def _set_options(self, saha_table=None, **options):
        if "update" in options:
            self._checked_update(options["update"])
        super()._set_options(**options)
        if saha_table is not None:
            self.saha_table = table_reference(saha_table, cv_h2=self.network.options.cv_h2)

    @property
    def label(self):
        return f"emulator ({self.update} update)"

    # -- guard ------------------------------------------------------------------------------
    def classify(self, n_H, x):
        """Region (-1 if none) and domain status per cell.

        Returns
        -------
        region : ndarray of int (N,)
        inside : ndarray of bool (N,)
        clamped : ndarray of bool (N,)
        """
        region = region_of(n_H)
        region = np.where(np.isin(region, list(self.regions)), region, -1)
        inside = region >= 0
        clamped = np.zeros(len(n_H), dtype=bool)
        for r, m in self.regions.items():
            sel = region == r
            if not sel.any():
                continue
            ok = np.ones(sel.sum(), dtype=bool)
            low = np.zeros(sel.sum(), dtype=bool)
            for i, v in enumerate(VARIABLES):
                lo, hi = m.ranges[v]
                val = x[i, sel]
                ok &= val <= hi * (1 + RANGE_SLACK)
                below = val < lo * (1 - RANGE_SLACK)
                if i in TRACE:
                    low |= below
                else:
                    ok &= ~below
            inside[sel] = ok
            clamped[sel] = ok & low
        return region, inside, clamped

    # -- the step ---------------------------------------------------------------------------
    def _emulate(self, m, n_H, x0, dt):
        """One update of cells of one region with dt <= dt_max. Returns (7, N)."""
        xin = _clamp_trace(m, x0)
        t_ff = free_fall_time(n_H)
        dt_max = m.dt_max_over_t_ff * t_ff
        if self.update == "plain":
            x_new = 10.0 ** m.predict_log(n_H, xin, dt).T
        else:
            tau = np.minimum(m.timescales(n_H, xin, t_ff), dt_max[:, None])  # (N, 7)
            t_eval = np.maximum(dt[:, None], tau)  # eq. 8: x_pred(tau) if dt < tau, else x_pred(dt)
            pred = 10.0 ** m.predict_log(n_H, xin, t_eval)  # (N, 7)
            # the path's shape is read from the network's own input (H-, H2+ maybe raised)
            frac = update_fraction(self.update, dt, tau, xin.T, pred, lambda rows: 10.0 ** m.predict_log(
                n_H[rows], xin[:, rows], tau[rows] / SHAPE_PROBE),
                lambda rows: network_slope(self.network, n_H[rows], xin[:, rows], dt[rows], m.eps,
                                            self.settings), eps=m.eps)
            x_new = (x0.T + frac * (pred - x0.T)).T  # frac = 1 (x_pred(dt)) where dt >= tau
        x_new[:6] = np.maximum(project_abundances(x_new[:6]), LOG_FLOOR)
        return x_new

    def step_arrays(self, cells, x, dt):
        """Advance cells by dt.

        Parameters
        ----------
        cells : mapping ``{"n_H": ndarray (N,)}`` or ndarray (N,)
            n_H [cm^-3]
        x : ndarray (7, N)
            Abundances (network order) and temperature [K].
        dt : ndarray (N,) or float
            [s], >= 0.

        Returns
        -------
        StepResult
            ``x`` (7, N), ``success``, ``out_of_domain`` (bool) and ``status`` (int8, see
            :data:`EMU_STATUS`) per cell. Torch tensors or cupy arrays in (or ``array_path``
            "torch", or the nets on CUDA): the same kind out, from :mod:`~thermoemu.primordial.tensor_path`
            for DeepONet sets; physics-first sets (the default) step on the host (numpy, numba) and
            copy torch / cupy arrays there and back.
        """
        if self.physics_first and getattr(self, "array_path", "auto") != "numpy" and host_round_trip_needed(cells, x, dt):
            return step_on_host(self, cells, x, dt)  # the physics step is numba: torch / cupy arrays via the host
        if wants_tensor_path(self, cells, x, dt):  # one hot loop for numpy, torch and cupy arrays
            return tensor_step_arrays(self, cells, x, dt)
        n_H = as_cells(cells)
        x = np.array(x, dtype=float).reshape(7, -1)
        dt = np.broadcast_to(np.asarray(dt, dtype=float), n_H.shape).copy()
        region, inside, clamped = self.classify(n_H, x)
        status = np.where(clamped, 1, 0).astype(np.int8)
        saha = n_H > SAHA_MIN_DENSITY
        ood = ~inside & ~saha
        self.raise_out_of_domain(ood, lambda k: (
            f"n_H = {n_H[k]:.4g} cm^-3, T = {x[6, k]:.4g} K, "
            f"abundances {dict(zip(VARIABLES[:6], np.round(x[:6, k], 12).tolist()))}"))
        out = x.copy()
        for r, m in self.regions.items():
            sel = np.flatnonzero(inside & (region == r))
            if sel.size == 0:
                continue
            dt_max = m.dt_max_over_t_ff * free_fall_time(n_H[sel])
            nsub = np.maximum(np.ceil(dt[sel] / dt_max - 1e-12), 1).astype(int)
            h = dt[sel] / nsub
            xs = out[:, sel]
            for k in range(int(nsub.max())):
                active = nsub > k
                if active.all():
                    xs = self._emulate(m, n_H[sel], xs, h)
                else:
                    xs[:, active] = self._emulate(m, n_H[sel][active], xs[:, active], h[active])
            out[:, sel] = xs
        success = np.ones(n_H.shape, dtype=bool)

        def reference(idx):
            res = integrate(self.network, x[:, idx], self.network.cell_parameters(n_H[idx]), dt[idx], self.settings)
            return res.x.T, res.success, ()

        apply_fallback(self.out_of_domain, out.T, success, status, ood, inside & ~np.isfinite(out).all(axis=0),
                       reference)
        if saha.any():
            idx = np.flatnonzero(saha & (dt > 0))
            spec, directory = self.saha_table
            out[:, idx], _ = load_saha_table(spec, directory=directory).step(n_H[idx], x[:, idx])
            status[saha] = 6
        return StepResult(out, success, ood, status)

    def timescales_arrays(self, cells, x):
        """tau_eps [s] per cell and variable (N, 7) from the DGM nets, capped at dt_max; NaN out of domain."""
        if any(m.timescale_net is None for m in self.regions.values()):
            raise ValueError(f"the models in {self.model_dir} have no timescale (DGM) nets (physics-first models "
                             "predict x(dt) directly); tau_eps comes from a DeepONet set, e.g. model='os25-deeponet'")
        n_H = as_cells(cells)
        x = np.asarray(x, dtype=float).reshape(7, -1)
        region, inside, _ = self.classify(n_H, x)
        tau = np.full((n_H.size, 7), np.nan)
        for r, m in self.regions.items():
            sel = np.flatnonzero(inside & (region == r))
            if sel.size:
                xin = _clamp_trace(m, x[:, sel])
                t_ff = free_fall_time(n_H[sel])
                tau[sel] = np.minimum(m.timescales(n_H[sel], xin, t_ff), (m.dt_max_over_t_ff * t_ff)[:, None])
        return tau, ~inside


def get_emulator(model="default", *, device="cpu"):
    """The process-wide loaded model set (loaded once per folder, manifest time and device)."""
    return cached_model(Emulator, resolve_model_dir(model), device=device)
