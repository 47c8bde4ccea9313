"""``ds.emu``: the emulator on any primordial or nuclear state grid (numpy- or dask-backed, any cell dims).

>>> import thermoemu
>>> new = ds.emu.step("1e10 s")                 # shipped default models, timescale-based update
>>> new = ds.emu.step(3e9, model="my-models", update="plain", out_of_domain="flag")
>>> final = ds.emu.evolve("1e12 s", dt="1e10 s")
>>> tau = ds.emu.timescales()                   # tau_eps [s] per cell and variable
>>> burned = nuc.emu.step(0.1)                  # nuclear grid (mass_fraction): the shipped mesa80 NNNs

Loaded models live in a process-wide registry (:func:`thermoemu.emulator.get_emulator`), not in
the accessor, which xarray rebuilds for every new Dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .emulator import EMU_STATUS, get_emulator
from .models.features import VARIABLES
from .networks.primordial.network import SPECIES
from .reference import state_to_arrays
from .saha_table import SAHA_MIN_DENSITY, load_saha_table
from .state import StateError, dt_dataarray, validate_state
from .units import ureg, to_units

__all__ = ["EmuAccessor"]


def _is_quantified(ds):
    return any(isinstance(ds[v].data, ureg.Quantity) for v in ("n_H", "temperature", "abundance") if v in ds)


def _step_kernel(n_H, temperature, abundance, dt, *, emulator):
    shape = np.shape(n_H)
    n, x = state_to_arrays(n_H, temperature, abundance)
    res = emulator.step_arrays(n, x, np.broadcast_to(np.asarray(dt, dtype=float), shape).ravel())
    return (res.x[6].reshape(shape), res.x[:6].T.reshape(shape + (6,)), res.success.reshape(shape),
            res.out_of_domain.reshape(shape), res.status.reshape(shape))


def _nuclear_step_kernel(temperature, density, mass_fraction, dt, *, emulator):
    # apply_ufunc aligns dims but leaves size-1 axes: broadcast here
    shape = np.broadcast_shapes(np.shape(temperature), np.shape(density), np.shape(mass_fraction)[:-1], np.shape(dt))
    n_iso = mass_fraction.shape[-1]
    res = emulator.step_arrays(np.broadcast_to(temperature, shape).ravel(), np.broadcast_to(density, shape).ravel(),
                               np.broadcast_to(mass_fraction, shape + (n_iso,)).reshape(-1, n_iso),
                               np.broadcast_to(np.asarray(dt, dtype=float), shape).ravel())
    ye = res.mass_fraction @ emulator.z_over_a
    return (res.mass_fraction.reshape(shape + (len(emulator.isotopes),)), res.e_nuc.reshape(shape),
            res.eps_nu.reshape(shape), ye.reshape(shape), res.success.reshape(shape),
            res.out_of_domain.reshape(shape), res.status.reshape(shape))


def _is_nuclear(ds):
    return "mass_fraction" in ds.data_vars


def _nuclear_step(ds, dt, *, model, out_of_domain, device):
    """:meth:`EmuAccessor.step` on a nuclear state grid (see :mod:`thermoemu.nuclear_emulator`)."""
    from .nuclear_emulator import NUCLEAR_EMU_STATUS, get_nuclear_emulator
    from .nuclear_state import validate_nuclear_state

    ds = validate_nuclear_state(ds)
    emulator = get_nuclear_emulator(model, device=device).with_options(out_of_domain=out_of_domain)
    unknown = sorted(set(ds["isotope"].values.tolist()) - set(emulator.isotopes))
    if unknown:
        raise StateError(f"mass_fraction has isotopes {unknown} that the NNN set {emulator.model_dir} "
                         f"({emulator.network_name}) does not hold")
    X = ds["mass_fraction"].reindex(isotope=list(emulator.isotopes), fill_value=0.0)
    if X.chunks is not None:
        X = X.chunk({"isotope": -1})
    dt_da = dt_dataarray(dt, ds["temperature"])
    for value in np.unique(np.asarray(dt_da.values)):  # refuse an unheld dt before any work
        if value > 0:
            emulator.plan(value)
    X_new, e_nuc, eps_nu, ye, ok, ood, status = xr.apply_ufunc(
        _nuclear_step_kernel, ds["temperature"], ds["density"], X, dt_da,
        input_core_dims=[[], [], ["isotope"], []], output_core_dims=[["isotope"], [], [], [], [], [], []],
        dask="parallelized", kwargs={"emulator": emulator},
        output_dtypes=[float, float, float, float, bool, bool, np.int8],
        dask_gufunc_kwargs={"output_sizes": {"isotope": len(emulator.isotopes)}})
    out = ds.drop_vars(["mass_fraction", "isotope"])
    cell_dims = [d for d in ds["mass_fraction"].dims if d != "isotope"]  # the user's order first
    dims = cell_dims + [d for d in X_new.dims if d not in cell_dims and d != "isotope"] + ["isotope"]
    out["mass_fraction"] = X_new.transpose(*dims).assign_coords(isotope=list(emulator.isotopes)).assign_attrs(
        units="1", long_name="mass fraction")
    out["ye"] = ye.assign_attrs(units="1", long_name="electron fraction at the end of the step")
    out["e_nuc"] = e_nuc.assign_attrs(units="erg g^-1", long_name="nuclear energy released over the step "
                                      "(mass change minus weak neutrino losses)")
    out["eps_nu"] = eps_nu.assign_attrs(units="erg g^-1 s^-1", long_name="weak-neutrino loss rate at the end")
    out["success"] = ok.assign_attrs(long_name="step succeeded (False: flagged, values NaN)")
    out["emu_out_of_domain"] = ood.assign_attrs(long_name="cell outside the NNNs' trained domain")
    codes = sorted(NUCLEAR_EMU_STATUS)
    out["emu_status"] = status.assign_attrs(
        long_name="emulator status", flag_values=np.array(codes, np.int8),
        flag_meanings=" ".join(NUCLEAR_EMU_STATUS[c].replace(" ", "_").replace(",", "") for c in codes))
    out.attrs.update(emulator=str(emulator.model_dir), network=emulator.network_name,
                     emu_out_of_domain_policy=out_of_domain)
    return out


def _timescale_kernel(n_H, temperature, abundance, *, emulator):
    shape = np.shape(n_H)
    n, x = state_to_arrays(n_H, temperature, abundance)
    tau, _ = emulator.timescales_arrays(n, x)
    return tau.reshape(shape + (7,))


@xr.register_dataset_accessor("emu")
class EmuAccessor:
    """Emulator methods on a primordial state grid (:func:`thermoemu.primordial_state`) or a nuclear
    one (:func:`thermoemu.nuclear_state`; ``step`` and ``evolve`` only)."""

    def __init__(self, ds):
        self._ds = ds

    def _emulator(self, model, update, out_of_domain, device, saha_table=None):
        return get_emulator(model, device=device).with_options(update=update, out_of_domain=out_of_domain,
                                                                saha_table=saha_table)

    def step(self, dt, *, model="default", update=None, out_of_domain="reference", device="cpu",
             saha_table=None):
        """Advance every cell by ``dt`` at fixed n_H (primordial) or fixed T and rho (nuclear).

        Parameters
        ----------
        dt : number, str, pint.Quantity or xarray.DataArray
            Step [s by default]; may vary over cells; >= 0. Steps longer than the trained
            dt_max = 10^0.5 t_ff are split into equal substeps. Nuclear grids: each dt must be
            one the NNN set holds or an integer multiple of one (see
            :mod:`thermoemu.nuclear_emulator`); anything else raises ValueError.
        model : str or path
            ``"default"`` (shipped with the package: the primordial regions, or the mesa80 NNNs
            for a nuclear grid) or a model folder.
        update : {"timescale", "plain", "shaped", "tangent"}
            OS25 eq. 8 (default), the plain DeepONet prediction, (experimental) eq. 8 with its
            chord shaped by a second prediction at tau / 30 (it needs predictions accurate at
            tau / 30 and is worse than eq. 8 with the shipped nets), or the chord bent to the
            reference network's linearly implicit slope at the start; above 1e15 cm^-3 short steps
            (dt < tau) are the network's backward-Euler steps (the most accurate over many short
            steps; :mod:`thermoemu.update_rules`). Primordial
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
        if _is_nuclear(self._ds):
            if update is not None or saha_table is not None:
                raise ValueError("update= and saha_table= apply to primordial grids only; this is a nuclear grid "
                                 "(it has mass_fraction)")
            return _nuclear_step(self._ds, dt, model=model, out_of_domain=out_of_domain, device=device)
        update = update or "timescale"
        quantified = _is_quantified(self._ds)
        ds = validate_state(self._ds)
        if ds["abundance"].chunks is not None:
            ds = ds.chunk({"species": -1})
        dt_da = dt_dataarray(dt, ds["n_H"])
        emulator = self._emulator(model, update, out_of_domain, device, saha_table)
        if bool((ds["n_H"] > SAHA_MIN_DENSITY).any()):  # build or read the table here, not in every worker
            load_saha_table(emulator.saha_table[0], directory=emulator.saha_table[1])
        T, y, ok, ood, status = xr.apply_ufunc(
            _step_kernel, ds["n_H"], ds["temperature"], ds["abundance"], dt_da,
            input_core_dims=[[], [], ["species"], []], output_core_dims=[[], ["species"], [], [], []],
            dask="parallelized", kwargs={"emulator": emulator},
            output_dtypes=[float, float, bool, bool, np.int8],
            dask_gufunc_kwargs={"output_sizes": {"species": len(SPECIES)}})
        out = ds.copy()
        out["temperature"] = T.assign_attrs(ds["temperature"].attrs)
        out["abundance"] = y.transpose(*ds["abundance"].dims).assign_attrs(ds["abundance"].attrs)
        out["success"] = ok.assign_attrs(long_name="step succeeded (False: flagged, values NaN)")
        out["emu_out_of_domain"] = ood.assign_attrs(long_name="cell outside the emulator's trained domain")
        codes = sorted(EMU_STATUS)
        out["emu_status"] = status.assign_attrs(
            long_name="emulator status", flag_values=np.array(codes, np.int8),
            flag_meanings=" ".join(EMU_STATUS[c].replace(" ", "_").replace(",", "") for c in codes))
        out.attrs.update(emulator=str(emulator.model_dir), emu_update=update, emu_out_of_domain_policy=out_of_domain)
        return out.pint.quantify() if quantified else out

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
        nuclear = _is_nuclear(self._ds)
        quantified = not nuclear and _is_quantified(self._ds)
        state = self._ds if nuclear else validate_state(self._ds)
        ok = ood = e_nuc = None
        t = 0.0
        n_steps = int(np.ceil(t_end / dt - 1e-12))
        for k in range(n_steps):
            h = min(dt, t_end - t)
            state = state.emu.step(h, **kwargs)
            ok = state["success"] if ok is None else ok & state["success"]
            ood = state["emu_out_of_domain"] if ood is None else ood | state["emu_out_of_domain"]
            if nuclear:
                e_nuc = state["e_nuc"] if e_nuc is None else (e_nuc + state["e_nuc"]).assign_attrs(e_nuc.attrs)
                state = state.drop_vars(["e_nuc"])
            state = state.drop_vars(["success", "emu_out_of_domain", "emu_status"])
            t += h
        if ok is not None:
            state["success"] = ok
            state["emu_out_of_domain"] = ood
        if e_nuc is not None:
            state["e_nuc"] = e_nuc.assign_attrs(long_name="nuclear energy released over all steps "
                                                "(mass change minus weak neutrino losses)")
        state.attrs["emu_time_s"] = t
        return state.pint.quantify() if quantified else state

    def timescales(self, *, model="default", device="cpu"):
        """tau_eps [s] (eps of the models, 0.1) per cell and variable from the DGM nets, capped at dt_max.

        Returns
        -------
        xarray.DataArray
            Dims cell dims + ``variable`` (H, H2, e-, H+, H-, H2+, temperature); NaN out of domain.
        """
        if _is_nuclear(self._ds):
            raise ValueError("timescales() is for primordial grids; the NNNs of a nuclear grid have no timescale net")
        ds = validate_state(self._ds)
        if ds["abundance"].chunks is not None:
            ds = ds.chunk({"species": -1})
        emulator = get_emulator(model, device=device)
        tau = xr.apply_ufunc(
            _timescale_kernel, ds["n_H"], ds["temperature"], ds["abundance"],
            input_core_dims=[[], [], ["species"]], output_core_dims=[["variable"]],
            dask="parallelized", kwargs={"emulator": emulator}, output_dtypes=[float],
            dask_gufunc_kwargs={"output_sizes": {"variable": 7}})
        return tau.assign_coords(variable=list(VARIABLES)).rename("tau_eps").assign_attrs(
            units="s", long_name=f"time for a relative change eps = {next(iter(emulator.regions.values())).eps:g}")
