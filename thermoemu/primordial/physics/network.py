"""The primordial H/He network of Ono & Sugimura (2025): six species plus temperature.

State per cell ``x = (y(H), y(H2), y(e-), y(H+), y(H-), y(H2+), T)`` with ``y(i) = n(i)/n_H``
and T [K], advanced at fixed n_H [cm^-3] by

* eq. (1): ``dy(i)/dt = (1/n_H) sum_j nu_ij R_j`` over the 18 reactions of their Table 4;
* eq. (2): ``n_H c_v dT/dt = Gamma_chem - Lambda`` with H2 line, Lyman-alpha and continuum
  cooling (compressional heating is added by the caller, e.g. the one-zone driver).

Physics choices and their alternatives are the documented ones of
``../shared/physics/primordial.md`` (PM); see :class:`PrimordialOptions`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from ...constants import G_NEWTON, K_BOLTZMANN, MASS_PER_H, Y_HE
from . import cooling, kernel, rates
from .layout import (  # noqa: F401
    _COL,
    _RATE_COLS,
    _TABLE_LOGT_MAX,
    _TABLE_LOGT_MIN,
    _TABLE_PER_DEX,
    CONSERVATION_MATRIX,
    CONSERVATION_NAMES,
    CONSERVATION_TARGET,
    H2,
    H2P,
    HM,
    HP,
    N_COEFFICIENTS,
    N_REACTIONS,
    N_VARS,
    RADIATIVE,
    REACTION_ENERGY,
    REACTIONS,
    SPECIES,
    STOICHIOMETRY,
    TEMP,
    THERMALIZED,
    E,
    H,
)
from .thermo import cv_h2


@dataclass(frozen=True)
class PrimordialOptions:
    """Selectable physics of the primordial network.

    Defaults are the documented choices of PM ("Recommended default configuration"); every
    alternative is the one PM names for that gap.

    Attributes
    ----------
    k2 : {"case_b", "case_a"}
        H+ recombination (and the matching recombination cooling).
    k8 : {"pss83", "forrey"}
        2H + H2 -> 2H2: Palla et al. (1983)/8 or Forrey (2013)/8.
    k11 : {"pss83", "lenzuni"}
        2H -> H+ + e + H: 1.7e-4 k1 or Lenzuni et al. (1991).
    k18 : {"abel97", "glover_abel08"}
        H2+ + H- -> H2 + H.
    h2_escape : {"ra04", "thin"}
        H2 line escape probability (Ripamonti & Abel 2004 density fit, or none).
    lyman_alpha_trapping : {"none", "tgchem"}
        Lyman-alpha cooling thin, or damped by exp(-n_H/1e7).
    continuum_escape : {"diffusion", "slab", "exponential"}
        beta(tau) for continuum cooling: min(1, tau^-2), (1-e^-tau)/tau or e^-tau.
    cv_h2 : {"frozen", "equilibrium", "tgchem"}
        H2 heat capacity model (see :func:`thermo.cv_h2`).
    thermalization : bool
        Apply the Omukai (2000) factor to the heat of H2 formation (reactions 3, 7, 8).
    coefficients : {"table", "exact"}
        Temperature-only coefficients from a table (monotone cubic interpolation in log T on 400
        points per dex, 1 K - 1e6 K, C1-smooth, no overshoot; Grackle tabulates too) or
        evaluated exactly.
    """

    k2: str = "case_b"
    k8: str = "pss83"
    k11: str = "pss83"
    k18: str = "abel97"
    h2_escape: str = "ra04"
    lyman_alpha_trapping: str = "none"
    continuum_escape: str = "diffusion"
    cv_h2: str = "frozen"
    thermalization: bool = True
    coefficients: str = "table"

    _CHOICES = {
        "k2": ("case_b", "case_a"), "k8": ("pss83", "forrey"), "k11": ("pss83", "lenzuni"),
        "k18": ("abel97", "glover_abel08"), "h2_escape": ("ra04", "thin"),
        "lyman_alpha_trapping": ("none", "tgchem"),
        "continuum_escape": ("diffusion", "slab", "exponential"),
        "cv_h2": ("frozen", "equilibrium", "tgchem"), "thermalization": (True, False),
        "coefficients": ("table", "exact"),
    }

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            allowed = self._CHOICES[f.name]
            if value not in allowed:
                raise ValueError(f"option {f.name}={value!r} is not allowed; choose one of {allowed}")

    def as_dict(self):
        """Options as a plain dict (for file attributes)."""
        return asdict(self)


@functools.lru_cache(maxsize=None)
def _hminus_log_table():
    logT = np.linspace(0.0, 6.5, 261)
    with np.errstate(all="ignore"):
        coefficients = cooling.hminus_emission_coefficients(10.0**logT)
    return logT, [np.log10(np.maximum(np.nan_to_num(g), 1e-300)) for g in coefficients]


def hminus_coefficients(T):
    """H- continuum coefficients ``(g_bf, g_attach, g_ff)`` of
    :func:`cooling.hminus_emission_coefficients`, computed once on 40 points per dex of T and
    interpolated in log-log (error < 0.1 % between nodes)."""
    logT, tables = _hminus_log_table()
    lt = np.log10(T)
    return tuple(10.0 ** np.interp(lt, logT, t) for t in tables)


class PrimordialNetwork:
    """Primordial H/He thermochemistry (Ono & Sugimura 2025) on arrays of cells.

    Parameters
    ----------
    options : PrimordialOptions, optional
    **kwargs
        Shortcut for option fields, e.g. ``PrimordialNetwork(k2="case_a")``.

    Notes
    -----
    All methods take ``x`` shaped ``(7, n_cells)`` (abundances then temperature [K]) and a
    ``cell`` dict from :meth:`cell_parameters`, and work on numpy arrays (numpy ufuncs also
    dispatch to cupy).
    """

    name = "primordial"
    rate_set_version = "os25-pm-1"
    species = SPECIES
    variables = SPECIES + ("temperature",)
    n_vars = N_VARS

    @property
    def compiled_backend(self):
        """The numba-compiled kernels of this network (:mod:`thermoemu.primordial.physics.compiled`), which
        the batched solvers reach through the network."""
        from . import compiled
        return compiled

    def __init__(self, options: PrimordialOptions | None = None, **kwargs):
        if options is None:
            options = PrimordialOptions(**kwargs)
        elif kwargs:
            raise TypeError("give either options or keyword options, not both")
        self.options = options
        self._k = {
            0: rates.k1,
            1: rates.k2_case_b if options.k2 == "case_b" else rates.k2_case_a,
            2: rates.k3, 3: rates.k4, 4: rates.k5, 6: rates.k7,
            7: rates.k8_pss83 if options.k8 == "pss83" else rates.k8_forrey,
            9: rates.k10,
            10: rates.k11_pss83 if options.k11 == "pss83" else rates.k11_lenzuni,
            11: rates.k12, 12: rates.k13, 13: rates.k14, 14: rates.k15, 15: rates.k16,
            16: rates.k17,
            17: rates.k18_abel97 if options.k18 == "abel97" else rates.k18_glover_abel08,
        }
        self._recombination_cooling = (cooling.recombination_cooling_case_b if options.k2 == "case_b"
                                       else cooling.recombination_cooling_case_a)
        self._h2_escape = {"ra04": cooling.h2_escape_ra04, "thin": cooling.h2_escape_thin}[options.h2_escape]
        self._lya_trap = {"none": cooling.lyman_alpha_trapping_none,
                          "tgchem": cooling.lyman_alpha_trapping_tgchem}[options.lyman_alpha_trapping]
        self._escape_code = kernel.ESCAPE_CODES[options.continuum_escape]
        self._table = self._build_table() if options.coefficients == "table" else None
        self._table_cells = None

    # ------------------------------------------------------------------ coefficients
    def rate_coefficients(self, T, n_H):
        """All 18 rate coefficients, shape ``(18, n)`` [cm^3 s^-1 or cm^6 s^-1]; exact fits."""
        T = np.asarray(T, dtype=float)
        n_H = np.broadcast_to(np.asarray(n_H, dtype=float), T.shape)
        out = np.empty((N_REACTIONS,) + T.shape)
        for j, f in self._k.items():
            out[j] = f(T)
        out[5] = rates.k6_martin96(T, n_H)
        out[8] = rates.k9(T, n_H)
        return out

    def temperature_coefficients(self, T):
        """Exact temperature-only coefficients, shape ``(N_COEFFICIENTS, n)``."""
        T = np.asarray(T, dtype=float)
        c = np.empty((N_COEFFICIENTS,) + T.shape)
        for col, j in enumerate(_RATE_COLS):
            c[col] = self._k[j](T)
        c[_COL["k6"]] = np.stack(rates.martin96_terms(T))
        c[_COL["k9"]] = np.stack(rates.k9_terms(T))
        c[_COL["h2_lte"]] = cooling.h2_lte_cooling(T)
        c[_COL["h2_gamma"]] = np.stack(cooling.h2_collision_rates(T))
        c[_COL["lya"]] = cooling.lyman_alpha_coefficient(T)
        c[_COL["rec"]] = self._recombination_cooling(T)
        c[_COL["ff"]] = cooling.free_free_coefficient(T)
        g_bf, g_attach, g_ff = hminus_coefficients(T)
        c[_COL["hm_bf"]] = g_bf / (cooling.FOUR_SIGMA_SB * T**4)  # Planck-mean cross-section per H- [cm^2]
        c[_COL["hm_attach"]] = g_attach
        c[_COL["hm_ff"]] = g_ff
        c[_COL["cie"]] = cooling.cie_coefficient(T)
        c[_COL["cv_h2"]] = cv_h2(T.ravel(), self.options.cv_h2).reshape(T.shape) * K_BOLTZMANN
        c[_COL["fth"]] = np.stack([np.exp(-((400.0 / T) ** 2)), np.exp(-12000.0 / (T + 1200.0)),
                                   1.0e6 / np.sqrt(T)])
        return c

    def _build_table(self):
        """Monotone cubic (PCHIP, Fritsch & Carlson 1980) table of the temperature coefficients.

        C1-smooth in u = log10 T, and it never overshoots the node values, also where a
        coefficient jumps by design (e.g. the H2 collision rates switch on at 100 K). Per-interval
        cubic polynomials ``a0 + a1 s + a2 s^2 + a3 s^3``, s in [0, 1).
        """
        from scipy.interpolate import PchipInterpolator

        n = int((_TABLE_LOGT_MAX - _TABLE_LOGT_MIN) * _TABLE_PER_DEX) + 1
        logT = np.linspace(_TABLE_LOGT_MIN, _TABLE_LOGT_MAX, n)
        with np.errstate(all="ignore"):
            v = self.temperature_coefficients(10.0**logT).T
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        with np.errstate(all="ignore"):  # harmonic means of secants that underflow to 0
            c = PchipInterpolator(logT, v, axis=0).c  # (4, n-1, ncol), powers of (u - u_i), highest first
        c = np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)
        ncol = v.shape[1]
        # layout (4 * ncol, n): row k * ncol + j holds the s^k coefficient of column j, so that one
        # np.take along the grid axis yields contiguous (ncol, n_cells) blocks
        coeffs = np.zeros((4, ncol, n))
        h = 1.0 / _TABLE_PER_DEX
        for k in range(4):
            coeffs[k, :, :-1] = (c[3 - k] * h**k).T
        coeffs[0, :, -1] = v[-1]
        return coeffs.reshape(4 * ncol, n)

    # ------------------------------------------------------------------ per-cell constants
    def cell_parameters(self, n_H):
        """Constants of each cell during an integration at fixed n_H [cm^-3]."""
        n_H = np.asarray(n_H, dtype=float)
        return {
            "n_H": n_H,
            "log_n_H": np.log10(n_H),
            "rho": MASS_PER_H * n_H,
            "beta_h2": self._h2_escape(n_H),
            "lya_trap": self._lya_trap(n_H),
        }

    @staticmethod
    def take_cells(cell, idx):
        """The cell parameters of a subset of cells."""
        return {k: v[idx] for k, v in cell.items()}

    # ------------------------------------------------------------------ evaluation (kernel.py)
    def coefficients_and_derivatives(self, T):
        """Temperature-only coefficients at ``T`` and their derivatives d/dT, each (N_COEFFICIENTS, n).

        Table mode: the monotone cubic pieces and their exact derivatives (zero where T is
        clamped to the table's 1 K..1e6 K). Exact mode: the exact fits and a central difference
        in T (relative step 1e-6).
        """
        T = np.asarray(T, dtype=float)
        if self._table is None:
            h = 1e-6 * T
            with np.errstate(all="ignore"):
                c = self.temperature_coefficients(T)
                dc = (self.temperature_coefficients(T + h) - self.temperature_coefficients(T - h)) / (2.0 * h)
            return c, np.nan_to_num(dc, nan=0.0, posinf=0.0, neginf=0.0)
        table = self._table
        with np.errstate(invalid="ignore", divide="ignore"):
            u = (np.log10(T) - _TABLE_LOGT_MIN) * _TABLE_PER_DEX
            du_dT = _TABLE_PER_DEX / (T * np.log(10.0))
        bad = ~np.isfinite(u)  # T <= 0 or NaN in a trial stage: propagate NaN, never index garbage
        top = table.shape[1] - 1.000001
        clamped = bad | (u < 0.0) | (u > top)
        u = np.clip(np.where(bad, 0.0, u), 0.0, top)
        idx = u.astype(np.intp)
        s = u - idx
        a = np.take(table, idx, axis=1).reshape(4, N_COEFFICIENTS, -1)
        out = a[3] * s
        out += a[2]
        out *= s
        out += a[1]
        out *= s
        out += a[0]
        d = 3.0 * a[3] * s
        d += 2.0 * a[2]
        d *= s
        d += a[1]
        d *= np.where(clamped, 0.0, du_dT)
        if bad.any():
            out[:, bad] = np.nan
            d[:, bad] = np.nan
        return out.reshape((N_COEFFICIENTS,) + T.shape), d.reshape((N_COEFFICIENTS,) + T.shape)

    def _coefficients(self, T):
        return self.coefficients_and_derivatives(T)[0]

    def _evaluate(self, x, cell, jacobian):
        x = np.asarray(x, dtype=float)
        shape = x.shape[1:]
        c, dc = self.coefficients_and_derivatives(x[TEMP])
        p = kernel.cell_parameter_array(cell)
        kn = np.empty((N_REACTIONS,) + shape)
        dkn = np.empty_like(kn)
        r = np.empty_like(kn)
        D = np.zeros((N_REACTIONS, N_VARS) + shape) if jacobian else None
        f = np.empty_like(x)
        J = np.empty((N_VARS, N_VARS) + shape) if jacobian else None
        with np.errstate(all="ignore"):  # trial stages may hold non-physical states; NaN is rejected
            kernel.rhs_jacobian(x, c, dc, p, self.options.thermalization, self._escape_code, kn, dkn, r, D,
                                f, J, jacobian)
        return f, J

    def rhs(self, x, cell):
        """Time derivative of ``x`` (abundances [s^-1], temperature [K s^-1]), shape (7, n)."""
        return self._evaluate(x, cell, False)[0]

    def jacobian(self, x, cell, f=None):
        """Jacobian ``d(dx/dt)/dx``, shape (7, 7, n): analytic throughout (mass-action chemistry;
        the temperature row and column from the closed-form derivatives of the rates, cooling,
        heat capacity and of the coefficient table, :mod:`thermoemu.primordial.physics.kernel`)."""
        return self._evaluate(x, cell, True)[1]

    def rhs_and_jacobian(self, x, cell):
        """``(rhs(x), jacobian(x))`` sharing the coefficient evaluation (what stiff solvers need)."""
        return self._evaluate(x, cell, True)

    def compiled_kernel(self):
        """What the compiled solver (:mod:`thermoemu.primordial.physics.compiled`) needs, or None where it
        cannot run this network (exact coefficients): ``(table, thermalize, escape_code)`` with the
        coefficient table laid out (grid point, column, power). Also None for a subclass that
        overrides ``rhs``, ``jacobian`` or ``rhs_and_jacobian`` (e.g. to add a heating term): the
        compiled kernel would not see the override, so such a network runs vectorized."""
        if self._table is None:
            return None
        if any(getattr(type(self), name) is not getattr(PrimordialNetwork, name)
               for name in ("rhs", "jacobian", "rhs_and_jacobian", "_evaluate")):
            return None
        if self._table_cells is None:
            self._table_cells = np.ascontiguousarray(
                self._table.reshape(4, N_COEFFICIENTS, -1).transpose(2, 1, 0))
        return self._table_cells, bool(self.options.thermalization), self._escape_code

    def heating_cooling(self, x, cell):
        """Heating and cooling rates by process [erg cm^-3 s^-1] (cooling positive).

        Returns a dict with the cooling terms of :meth:`rhs`, ``chemical_heating`` (net, may be
        negative), ``continuum_tau`` (continuum optical depth over a Jeans length) and
        ``heat_capacity`` [erg K^-1 per H nucleus]. Evaluated with the exact coefficients.
        """
        x = np.asarray(x, dtype=float)
        T = x[TEMP]
        c = self.temperature_coefficients(T)
        dc = np.zeros_like(c)
        p = kernel.cell_parameter_array(cell)
        kn = np.empty((N_REACTIONS,) + T.shape)
        dkn = np.empty_like(kn)
        r = np.empty_like(kn)
        kernel.rate_constants(c, dc, p, T, kn, dkn)
        kernel.reaction_rates(kn, dkn, x, r, None, False)
        terms = kernel.cooling_terms(x, c, p, self._escape_code)
        names = ("h2_line", "lyman_alpha", "h_recombination", "h_free_free", "hminus_continuum", "cie")
        out = dict(zip(names, terms[:6]))
        fth = kernel.thermalization(x, c, p)[0] if self.options.thermalization else 1.0
        out["chemical_heating"] = cell["n_H"] * (np.tensordot(kernel._PLAIN_HEAT, r, axes=1)
                                                 + fth * np.tensordot(kernel._THERMALIZED_HEAT, r, axes=1))
        out["continuum_tau"] = terms[7]
        out["heat_capacity"] = (1.5 * K_BOLTZMANN * (x[H] + x[E] + x[HP] + x[HM] + x[H2P] + Y_HE)
                                + c[_COL["cv_h2"]][0] * x[H2])
        return out

    def project(self, x):
        """Enforce hydrogen-nucleus and charge conservation in place (see :func:`project_abundances`)."""
        x[:6] = project_abundances(x[:6])
        return x


def conservation_residual(y):
    """``C y - b`` for abundances ``y`` shaped (6, n): hydrogen nuclei and charge, shape (2, n)."""
    return np.tensordot(CONSERVATION_MATRIX, y, axes=1) - CONSERVATION_TARGET.reshape((2,) + (1,) * (y.ndim - 1))


def project_abundances(y):
    """Smallest relative change of the abundances that satisfies both conservation laws.

    Minimizes ``sum_i ((y'_i - y_i)/y_i)^2`` subject to ``C y' = b`` (hydrogen nuclei and
    charge), which keeps trace species' relative values: ``y' = y - W C^T (C W C^T)^-1 (C y - b)``
    with ``W = diag(y^2)``. Works on (6, ...) arrays; returns a new array.
    """
    y = np.asarray(y, dtype=float)
    w = y * y
    C = CONSERVATION_MATRIX.reshape((2, 6) + (1,) * (y.ndim - 1))
    a11 = (C[0] ** 2 * w).sum(axis=0)
    a12 = (C[0] * C[1] * w).sum(axis=0)
    a22 = (C[1] ** 2 * w).sum(axis=0)
    r = conservation_residual(y)
    det = a11 * a22 - a12 * a12
    ok = det > 1e-14 * np.maximum(a11 * a22, 1e-300)
    safe = np.where(ok, det, 1.0)
    l1 = np.where(ok, (a22 * r[0] - a12 * r[1]) / safe, r[0] / np.where(a11 > 0, a11, 1.0))
    l2 = np.where(ok, (a11 * r[1] - a12 * r[0]) / safe,
                  np.where(a22 > 0, r[1] / np.where(a22 > 0, a22, 1.0), 0.0))
    return y - w * (C[0] * l1 + C[1] * l2)


#: The state variables of the network in order: the six abundances, then the temperature.
VARIABLES = tuple(SPECIES) + ("temperature",)
_DEFAULT_NETWORK = None


def default_network():
    """The primordial network with default options, built once per process."""
    global _DEFAULT_NETWORK
    if _DEFAULT_NETWORK is None:
        _DEFAULT_NETWORK = PrimordialNetwork()
    return _DEFAULT_NETWORK


def free_fall_time(n_H):
    """Free-fall time ``sqrt(3 pi / (32 G rho))`` [s] with ``rho = (1 + 4 y_He) n_H m_H``."""
    return np.sqrt(3.0 * np.pi / (32.0 * G_NEWTON * MASS_PER_H * np.asarray(n_H, dtype=float)))


def as_cells(cells):
    """n_H [cm^-3] (N,) from a Stepper's ``cells`` mapping (``{"n_H": ...}``) or a bare n_H array."""
    n_H = cells["n_H"] if isinstance(cells, Mapping) else cells
    return np.asarray(n_H, dtype=float).ravel()
