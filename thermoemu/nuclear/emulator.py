"""NNN model sets as a stepper for nuclear state grids (Grichener et al. 2025, section 2.3).

For each cell (T, rho, X0) and step dt at constant T and rho:

1. **dt**: an NNN model set holds one model per trained dt. A dt the set holds is one model
   evaluation. A dt that is an integer multiple ``k`` of a held dt (k <= :data:`MAX_REPEATS`) is
   ``k`` evaluations of the largest such model: burning at constant T and rho is autonomous, so the
   reference obeys burn(k dt) = burn(dt)^k exactly; the NNN's errors compound. e_nuc is summed
   over the repeats, eps_nu is the last one's. Any other dt is refused with the list of held dt.
2. **Domain guard**: a cell is *out of domain* if its temperature, density or Ye lies outside the
   training inputs' ranges (stored in the manifest). By default such cells, and cells whose NNN
   output is not finite, are burned with the reference network the set was trained on
   (``"reference"``); the alternatives are ``"flag"`` (NaN, flagged) and ``"raise"``.
3. **Conservation**: the composition is a softmax, so the mass fractions sum to one by
   construction; Ye is not conserved (weak rates change it) and is reported from the new X.

Nothing comes back NaN without ``success = False`` and a status code (:data:`NUCLEAR_EMU_STATUS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.artifacts import ArtifactError
from ..core.emulator import (
    OUT_OF_DOMAIN_POLICIES,
    RANGE_SLACK,
    EmulatorBase,
    apply_fallback,
    cached_model,
    check_choice,
    resolve_model,
)
from ..core.protocols import StepResult
from .burner import burn
from .network import load_network, nucleus_charge_mass
from .nnn import load_nnn_set

__all__ = ["NuclearEmulator", "NUCLEAR_EMU_STATUS", "get_nuclear_emulator", "default_nnn_dir", "MAX_REPEATS",
           "reorder_isotopes", "nuclear_cells"]

#: Status codes of ``emu_status`` on nuclear grids (CF flag_values / flag_meanings).
NUCLEAR_EMU_STATUS = {
    0: "emulated",
    2: "out of domain, burned by the reference network",
    3: "out of domain, not advanced (flag only)",
    4: "non-finite emulator output, burned by the reference network",
    5: "reference burn failed",
}
#: The most evaluations one step may chain (dt = k x a held dt).
MAX_REPEATS = 1000
#: Relative tolerance when matching dt to the held dt (and to their integer multiples).
DT_RTOL = 1e-9


def default_nnn_dir():
    """The NNN set shipped inside the package (``thermoemu/data/models/nnn-mesa80``)."""
    return Path(__file__).resolve().parents[1] / "data" / "models" / "nnn-mesa80"


def nuclear_cells(cells):
    """T [K] and rho [g cm^-3] (N,) from a Stepper's ``cells`` mapping."""
    return (np.asarray(cells["temperature"], dtype=float).ravel(),
            np.asarray(cells["density"], dtype=float).ravel())


class NuclearEmulator(EmulatorBase):
    """A loaded NNN model set used as a :class:`~thermoemu.core.protocols.Stepper`.

    Parameters
    ----------
    model : str or path
        ``"default"`` (shipped, mesa80) or a folder written by ``thermoemu train-nnn``.
    out_of_domain : {"reference", "flag", "raise"}
    device : str
        torch device.
    """

    chemistry = "nuclear"
    status = NUCLEAR_EMU_STATUS
    _OPTIONS = {"out_of_domain": OUT_OF_DOMAIN_POLICIES}

    def __init__(self, model="default", *, out_of_domain="reference", device="cpu"):
        check_choice("out_of_domain", out_of_domain, OUT_OF_DOMAIN_POLICIES)
        self.model_dir = resolve_model(model, default_nnn_dir())
        self.models, self.manifest = load_nnn_set(self.model_dir, device=device)
        self.network_name = self.manifest["network"]
        self.isotopes = tuple(self.manifest["isotopes"])
        self.out_of_domain = out_of_domain
        self.domain = {}
        for key, entry in self.manifest["models"].items():
            if "domain" not in entry:
                raise ArtifactError(f"{self.model_dir}: the dt = {key} s model records no training domain; "
                                    f"retrain it with this thermoemu (thermoemu train-nnn)")
            self.domain[float(entry["dt_s"])] = entry["domain"]
        self.screening = bool(next(iter(self.manifest["models"].values())).get("screening", True))
        Z, A = nucleus_charge_mass(self.isotopes)
        self.z_over_a = Z / A
        self._network = None

    @property
    def variables(self):
        """The isotopes, in the order of the rows of ``x``."""
        return self.isotopes

    @property
    def label(self):
        return f"NNN set {self.model_dir.name} ({self.network_name})"

    @property
    def dts(self):
        """The held dt values [s], ascending."""
        return sorted(self.models)

    @property
    def network(self):
        """The reference network of the set (compiled or loaded from the cache on first use)."""
        if self._network is None:
            self._network = load_network(self.network_name, screening=self.screening)
        return self._network

    def plan(self, dt):
        """(held dt [s], repeats) for a step of ``dt`` [s]; raises ValueError when no held dt fits."""
        dt = float(dt)
        for held in sorted(self.models, reverse=True):
            k = dt / held
            if k >= 1 - DT_RTOL and abs(k - round(k)) <= DT_RTOL * k and round(k) <= MAX_REPEATS:
                return held, int(round(k))
        raise ValueError(f"dt = {dt:g} s: the NNN set {self.model_dir} holds dt = "
                         f"{', '.join(f'{d:g}' for d in self.dts)} s; a step must be one of them or an integer "
                         f"multiple (<= {MAX_REPEATS}) of one")

    def classify(self, temperature, density, ye, held):
        """True per cell inside the training ranges of the dt = ``held`` model."""
        inside = np.ones(np.shape(temperature), dtype=bool)
        for name, values in (("temperature", temperature), ("density", density), ("ye", ye)):
            lo, hi = self.domain[held][name]
            inside &= (values >= lo * (1 - RANGE_SLACK)) & (values <= hi * (1 + RANGE_SLACK))
        return inside

    def step_arrays(self, cells, x, dt):
        """Advance cells by dt at constant T and rho.

        Parameters
        ----------
        cells : mapping ``{"temperature": ndarray (N,), "density": ndarray (N,)}``
            [K], [g cm^-3]
        x : ndarray (isotopes, N)
            Mass fractions, rows in the set's isotope order (:attr:`isotopes`).
        dt : float or ndarray (N,)
            [s]; each value one of :attr:`dts` or an integer multiple of one (0 leaves a cell as it is).

        Returns
        -------
        StepResult
            ``x`` (isotopes, N); ``extra``: ``e_nuc`` [erg g^-1], ``eps_nu`` [erg g^-1 s^-1], ``ye`` at the
            end, and ``repeats`` (model evaluations per cell).
        """
        T, rho = nuclear_cells(cells)
        x = np.asarray(x, dtype=float)
        if x.shape != (len(self.isotopes), T.size):
            raise ValueError(f"x has shape {x.shape}; a Stepper takes mass fractions variable-first, shape "
                             f"(isotopes, cells) = ({len(self.isotopes)}, {T.size}) in the order of .isotopes")
        X0 = x.T
        dt = np.broadcast_to(np.asarray(dt, dtype=float), T.shape)
        X = X0.copy()
        e_nuc = np.zeros(T.size)
        eps_nu = np.zeros(T.size)
        repeats = np.zeros(T.size, dtype=np.int32)
        status = np.zeros(T.size, dtype=np.int8)
        ood = np.zeros(T.size, dtype=bool)
        ye0 = X0 @ self.z_over_a
        for value in np.unique(dt[dt > 0]):
            sel = np.flatnonzero(dt == value)
            held, k = self.plan(value)
            repeats[sel] = k
            ood[sel] = ~self.classify(T[sel], rho[sel], ye0[sel], held)
        self.raise_out_of_domain(ood, lambda i: (
            f"T = {T[i]:.4g} K, density = {rho[i]:.4g} g cm^-3, Ye = {ye0[i]:.5f}; the dt = "
            f"{self.plan(dt[i])[0]:g} s model was trained on {self.domain[self.plan(dt[i])[0]]}"))
        for value in np.unique(dt[dt > 0]):
            sel = np.flatnonzero((dt == value) & ~ood)
            if sel.size == 0:
                continue
            held, k = self.plan(value)
            model = self.models[held]
            Xs = X[sel]
            for _ in range(k):
                Xs, e, nu = model.predict(T[sel], rho[sel], Xs)
                e_nuc[sel] += e
            eps_nu[sel] = nu
            X[sel] = Xs
        finite = np.isfinite(X).all(axis=1) & np.isfinite(e_nuc) & np.isfinite(eps_nu)
        success = np.ones(T.size, dtype=bool)

        def reference(idx):
            net = self.network
            res = burn(net, rho[idx], T[idx], reorder_isotopes(X0[idx], self.isotopes, net.isotopes), dt[idx],
                       screening=self.screening)
            return (reorder_isotopes(res.mass_fraction, net.isotopes, self.isotopes), res.success,
                    (res.e_nuc, res.eps_nu))

        apply_fallback(self.out_of_domain, X, success, status, ood, ~ood & ~finite, reference,
                       extras=(e_nuc, eps_nu), active=dt > 0)
        return StepResult(X.T, success, ood, status,
                          {"e_nuc": e_nuc, "eps_nu": eps_nu, "ye": X @ self.z_over_a, "repeats": repeats})


def reorder_isotopes(X, source, target):
    """Columns of ``X`` (in ``source`` isotope order) in ``target`` order (zeros where missing)."""
    if tuple(source) == tuple(target):
        return X
    out = np.zeros((X.shape[0], len(target)))
    where = {name: i for i, name in enumerate(source)}
    for j, name in enumerate(target):
        if name in where:
            out[:, j] = X[:, where[name]]
    return out


def get_nuclear_emulator(model="default", *, device="cpu"):
    """The process-wide loaded NNN set (loaded once per folder, manifest time and device)."""
    return cached_model(NuclearEmulator, resolve_model(model, default_nnn_dir()), device=device)
