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
from dataclasses import asdict, dataclass, fields

import numpy as np

from ...constants import K_BOLTZMANN, M_HYDROGEN, MASS_PER_H, Y_HE
from . import cooling, rates
from .thermo import CHI_ERG, cv_h2

SPECIES = ("H", "H2", "e-", "H+", "H-", "H2+")
H, H2, E, HP, HM, H2P = range(6)
TEMP = 6
N_VARS = 7

#: Reactions as (reactants, products, radiative) in species indices, OS25 Table 4 order.
REACTIONS = (
    ((H, E), (HP, E, E), False),          # 1  H + e -> H+ + 2e
    ((HP, E), (H,), True),                # 2  H+ + e -> H + photon
    ((HM, H), (H2, E), False),            # 3  H- + H -> H2 + e
    ((H2, HP), (H2P, H), False),          # 4  H2 + H+ -> H2+ + H
    ((H2, E), (H, H, E), False),          # 5  H2 + e -> 2H + e
    ((H2, H), (H, H, H), False),          # 6  H2 + H -> 3H
    ((H, H, H), (H2, H), False),          # 7  3H -> H2 + H
    ((H, H, H2), (H2, H2), False),        # 8  2H + H2 -> 2H2
    ((H2, H2), (H, H, H2), False),        # 9  2H2 -> 2H + H2
    ((H, E), (HM,), True),                # 10 H + e -> H- + photon
    ((H, H), (HP, E, H), False),          # 11 2H -> H+ + e + H
    ((HM, E), (H, E, E), False),          # 12 H- + e -> H + 2e
    ((HM, HP), (H2P, E), False),          # 13 H- + H+ -> H2+ + e
    ((HM, HP), (H, H), False),            # 14 H- + H+ -> 2H
    ((H, HP), (H2P,), True),              # 15 H + H+ -> H2+ + photon
    ((H2P, H), (H2, HP), False),          # 16 H2+ + H -> H2 + H+
    ((H2P, E), (H, H), False),            # 17 H2+ + e -> 2H
    ((H2P, HM), (H2, H), False),          # 18 H2+ + H- -> H2 + H
)
N_REACTIONS = len(REACTIONS)


def _stoichiometry():
    nu = np.zeros((6, N_REACTIONS))
    for j, (reac, prod, _) in enumerate(REACTIONS):
        for s in reac:
            nu[s, j] -= 1
        for s in prod:
            nu[s, j] += 1
    return nu


#: Net stoichiometric matrix nu[i, j] (species x reactions).
STOICHIOMETRY = _stoichiometry()
#: Energy released per event Q_j [erg] from the KIDA chemical energies (PM section 4.4).
REACTION_ENERGY = np.array([sum(CHI_ERG[s] for s in reac) - sum(CHI_ERG[s] for s in prod)
                            for reac, prod, _ in REACTIONS])
RADIATIVE = np.array([rad for _, _, rad in REACTIONS])
#: Reactions whose heat is multiplied by the Omukai (2000) thermalization factor (H2 formation).
THERMALIZED = (2, 6, 7)  # 0-based indices of reactions 3, 7, 8

#: Conservation: C @ y = b. Row 0 hydrogen nuclei, row 1 charge (y(e) - y(H+) - y(H2+) + y(H-)).
CONSERVATION_MATRIX = np.array([[1.0, 2.0, 0.0, 1.0, 1.0, 2.0],
                                [0.0, 0.0, 1.0, -1.0, 1.0, -1.0]])
CONSERVATION_TARGET = np.array([1.0, 0.0])
CONSERVATION_NAMES = ("hydrogen nuclei", "charge")


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


# Column layout of the temperature-coefficient array.
_RATE_COLS = [j for j in range(N_REACTIONS) if j not in (5, 8)]  # all but k6 and k9
_COL = {}
_ncol = 0
for _name, _width in (("k", len(_RATE_COLS)), ("k6", 14), ("k9", 3), ("h2_lte", 1), ("h2_gamma", 5),
                      ("lya", 1), ("rec", 1), ("ff", 1), ("hm_bf", 1), ("hm_attach", 1), ("hm_ff", 1), ("cie", 1),
                      ("cv_h2", 1), ("fth", 3)):
    _COL[_name] = slice(_ncol, _ncol + _width)
    _ncol += _width
N_COEFFICIENTS = _ncol

_TABLE_LOGT_MIN, _TABLE_LOGT_MAX, _TABLE_PER_DEX = 0.0, 6.0, 400


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
        self._beta_cont = {"diffusion": cooling.continuum_escape_diffusion,
                           "slab": cooling.continuum_escape_slab,
                           "exponential": cooling.continuum_escape_exponential}[options.continuum_escape]
        self._heat = np.where(RADIATIVE, 0.0, REACTION_ENERGY)
        self._slot_map = self._build_jacobian_map()
        self._table = self._build_table() if options.coefficients == "table" else None

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

    def _coefficients(self, T):
        if self._table is None:
            return self.temperature_coefficients(T)
        table = self._table
        with np.errstate(invalid="ignore", divide="ignore"):
            u = (np.log10(T) - _TABLE_LOGT_MIN) * _TABLE_PER_DEX
        bad = ~np.isfinite(u)  # T <= 0 or NaN in a trial stage: propagate NaN, never index garbage
        u = np.clip(np.where(bad, 0.0, u), 0.0, table.shape[1] - 1.000001)
        idx = u.astype(np.intp)
        s = u - idx
        a = np.take(table, idx, axis=1).reshape(4, N_COEFFICIENTS, -1)
        out = a[3] * s
        out += a[2]
        out *= s
        out += a[1]
        out *= s
        out += a[0]
        if bad.any():
            out[:, bad] = np.nan
        return out

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

    # ------------------------------------------------------------------ kinetics
    def _rate_constants(self, c, cell, T):
        """k_j n_H^(order-1), shape (18, n) [s^-1]."""
        k = np.empty((N_REACTIONS,) + T.shape)
        k[_RATE_COLS] = c[_COL["k"]]
        k[5] = rates.k6_from_terms(c[_COL["k6"]], cell["log_n_H"], T)
        k[8] = rates.k9_from_terms(*c[_COL["k9"]], cell["log_n_H"])
        n = cell["n_H"]
        k[:] *= n  # all two-body
        k[6] *= n  # three-body
        k[7] *= n
        return k

    @staticmethod
    def _reaction_rates(kn, y):
        """Events per H nucleus per second, r_j = k_j n^(o-1) prod y, shape (18, n)."""
        r = kn.copy()
        for j, (reac, _, _) in enumerate(REACTIONS):
            for s in reac:
                r[j] *= y[s]
        return r

    def _build_jacobian_map(self):
        """Matrix P with J_chem.flat = P @ D, D the (slot) derivatives of r_j w.r.t. y."""
        slots = []
        for j, (reac, _, _) in enumerate(REACTIONS):
            for m in sorted(set(reac)):
                slots.append((j, m))
        P = np.zeros((36, len(slots)))
        for q, (j, m) in enumerate(slots):
            for i in range(6):
                P[i * 6 + m, q] += STOICHIOMETRY[i, j]
        return slots, P

    def _reaction_rate_derivatives(self, kn, y):
        """dr_j/dy_m for each (j, m) slot, shape (n_slots, n)."""
        slots, _ = self._slot_map
        D = np.empty((len(slots),) + y.shape[1:])
        for q, (j, m) in enumerate(slots):
            reac = list(REACTIONS[j][0])
            count = reac.count(m)
            reac.remove(m)
            d = kn[j] * count
            for s in reac:
                d = d * y[s]
            D[q] = d
        return D

    # ------------------------------------------------------------------ thermal
    def _heat_capacity(self, c, y):
        """c_v per hydrogen nucleus [erg K^-1]."""
        atoms = y[H] + y[E] + y[HP] + y[HM] + y[H2P] + Y_HE
        return 1.5 * K_BOLTZMANN * atoms + c[_COL["cv_h2"]][0] * y[H2]

    def _cooling_terms(self, c, cell, y, T):
        """Cooling rates [erg cm^-3 s^-1] by process, and the continuum optical depth."""
        n = cell["n_H"]
        nH, nH2, ne, nHp, nHm = n * y[H], n * y[H2], n * y[E], n * y[HP], n * y[HM]
        g = c[_COL["h2_gamma"]]
        l_lte = c[_COL["h2_lte"]][0]
        l0 = g[0] * nH + g[1] * nH2 + g[2] * (Y_HE * n) + g[3] * nHp + g[4] * ne
        h2_line = cell["beta_h2"] * nH2 * l_lte * l0 / np.maximum(l_lte + l0, 1e-300)
        lya = cell["lya_trap"] * c[_COL["lya"]][0] * ne * nH
        rho = cell["rho"]
        sigma_t4 = cooling.FOUR_SIGMA_SB * T**4
        h_ff = c[_COL["ff"]][0] * ne * nHp
        hm_ff = c[_COL["hm_ff"]][0] * nH * ne
        cie = c[_COL["cie"]][0] * rho * nH2
        # Planck-mean absorption per volume [cm^-1]: Kirchhoff for the LTE processes (free-free,
        # CIE) and the actual H- ions for bound-free
        absorption = (h_ff + hm_ff + cie) / sigma_t4 + c[_COL["hm_bf"]][0] * nHm
        mu = (1.0 + 4.0 * Y_HE) / (y[:6].sum(axis=0) + Y_HE)
        tau = absorption * cooling.jeans_length(T, rho, mu)
        beta = self._beta_cont(tau)
        hm = hm_ff + c[_COL["hm_attach"]][0] * nH * ne
        rec = c[_COL["rec"]][0] * ne * nHp
        return {
            "h2_line": h2_line,
            "lyman_alpha": lya,
            "h_recombination": beta * rec,
            "h_free_free": beta * h_ff,
            "hminus_continuum": beta * hm,
            "cie": beta * cie,
        }, tau

    def _thermalization(self, c, cell, y):
        e1, e2, ncr0 = c[_COL["fth"]]
        denom = 1.6 * y[H] * e1 + 1.4 * y[H2] * e2
        nd = cell["n_H"] * denom
        return nd / (nd + ncr0)

    def _chemical_heating(self, c, cell, y, r):
        """Net chemical heating [erg cm^-3 s^-1] from the reaction rates r (per H nucleus)."""
        q = self._heat[:, None] * r
        if self.options.thermalization:
            f = self._thermalization(c, cell, y)
            for j in THERMALIZED:
                q[j] *= f
        return cell["n_H"] * q.sum(axis=0)

    def _energy_rate(self, c, cell, y, T, r):
        cool, _ = self._cooling_terms(c, cell, y, T)
        lam = sum(cool.values())
        gamma = self._chemical_heating(c, cell, y, r)
        return (gamma - lam) / (cell["n_H"] * self._heat_capacity(c, y))

    # ------------------------------------------------------------------ public
    def rhs(self, x, cell):
        """Time derivative of ``x`` (abundances [s^-1], temperature [K s^-1]), shape (7, n)."""
        y, T = x[:6], x[TEMP]
        c = self._coefficients(T)
        kn = self._rate_constants(c, cell, T)
        r = self._reaction_rates(kn, y)
        out = np.empty_like(x)
        out[:6] = STOICHIOMETRY @ r
        out[TEMP] = self._energy_rate(c, cell, y, T, r)
        return out

    def jacobian(self, x, cell, f=None):
        """Jacobian ``d(dx/dt)/dx``, shape (7, 7, n).

        The chemistry block d(dy/dt)/dy is analytic (mass action); the temperature column is a
        forward difference in T (relative step 1e-6) and the temperature row a forward
        difference in each abundance (relative step 1e-7) reusing the T coefficients.
        """
        return self.rhs_and_jacobian(x, cell)[1]

    def rhs_and_jacobian(self, x, cell):
        """``(rhs(x), jacobian(x))`` sharing the coefficient evaluation (what stiff solvers need)."""
        y, T = x[:6], x[TEMP]
        n = T.shape[0]
        c = self._coefficients(T)
        kn = self._rate_constants(c, cell, T)
        r = self._reaction_rates(kn, y)
        f = np.empty_like(x)
        f[:6] = STOICHIOMETRY @ r
        f[TEMP] = self._energy_rate(c, cell, y, T, r)
        J = np.zeros((N_VARS, N_VARS, n))
        D = self._reaction_rate_derivatives(kn, y)
        J[:6, :6] = (self._slot_map[1] @ D).reshape(6, 6, n)
        # temperature column
        dT = 1e-6 * T
        xt = x.copy()
        xt[TEMP] = T + dT
        J[:, TEMP] = (self.rhs(xt, cell) - f) / dT
        # temperature row w.r.t. abundances
        for m in range(6):
            dy = 1e-7 * np.maximum(np.abs(y[m]), 1e-30)
            yp = y.copy()
            yp[m] = y[m] + dy
            rp = r.copy()
            for j, (reac, _, _) in enumerate(REACTIONS):
                if m in reac:
                    rp[j] = kn[j]
                    for s in reac:
                        rp[j] = rp[j] * yp[s]
            J[TEMP, m] = (self._energy_rate(c, cell, yp, T, rp) - f[TEMP]) / dy
        return f, J

    def heating_cooling(self, x, cell):
        """Heating and cooling rates by process [erg cm^-3 s^-1] (cooling positive).

        Returns a dict with the cooling terms of :meth:`rhs`, ``chemical_heating`` (net, may be
        negative), ``continuum_tau`` (continuum optical depth over a Jeans length) and
        ``heat_capacity`` [erg K^-1 per H nucleus].
        """
        y, T = x[:6], x[TEMP]
        c = self.temperature_coefficients(T)
        kn = self._rate_constants(c, cell, T)
        r = self._reaction_rates(kn, y)
        cool, tau = self._cooling_terms(c, cell, y, T)
        out = dict(cool)
        out["chemical_heating"] = self._chemical_heating(c, cell, y, r)
        out["continuum_tau"] = tau
        out["heat_capacity"] = self._heat_capacity(c, y)
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
