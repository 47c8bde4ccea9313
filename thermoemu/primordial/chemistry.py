"""The primordial wing as a :class:`~thermoemu.core.protocols.Chemistry`: H, H2, e-, H+, H-, H2+ and T at
fixed n_H (Ono & Sugimura 2025), registered under ``"primordial"``.

A grid is primordial when it holds ``abundance`` (and ``n_H``, ``temperature``); ``ds.emu.step``,
``thermoemu build`` and the snapshot adapters reach this wing only through the registry.
"""

from __future__ import annotations

from ..core.grid import apply_cell_function, apply_stepper, dt_dataarray, flag_attrs, is_quantified
from ..core.protocols import CatalogChemistry, register_chemistry
from . import catalog
from .emulator import get_emulator
from .physics.network import VARIABLES
from .reference import ReferenceStepper
from .saha_table import SAHA_MIN_DENSITY, load_saha_table
from .state import from_state_vector, state_vector, validate_state

__all__ = ["PrimordialChemistry", "CHEMISTRY"]

_STATE = ("n_H", "temperature", "abundance")


class PrimordialChemistry(CatalogChemistry):
    """Primordial gas: state grids of :func:`thermoemu.primordial_state`, the shipped DeepONet/DGM emulator,
    the Rosenbrock reference solver, the Saha table above 1e18 cm^-3 and the OS25 catalogs."""

    catalog_module = catalog
    #: ``spec.<name>`` of a primordial CatalogSpec (``network_options`` and ``solver_settings`` are methods).
    spec_accessors = {"ranges": catalog.sampling_ranges, "dt_max_over_t_ff": catalog.dt_max_over_t_ff,
                      "timescale_eps": catalog.timescale_eps,
                      "network_options": lambda spec: lambda: catalog.network_options(spec),
                      "solver_settings": lambda spec: lambda: catalog.solver_settings(spec)}
    kind = "primordial"
    state_variables = _STATE
    #: Per-step outputs that ``ds.emu.evolve`` sums over its steps.
    summed_outputs = ()

    def owns(self, ds):
        return "abundance" in ds.data_vars

    def validate_state(self, ds, **options):
        return validate_state(ds, **options)

    def stepper(self, model="default", *, update=None, out_of_domain="reference", device="cpu", saha_table=None):
        """The emulator of ``model`` with these options (:class:`thermoemu.Emulator`; ``update`` None: the model's own rule)."""
        emulator = get_emulator(model, device=device)
        return emulator.with_options(update=update or emulator.default_update,
                                                                out_of_domain=out_of_domain, saha_table=saha_table)

    def reference(self, **options):
        """The reference network and solver (:class:`~thermoemu.primordial.reference.ReferenceStepper`)."""
        return ReferenceStepper(**options)

    def step(self, ds, dt, *, model="default", update=None, out_of_domain="reference", device="cpu",
             saha_table=None):
        """``ds.emu.step`` on a primordial grid (see :meth:`thermoemu.accessor.EmuAccessor.step`)."""
        quantified = is_quantified(ds, _STATE)
        ds = validate_state(ds)
        dt_da = dt_dataarray(dt, ds["n_H"])
        emulator = self.stepper(model, update=update, out_of_domain=out_of_domain, device=device,
                                saha_table=saha_table)
        if bool((ds["n_H"] > SAHA_MIN_DENSITY).any()):  # build or read the table here, not in every worker
            load_saha_table(emulator.saha_table[0], directory=emulator.saha_table[1])
        x_new, ok, ood, status, _ = apply_stepper(emulator, {"n_H": ds["n_H"]}, state_vector(ds), dt_da,
                                                  vector_dim="variable")
        T, y = from_state_vector(x_new, ds)
        out = ds.copy()
        out["temperature"] = T.assign_attrs(ds["temperature"].attrs)
        out["abundance"] = y.assign_attrs(ds["abundance"].attrs)
        out["success"] = ok.assign_attrs(long_name="step succeeded (False: flagged, values NaN)")
        out["emu_out_of_domain"] = ood.assign_attrs(long_name="cell outside the emulator's trained domain")
        out["emu_status"] = status.assign_attrs(flag_attrs(emulator.status, "emulator status"))
        out.attrs.update(emulator=str(emulator.model_dir), emu_update=emulator.update, emu_out_of_domain_policy=out_of_domain)
        return out.pint.quantify() if quantified else out

    def timescales(self, ds, *, model="default", device="cpu"):
        """tau_eps [s] per cell and variable from the DGM nets (``ds.emu.timescales``)."""
        ds = validate_state(ds)
        emulator = get_emulator(model, device=device)

        def timescales(cells, x):
            return emulator.timescales_arrays(cells, x)[0]

        tau = apply_cell_function(timescales, {"n_H": ds["n_H"]}, state_vector(ds), vector_dim="variable",
                                  output_dim="variable", output_size=len(VARIABLES))
        return tau.assign_coords(variable=list(VARIABLES)).rename("tau_eps").assign_attrs(
            units="s", long_name=f"time for a relative change eps = {next(iter(emulator.regions.values())).eps:g}")

    def add_commands(self, sub):
        """This wing's ``thermoemu`` subcommands (:mod:`thermoemu.primordial.cli`)."""
        from . import cli
        cli.add_commands(sub)


CHEMISTRY = register_chemistry(PrimordialChemistry())
