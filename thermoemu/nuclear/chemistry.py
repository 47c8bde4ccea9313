"""The nuclear wing as a :class:`~thermoemu.core.protocols.Chemistry`: mass fractions of a pynucastro
network at constant T and rho (Grichener et al. 2025), registered under ``"nuclear"``.

A grid is nuclear when it holds ``mass_fraction`` (dim ``isotope``), ``temperature`` and ``density``.
"""

from __future__ import annotations

import numpy as np

from ..core.grid import StateError, apply_stepper, dt_dataarray, flag_attrs, is_quantified
from ..core.protocols import CatalogChemistry, register_chemistry
from . import catalog
from .emulator import get_nuclear_emulator
from .state import validate_nuclear_state

__all__ = ["NuclearChemistry", "CHEMISTRY"]

_STATE = ("temperature", "density", "mass_fraction")


class NuclearChemistry(CatalogChemistry):
    """Nuclear burning: grids of :func:`thermoemu.nuclear_state`, the shipped mesa80 NNNs, the pynucastro
    burner and the nuclear catalogs."""

    catalog_module = catalog
    kind = "nuclear"
    state_variables = _STATE
    #: Per-step outputs that ``ds.emu.evolve`` sums over its steps.
    summed_outputs = ("e_nuc",)

    def owns(self, ds):
        return "mass_fraction" in ds.data_vars

    def validate_state(self, ds, **options):
        return validate_nuclear_state(ds, **options)

    def stepper(self, model="default", *, out_of_domain="reference", device="cpu", **options):
        """The NNN set of ``model`` (:class:`thermoemu.NuclearEmulator`) with this out-of-domain policy."""
        _refuse_primordial_options(options)
        return get_nuclear_emulator(model, device=device).with_options(out_of_domain=out_of_domain)

    def reference(self, network="mesa80", **options):
        """The pynucastro burner (:class:`~thermoemu.nuclear.burner.BurnerStepper`)."""
        from .burner import BurnerStepper
        return BurnerStepper(network, **options)

    def step(self, ds, dt, *, model="default", out_of_domain="reference", device="cpu", **options):
        """``ds.emu.step`` on a nuclear grid: the NNN step at constant T and rho."""
        _refuse_primordial_options(options)
        quantified = is_quantified(ds, _STATE)
        ds = validate_nuclear_state(ds)
        emulator = self.stepper(model, out_of_domain=out_of_domain, device=device)
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
        X_new, ok, ood, status, extra = apply_stepper(
            emulator, {"temperature": ds["temperature"], "density": ds["density"]}, X, dt_da, vector_dim="isotope",
            extra={"e_nuc": float, "eps_nu": float, "ye": float})
        out = ds.drop_vars(["mass_fraction", "isotope"])
        cell_dims = [d for d in ds["mass_fraction"].dims if d != "isotope"]  # the user's order first
        dims = cell_dims + [d for d in X_new.dims if d not in cell_dims and d != "isotope"] + ["isotope"]
        out["mass_fraction"] = X_new.transpose(*dims).assign_coords(isotope=list(emulator.isotopes)).assign_attrs(
            units="1", long_name="mass fraction")
        out["ye"] = extra["ye"].assign_attrs(units="1", long_name="electron fraction at the end of the step")
        out["e_nuc"] = extra["e_nuc"].assign_attrs(units="erg g^-1", long_name="nuclear energy released over the "
                                                   "step (mass change minus weak neutrino losses)")
        out["eps_nu"] = extra["eps_nu"].assign_attrs(units="erg g^-1 s^-1",
                                                     long_name="weak-neutrino loss rate at the end")
        out["success"] = ok.assign_attrs(long_name="step succeeded (False: flagged, values NaN)")
        out["emu_out_of_domain"] = ood.assign_attrs(long_name="cell outside the NNNs' trained domain")
        out["emu_status"] = status.assign_attrs(flag_attrs(emulator.status, "emulator status"))
        out.attrs.update(emulator=str(emulator.model_dir), network=emulator.network_name,
                         emu_out_of_domain_policy=out_of_domain)
        return out.pint.quantify() if quantified else out

    def timescales(self, ds, **options):
        raise ValueError("timescales() is for primordial grids; the NNNs of a nuclear grid have no timescale net")

    def add_commands(self, sub):
        """This wing's ``thermoemu`` subcommands (:mod:`thermoemu.nuclear.cli`)."""
        from . import cli
        cli.add_commands(sub)


def _refuse_primordial_options(options):
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise ValueError(f"{', '.join(given)}= apply to primordial grids only; this is a nuclear grid "
                         "(it has mass_fraction)")


CHEMISTRY = register_chemistry(NuclearChemistry())
