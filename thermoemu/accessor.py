"""``ds.emu``: the emulator on any registered chemistry's state grid (numpy- or dask-backed, any cell dims).

The accessor is thin: it finds the chemistry of the grid (:func:`thermoemu.core.protocols.chemistry_of`),
which validates the grid, gives the stepper and applies it through the one bridge
(:func:`thermoemu.core.grid.apply_stepper`).

>>> import thermoemu
>>> new = ds.emu.step("1e10 s")                 # shipped default models, timescale-based update
>>> new = ds.emu.step(3e9, model="my-models", update="plain", out_of_domain="flag")
>>> final = ds.emu.evolve("1e12 s", dt="1e10 s")
>>> tau = ds.emu.timescales()                   # tau_eps [s] per cell and variable
>>> burned = nuc.emu.step(0.1)                  # nuclear grid (mass_fraction): the shipped mesa80 NNNs

Loaded models live in a process-wide registry (:func:`thermoemu.primordial.emulator.get_emulator`), not in
the accessor, which xarray rebuilds for every new Dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .core.grid import StateError, is_quantified
from .core.protocols import chemistry_of
from .units import to_units

__all__ = ["EmuAccessor"]


@xr.register_dataset_accessor("emu")
class EmuAccessor:
    """Emulator methods on a primordial state grid (:func:`thermoemu.primordial_state`) or a nuclear
    one (:func:`thermoemu.nuclear_state`; ``step`` and ``evolve`` only)."""

    def __init__(self, ds):
        self._ds = ds

    def step(self, dt, *, model="default", update=None, out_of_domain="reference", device="cpu",
             saha_table=None):
        """Advance every cell by ``dt`` at fixed n_H (primordial) or fixed T and rho (nuclear).

        Parameters
        ----------
        dt : number, str, pint.Quantity or xarray.DataArray
            Step [s by default]; may vary over cells; >= 0. Steps longer than the trained
            dt_max = 10^0.5 t_ff are split into equal substeps. Nuclear grids: each dt must be
            one the NNN set holds or an integer multiple of one (see
            :mod:`thermoemu.nuclear.emulator`); anything else raises ValueError.
        model : str or path
            ``"default"`` (shipped with the package: the physics-first primordial models, or the
            mesa80 NNNs for a nuclear grid), ``"os25-deeponet"`` (the shipped OS25-design
            DeepONet + DGM set) or a model folder.
        update : {"timescale", "plain", "shaped", "tangent"}, optional
            Default: the model set's own, ``"plain"`` for physics-first sets (their only rule:
            physics step plus residual net predicts x(dt)) and OS25 eq. 8 for DeepONet sets.
            For DeepONet sets: OS25 eq. 8 (``"timescale"``), the plain DeepONet prediction, (experimental) eq. 8 with its
            chord shaped by a second prediction at tau / 30 (it needs predictions accurate at
            tau / 30 and is worse than eq. 8 with the shipped nets), or the chord bent to the
            reference network's linearly implicit slope at the start; above 1e15 cm^-3 short steps
            (dt < tau) are the network's backward-Euler steps (the most accurate over many short
            steps; :mod:`thermoemu.primordial.update_rules`). Primordial
            grids only.
        out_of_domain : {"reference", "flag", "raise"}
            Cells outside the trained ranges are advanced by the reference solver (default),
            returned as NaN and flagged, or make the call raise.
        device : str
            torch device.
        saha_table : SahaTable or SahaTableSpec, optional
            Cells above 1e18 cm^-3 are set to Saha equilibrium at conserved total energy with
            this table (OS25 Appendix B; default: the 1000 x 1000 table, cached on first use).

        Returns
        -------
        xarray.Dataset
            The new state (units as given: pint-quantified in, quantified out) plus per cell
            ``success``, ``emu_out_of_domain`` and ``emu_status`` (CF flag_values / flag_meanings).
            Nuclear grids also get ``ye``, ``e_nuc`` [erg g^-1] and ``eps_nu`` [erg g^-1 s^-1], and
            ``mass_fraction`` on the set's isotopes. Lazy (dask) if the input is.
        """
        return chemistry_of(self._ds).step(self._ds, dt, model=model, update=update, out_of_domain=out_of_domain,
                                           device=device, saha_table=saha_table)

    def evolve(self, t_end, dt, **kwargs):
        """Take steps of ``dt`` (the last one shortened) until ``t_end``; keyword arguments as :meth:`step`.

        Returns the final state; ``success`` is True only where every step succeeded and
        ``emu_out_of_domain`` is True where any step was out of domain. On nuclear grids ``e_nuc``
        is summed over the steps and ``eps_nu`` is the last step's; the last step must be a dt the
        NNN set allows too.
        """
        t_end = float(to_units(t_end, "s", "t_end"))
        dt = float(to_units(dt, "s", "dt"))
        if not (np.isfinite(t_end) and t_end >= 0):
            raise StateError(f"t_end = {t_end:g} s is not allowed; t_end must be finite and >= 0 s")
        if not (np.isfinite(dt) and dt > 0):
            raise StateError(f"dt = {dt:g} s is not allowed; dt must be finite and > 0 s")
        chemistry = chemistry_of(self._ds)
        quantified = is_quantified(self._ds, chemistry.state_variables)
        state = chemistry.validate_state(self._ds)
        ok = ood = None
        sums = {}  # outputs that add up over steps (the chemistry's summed_outputs: e_nuc)
        t = 0.0
        n_steps = int(np.ceil(t_end / dt - 1e-12))
        for k in range(n_steps):
            h = min(dt, t_end - t)
            state = state.emu.step(h, **kwargs)
            ok = state["success"] if ok is None else ok & state["success"]
            ood = state["emu_out_of_domain"] if ood is None else ood | state["emu_out_of_domain"]
            for name in chemistry.summed_outputs:
                sums[name] = state[name] if name not in sums else (sums[name] + state[name]).assign_attrs(
                    sums[name].attrs)
            state = state.drop_vars(list(chemistry.summed_outputs))
            state = state.drop_vars(["success", "emu_out_of_domain", "emu_status"])
            t += h
        if ok is not None:
            state["success"] = ok
            state["emu_out_of_domain"] = ood
        for name, total in sums.items():
            state[name] = total.assign_attrs(long_name=total.attrs.get("long_name", name).replace("over the step",
                                                                                                 "over all steps"))
        state.attrs["emu_time_s"] = t
        return state.pint.quantify() if quantified else state

    def timescales(self, *, model="default", device="cpu"):
        """tau_eps [s] (eps of the models, 0.1) per cell and variable from the DGM nets, capped at dt_max.

        Returns
        -------
        xarray.DataArray
            Dims cell dims + ``variable`` (H, H2, e-, H+, H-, H2+, temperature); NaN out of domain.
        """
        return chemistry_of(self._ds).timescales(self._ds, model=model, device=device)
