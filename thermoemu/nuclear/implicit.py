"""Compiled implicit burner: scipy's BDF run cell by cell in numba over a data-driven network kernel.

Two parts, both compiled once per machine (``cache=True``, ``nogil``):

**The network kernel.** pynucastro's generated right-hand side re-evaluates every rate from its
REACLIB fit (an ``exp`` per set, partition functions, screening) on every call, ~100 us for mesa80.
At constant temperature and density a rate depends on the composition only through the electrons:
screening (Chugunov et al. 2007) through n_e, the tabulated weak rates through rho Y_e. So per burn
the temperature-only part of every REACLIB and derived rate is evaluated once (the sets and
partition functions read from pynucastro's generated rate functions, summed with the same
arithmetic), and per call the kernel multiplies in the screening factors (``exp(log_scor)``, the
factors the generated code adds to ``ln rate``; per pair, the n_e-independent factors of the fit
are taken once per burn), interpolates the weak tables (pynucastro's bilinear
``TableInterpolator``), forms pynucastro's approximate rates (``ap_pg``, ``nn_g``) and assembles
dY/dt, the weak-neutrino loss rate and the analytic Jacobian from the network's stoichiometry held
as index arrays (:class:`KernelData`). dY/dt is summed in pynucastro's order (rate pair by rate
pair): near equilibrium a pair cancels to round-off, and another order, measured, made BDF take
~10x the steps. It is the generated code's function to round-off (tested: 2e-15 of the largest
term for mesa80). The code is the same for every network: a network is arrays
(:func:`build_kernel_arrays`, cached by :func:`thermoemu.nuclear.network.load_burner_kernel`),
nothing network-specific is compiled.

**The integrator.** A line-by-line port of scipy's ``BDF`` (variable order 1-5 with the NDF
modification, quasi-constant step size, modified Newton with up to 4 iterations, Jacobian
re-evaluated only when Newton fails to converge, the same error norm, step-size and order control
and initial step) and of ``solve_ivp``'s dense output at requested times. So the compiled burner
takes the same steps as the scipy one up to round-off, and has the same rtol/atol semantics
(atol per component: 1e-20 on molar abundances). The linear systems (I - c J), 81 x 81 for mesa80,
are factored densely with threshold partial pivoting in a fill-reducing order of the isotopes
(minimum degree on the stoichiometric pattern, which puts n, p and 4He last) and zero multipliers
skipped.

The state is z = (Y_1..Y_n, E_nu): molar abundances and the weak-neutrino energy lost [erg g^-1],
as in :mod:`thermoemu.nuclear.burner`.
"""

from __future__ import annotations

import re
from collections import namedtuple

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the nuclear extra brings numba
    numba = None

__all__ = ["CELL_STATUS", "KERNEL_FORMAT", "KernelData", "base_rates", "build_kernel_arrays", "integrate_cells",
           "kernel_data", "kernel_jacobian", "kernel_rhs", "kernel_rhs_cells"]

#: Version of the kernel arrays; part of their cache file name.
KERNEL_FORMAT = 3
#: Codes :func:`integrate_cells` returns per cell.
CELL_STATUS = {0: "ok", 1: "step size fell below the spacing of floating-point numbers",
               2: "more than max_steps steps", 3: "rate table left its bounds (weak-rate rho Ye or T)"}

# rate kinds in the kernel
_BASE, _WEAK, _APPG_F, _APPG_R, _NNG_F, _NNG_R = range(6)

KernelData = namedtuple("KernelData", [
    "Z", "A",                       # (n,) float: charge and mass number
    "pairs",                        # (pairs, 5): z1, a1, z2, a2, ztilde of each screening pair
    "base_pair_ptr", "base_pair",   # screening pairs of base rate b: base_pair[ptr[b]:ptr[b+1]]
    "kind", "arg",                  # (rates,): kind, and its base / weak-table / approx-row index
    "approx",                       # (approx, 5) int: component base rates (see _approx_rate)
    "react_ptr", "react", "react_count",   # reactants in the flux (with multiplicity)
    "coef_ptr", "coef_nuc", "coef",         # net stoichiometric change of each nucleus
    "prefactor", "dens_exp", "ye_weight",   # 1/n! of identical reactants, power of rho, x Ye
    "nuc_group_ptr", "group_ptr", "term_rate", "term_coef",  # dY_i/dt as pynucastro sums it (see _ydot)
    "weak_nrho", "weak_nT", "weak_rhoy", "weak_T", "weak_rate", "weak_nu", "weak_nuc",
    "set_ptr", "set_coef", "set_pf",  # REACLIB sets of base rate b: set_coef[ptr[b]:ptr[b+1]] (7 each), + net pf?
    "pf_ptr", "pf_table", "pf_value", "pf_sign",  # terms of a base rate's net log partition function
    "pf_len", "pf_T9", "pf_log",    # partition function tables (log pf over T9)
    "order",                        # (n + 1,) elimination order of z (fill-reducing)
    "react3", "count3",             # (rates, 3): reactants and multiplicities, padded with -1 (derived)
    "pair_a", "pair_b", "pair_ca", "pair_cb",  # per group: two terms, the second may be the zero flux (derived)
    "base_pair3",                   # (base rates, 3): screening pairs, padded with -1 (derived)
    "base_r", "base_a", "weak_r", "weak_a", "approx_r",  # rates of each kind and their arg (derived)
    "consts",                       # m_u, q_e, k_B, hbar, N_A (cgs, pynucastro's values), index of n
])


# --------------------------------------------------------------------------------------------- arrays
_CALL = re.compile(r"^    (\w+)\(rate_eval, tf(?:, log_scor=([^)]*))?\)\s*$")
_APPROX_CALL = re.compile(r"^    (\w+)\(rate_eval, tf(?:, rho=rho, Y=Y)?\)\s*$")
_WEAK_CALL = re.compile(r"^    (\w+)\(rate_eval, T, rho=rho, Y=Y\)\s*$")
_PAIR = re.compile(r"^\s+scn_fac = ScreenFactors\(([^)]*)\)\s*\n"
                   r"\s+(log_scor_\w+) = _chugunov_2007\(plasma_state, scn_fac\)", re.MULTILINE)
_SKIP = re.compile(r"^\s*(#.*|tf = Tfactors\(T\)|rate_eval = RateEval\(\)|log_scor_\w+ = 0\.0|if True:|"
                   r"plasma_state = PlasmaState\(T, rho, Y, Z\)|scn_fac = ScreenFactors\(.*\)|"
                   r"log_scor_\w+ = _chugunov_2007\(plasma_state, scn_fac\)|return rate_eval|)$")


def _rate_calls(source):
    """Parse the generated ``do_rate_eval_screened``: base rate calls (name, screening pair names),
    weak-table rate names, approximate rate names, and the screening pairs (name -> z1, a1, z2, a2)."""
    m = re.search(r"^def do_rate_eval_screened\(t, Y, rho, T\):\n(.*?)(?=^\S|\Z)", source,
                  flags=re.DOTALL | re.MULTILINE)
    if m is None:
        raise RuntimeError("the generated network has no do_rate_eval_screened; regenerate it")
    body = m.group(1)
    pairs = {name: tuple(float(v) for v in args.split(",")) for args, name in _PAIR.findall(body)}
    base, weak, approx = [], [], []
    section = None
    for line in body.splitlines():
        if line.strip().startswith("# approximate rates"):
            section = "approx"
        if (c := _WEAK_CALL.match(line)) is not None:
            weak.append(c.group(1))
        elif section == "approx" and (c := _APPROX_CALL.match(line)) is not None:
            approx.append(c.group(1))
        elif (c := _CALL.match(line)) is not None:
            expr = c.group(2)
            names = [] if expr is None else [s.strip() for s in expr.split("+")]
            unknown = [s for s in names if s not in pairs]
            if unknown:
                raise RuntimeError(f"rate {c.group(1)} is screened by {unknown}, which the generated code never "
                                   "defines")
            base.append((c.group(1), names))
        elif not _SKIP.match(line):
            raise RuntimeError(f"the compiled burner does not understand this line of the generated network: "
                               f"{line.strip()!r}")
    return base, weak, approx, pairs


_TF = ("T9i", "T913i", "T913", "T9", "T953", "lnT9")   # the order pynucastro writes a REACLIB set in
_NUM = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_SET = re.compile(rf"^ln_set_rate = ({_NUM})((?:\s*\+\s*{_NUM}\*tf\.\w+)*)$")
_TERM = re.compile(rf"\+\s*({_NUM})\*tf\.(\w+)")
_PF_TABLE = re.compile(r"^(\w+)_log_pf = np\.interp\(tf\.T9, xp=(\w+)_temp_array, fp=\2_log_pf_array\)$")
_PF_CONST = re.compile(rf"^(\w+)_log_pf = ({_NUM})$")
_PF_NET = re.compile(r"^net_log_pf = (\w+_log_pf(?:\s*[-+]\s*\w+_log_pf)*)$")
_RATE_SKIP = re.compile(r"^(|#.*|rate = 0\.0|set_rate = np\.exp\(ln_set_rate\)|rate \+= set_rate|"
                        r"rate_eval\.\w+ = rate)$")


def _rate_sets(source, name):
    """REACLIB sets (7 coefficients each, in _TF order after the constant) of generated rate function
    ``name``, whether they add the net log partition function, and its terms [(nucleus, sign)] and
    {nucleus: constant log pf or table name}."""
    m = re.search(rf"^def {name}\(rate_eval, tf, log_scor=0\.0\):\n(.*?)(?=^@|^def |\Z)", source,
                  flags=re.DOTALL | re.MULTILINE)
    if m is None:
        raise RuntimeError(f"the generated network has no rate function {name}(rate_eval, tf, log_scor=0.0)")
    sets, pf_used, pf_def, net = [], [], {}, []
    for raw in m.group(1).replace("\\\n", " ").splitlines():
        line = " ".join(raw.split())
        if (c := _SET.match(line)) is not None:
            coef = [float(c.group(1))] + [0.0] * len(_TF)
            for value, factor in _TERM.findall(c.group(2)):
                if factor not in _TF:
                    raise RuntimeError(f"{name}: unknown temperature factor tf.{factor}")
                coef[1 + _TF.index(factor)] = float(value)
            sets.append(coef)
        elif line in ("ln_set_rate += log_scor", "ln_set_rate += net_log_pf + log_scor"):
            pf_used.append(line != "ln_set_rate += log_scor")
        elif (c := _PF_TABLE.match(line)) is not None:
            pf_def[c.group(1)] = c.group(2)
        elif (c := _PF_CONST.match(line)) is not None:
            pf_def[c.group(1)] = float(c.group(2))
        elif (c := _PF_NET.match(line)) is not None:
            tokens = re.findall(r"([-+]?)\s*(\w+)_log_pf", c.group(1))
            net = [(nuc, -1.0 if sign == "-" else 1.0) for sign, nuc in tokens]
        elif not _RATE_SKIP.match(line):
            raise RuntimeError(f"the compiled burner does not understand this line of {name}: {line!r}")
    if len(pf_used) != len(sets) or not sets:
        raise RuntimeError(f"{name}: {len(sets)} REACLIB sets but {len(pf_used)} screening lines")
    if any(pf_used) and not net:
        raise RuntimeError(f"{name}: uses net_log_pf without defining it")
    return sets, pf_used, net, pf_def


def _elimination_order(n, pattern):
    """Minimum-degree order of the symmetric pattern (set of (i, j)) of an n x n matrix."""
    adj = [set() for _ in range(n)]
    for i, j in pattern:
        if i != j:
            adj[i].add(j)
            adj[j].add(i)
    left, order = set(range(n)), []
    while left:
        v = min(left, key=lambda k: (len(adj[k] & left), k))
        nb = adj[v] & left
        for a in nb:  # eliminating v connects its neighbours (fill)
            adj[a] |= nb - {a}
        order.append(v)
        left.remove(v)
    return np.array(order, dtype=np.int64)


def build_kernel_arrays(pyna_net, module):
    """The arrays of :class:`KernelData` for a pynucastro network and its generated module.

    Parameters
    ----------
    pyna_net : pynucastro.PythonNetwork
        The network the module was written from (rates, their reactants, products and kinds).
    module : module
        The generated, post-processed network module (:func:`thermoemu.nuclear.network.generate`).

    Returns
    -------
    dict
        name -> numpy array, plus ``"base_names"`` (the base rates, in the order the generated
        temperature-only function must fill them).

    Raises
    ------
    RuntimeError
        Where the network holds a rate kind the kernel does not implement (the scipy burner,
        ``method="BDF"``, handles every network).
    """
    import inspect

    from pynucastro.constants import constants

    source = inspect.getsource(module)
    base_calls, weak_names, approx_names, pair_defs = _rate_calls(source)
    base_index = {name: b for b, (name, _) in enumerate(base_calls)}
    pair_names = list(pair_defs)
    pair_index = {p: i for i, p in enumerate(pair_names)}
    pairs = np.array([[*pair_defs[p], 0.5 * (np.cbrt(pair_defs[p][0]) + np.cbrt(pair_defs[p][2]))]
                      for p in pair_names], dtype=float).reshape(-1, 5)
    base_pair_ptr = np.zeros(len(base_calls) + 1, dtype=np.int64)
    base_pair = []
    for b, (_, names) in enumerate(base_calls):
        base_pair.extend(pair_index[s] for s in names)
        base_pair_ptr[b + 1] = len(base_pair)
    weak_index = {name: w for w, name in enumerate(weak_names)}

    n = int(module.nnuc)
    nuc = {}

    def jidx(nucleus):
        key = nucleus.raw
        if key not in nuc:
            nuc[key] = int(getattr(module, "j" + key))
        return nuc[key]

    kind, arg, approx = [], [], []
    react_ptr, react, react_count = [0], [], []
    coef_ptr, coef_nuc, coef = [0], [], []
    prefactor, dens_exp, ye_weight = [], [], []
    pattern = set()
    weak_nuc = np.zeros(len(weak_names), dtype=np.int64)
    for rate in pyna_net.get_rates():
        name = rate.fname
        kname = type(rate).__name__
        if name in weak_index:
            kind.append(_WEAK)
            arg.append(weak_index[name])
            weak_nuc[weak_index[name]] = jidx(rate.reactants[0])
        elif name in base_index and kname in ("ReacLibRate", "DerivedRate"):
            kind.append(_BASE)
            arg.append(base_index[name])
        elif kname == "ApproximateRate" and name in approx_names:
            r = {k: base_index[v.fname] for k, v in rate.rates.items()}
            if rate.approx_type == "ap_pg":
                common = [r["X(p,g)B"], r["X(p,a)A"], r.get("X(p,Y)C", -1)]
                kind.append(_APPG_R if rate.is_reverse else _APPG_F)
                approx.append(([r["B(g,a)A"], r["B(g,p)X"]] if rate.is_reverse else [r["A(a,g)B"], r["A(a,p)X"]])
                              + common)
            elif rate.approx_type == "nn_g":
                kind.append(_NNG_R if rate.is_reverse else _NNG_F)
                approx.append(([r["X(g,n)A"], r["B(g,n)X"], r["X(n,g)B"]] if rate.is_reverse
                               else [r["A(n,g)X"], r["X(n,g)B"], r["X(g,n)A"]]) + [-1, -1])
            else:
                raise RuntimeError(f"approximate rate {name} of type {rate.approx_type!r}: the compiled burner "
                                   "implements ap_pg and nn_g; use method='BDF'")
            arg.append(len(approx) - 1)
        else:
            raise RuntimeError(f"rate {name} ({kname}) is not one the compiled burner implements; use method='BDF'")
        skip = set(getattr(rate, "not_in_ydot_term", []) or [])
        counted = sorted({r for r in rate.reactants if r not in skip})
        for r in counted:
            react.append(jidx(r))
            react_count.append(rate.reactants.count(r))
        react_ptr.append(len(react))
        change = {}
        for r in set(rate.reactants) | set(rate.products):
            c = rate.product_count(r) - rate.reactant_count(r)
            if c != 0:
                change[jidx(r)] = c
        for i, c in sorted(change.items()):
            coef_nuc.append(i)
            coef.append(float(c))
            for r in counted:
                pattern.add((i, jidx(r)))
        coef_ptr.append(len(coef_nuc))
        prefactor.append(float(rate.prefactor))
        dens_exp.append(int(rate.dens_exp))
        ye_weight.append(bool(rate.use_ye_weighting))

    # dY_i/dt term by term in pynucastro's order: a sum over (forward, reverse) rate pairs, each
    # pair's terms added first. Near equilibrium the pair nearly cancels; summing the fluxes in
    # another order gives a noisier dY/dt at the round-off level that, measured, made BDF take
    # ~10x the steps (its Newton iteration works at atol = 1e-20 on trace abundances).
    rate_index = {rate.fname: r for r, rate in enumerate(pyna_net.get_rates())}
    nuc_group_ptr, group_ptr, term_rate, term_coef = [0], [0], [], []
    by_index = sorted(pyna_net.unique_nuclei, key=jidx)
    if [jidx(x) for x in by_index] != list(range(n)):
        raise RuntimeError("the generated module's isotope indices are not those of the pynucastro network")
    def net_coefficient(rate, nucleus):
        return 0 if rate is None else rate.product_count(nucleus) - rate.reactant_count(nucleus)

    for nucleus in by_index:
        for rp in pyna_net.nuclei_rate_pairs[nucleus]:
            if net_coefficient(rp.forward, nucleus) == 0 and net_coefficient(rp.reverse, nucleus) == 0:
                continue
            for rate in (rp.forward, rp.reverse):
                if rate is not None:
                    term_rate.append(rate_index[rate.fname])
                    term_coef.append(float(net_coefficient(rate, nucleus)))
            group_ptr.append(len(term_rate))
        nuc_group_ptr.append(len(group_ptr) - 1)

    infos = [getattr(module, f"{name}_info") for name in weak_names]
    max_rho = max([int(i[0]) for i in infos], default=1)
    max_T = max([int(i[1]) for i in infos], default=1)
    nw = len(infos)
    weak_nrho = np.zeros(nw, np.int64)
    weak_nT = np.zeros(nw, np.int64)
    weak_rhoy = np.zeros((nw, max_rho))
    weak_T = np.zeros((nw, max_T))
    weak_rate = np.zeros((nw, max_rho, max_T))
    weak_nu = np.zeros((nw, max_rho, max_T))
    for w, (nrho, nT, data) in enumerate(infos):
        data = np.asarray(data, float)
        nrho, nT = int(nrho), int(nT)
        weak_nrho[w], weak_nT[w] = nrho, nT
        weak_rhoy[w, :nrho] = data[::nT, 0]
        weak_T[w, :nT] = data[:nT, 1]
        weak_rate[w, :nrho, :nT] = data[:, 5].reshape(nrho, nT)  # TableIndex.RATE
        weak_nu[w, :nrho, :nT] = data[:, 6].reshape(nrho, nT)    # TableIndex.NU
    # temperature-only part of the base rates: REACLIB sets and partition functions
    set_ptr, set_coef, set_pf = [0], [], []
    pf_ptr, pf_table, pf_value, pf_sign = [0], [], [], []
    tables = {}
    for name, _ in base_calls:
        sets, pf_used, net_terms, pf_def = _rate_sets(source, name)
        set_coef.extend(sets)
        set_pf.extend(pf_used)
        set_ptr.append(len(set_coef))
        for nucleus, sign in net_terms:
            d = pf_def[nucleus]
            if isinstance(d, str):
                tables.setdefault(d, len(tables))
                pf_table.append(tables[d])
                pf_value.append(0.0)
            else:
                pf_table.append(-1)
                pf_value.append(d)
            pf_sign.append(sign)
        pf_ptr.append(len(pf_table))
    pf_arrays = [(np.asarray(getattr(module, f"{t}_temp_array"), float),
                  np.asarray(getattr(module, f"{t}_log_pf_array"), float)) for t in tables]
    max_pf = max([a.size for a, _ in pf_arrays], default=1)
    pf_len = np.array([a.size for a, _ in pf_arrays], np.int64)
    pf_T9 = np.zeros((len(pf_arrays), max_pf))
    pf_log = np.zeros((len(pf_arrays), max_pf))
    for i, (a, b) in enumerate(pf_arrays):
        pf_T9[i, :a.size], pf_log[i, :b.size] = a, b

    # the E_nu row and column are zero: it goes first; the isotopes by minimum degree after it
    order = np.concatenate([[n], _elimination_order(n, pattern)])
    j_n = int(getattr(module, "jn", -1))
    return {
        "Z": np.asarray(module.Z, float), "A": np.asarray(module.A, float),
        "pairs": pairs, "base_pair_ptr": base_pair_ptr, "base_pair": np.array(base_pair, np.int64),
        "kind": np.array(kind, np.int64), "arg": np.array(arg, np.int64),
        "approx": np.array(approx, np.int64).reshape(-1, 5),
        "react_ptr": np.array(react_ptr, np.int64), "react": np.array(react, np.int64),
        "react_count": np.array(react_count, np.int64),
        "coef_ptr": np.array(coef_ptr, np.int64), "coef_nuc": np.array(coef_nuc, np.int64),
        "coef": np.array(coef, float),
        "prefactor": np.array(prefactor, float), "dens_exp": np.array(dens_exp, np.int64),
        "ye_weight": np.array(ye_weight, np.bool_),
        "nuc_group_ptr": np.array(nuc_group_ptr, np.int64), "group_ptr": np.array(group_ptr, np.int64),
        "term_rate": np.array(term_rate, np.int64), "term_coef": np.array(term_coef, float),
        "weak_nrho": weak_nrho, "weak_nT": weak_nT, "weak_rhoy": weak_rhoy, "weak_T": weak_T,
        "weak_rate": weak_rate, "weak_nu": weak_nu, "weak_nuc": weak_nuc,
        "set_ptr": np.array(set_ptr, np.int64), "set_coef": np.array(set_coef, float).reshape(-1, 7),
        "set_pf": np.array(set_pf, np.bool_),
        "pf_ptr": np.array(pf_ptr, np.int64), "pf_table": np.array(pf_table, np.int64),
        "pf_value": np.array(pf_value, float), "pf_sign": np.array(pf_sign, float),
        "pf_len": pf_len, "pf_T9": pf_T9, "pf_log": pf_log,
        "order": order,
        "consts": np.array([constants.m_u_C18, constants.q_e, constants.k, constants.hbar, constants.N_A, j_n], float),
        "base_names": np.array([name for name, _ in base_calls]),
    }


def kernel_data(arrays):
    """:class:`KernelData` from the arrays of :func:`build_kernel_arrays` (e.g. as loaded from npz), with
    the fixed-width forms the kernel's inner loops use derived here."""
    arrays = dict(arrays)
    nr = arrays["kind"].size
    ptr, react, count = arrays["react_ptr"], arrays["react"], arrays["react_count"]
    if np.diff(ptr).max(initial=0) > 3:
        raise RuntimeError("a rate with more than three distinct reactants: the compiled burner takes at most three")
    react3 = np.full((nr, 3), -1, np.int64)
    count3 = np.zeros((nr, 3), np.int64)
    for r in range(nr):
        q = slice(ptr[r], ptr[r + 1])
        react3[r, :ptr[r + 1] - ptr[r]] = react[q]
        count3[r, :ptr[r + 1] - ptr[r]] = count[q]
    gp, tr, tc = arrays["group_ptr"], arrays["term_rate"], arrays["term_coef"]
    if np.diff(gp).max(initial=0) > 2:
        raise RuntimeError("a rate pair with more than two rates: the compiled burner sums at most two per pair")
    ng = gp.size - 1
    pair_a, pair_b = np.zeros(ng, np.int64), np.full(ng, nr, np.int64)   # flux[nr] is zero
    pair_ca, pair_cb = np.zeros(ng), np.zeros(ng)
    for g in range(ng):
        pair_a[g], pair_ca[g] = tr[gp[g]], tc[gp[g]]
        if gp[g + 1] - gp[g] == 2:
            pair_b[g], pair_cb[g] = tr[gp[g] + 1], tc[gp[g] + 1]
    bp, bq = arrays["base_pair_ptr"], arrays["base_pair"]
    if np.diff(bp).max(initial=0) > 3:
        raise RuntimeError("a rate screened by more than three pairs: the compiled burner takes at most three")
    base_pair3 = np.full((bp.size - 1, 3), -1, np.int64)
    for b in range(bp.size - 1):
        base_pair3[b, :bp[b + 1] - bp[b]] = bq[bp[b]:bp[b + 1]]
    kind, arg = arrays["kind"], arrays["arg"]
    arrays.update(react3=react3, count3=count3, pair_a=pair_a, pair_b=pair_b, pair_ca=pair_ca, pair_cb=pair_cb,
                  base_pair3=base_pair3, base_r=np.flatnonzero(kind == _BASE), base_a=arg[kind == _BASE],
                  weak_r=np.flatnonzero(kind == _WEAK), weak_a=arg[kind == _WEAK],
                  approx_r=np.flatnonzero(kind > _WEAK))
    return KernelData(*[np.ascontiguousarray(arrays[f]) for f in KernelData._fields])


# --------------------------------------------------------------------------------------------- kernel
if numba is not None:
    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")
    _LN10 = np.log(10.0)

    @_njit
    def _smooth_clip(x, limit, start):
        """pynucastro.screening.smooth_clip."""
        if limit < start:
            lower = limit
            upper = x
        else:
            lower = x
            upper = limit
        if x < min(limit, start):
            return lower
        if x > max(limit, start):
            return upper
        tmp = np.pi * (x - min(limit, start)) / (start - limit)
        f = (1 - np.cos(tmp)) / 2
        return (1 - f) * lower + f * upper

    @_njit
    def _chugunov_2007(temp, n_e, gamma_e_fac, z1, a1, z2, a2, ztilde, m_u, q_e, k_B, hbar):
        """pynucastro.screening.chugunov_2007, same operations, plasma and pair given as numbers."""
        mu12 = a1 * a2 / (a1 + a2)
        z_factor = z1 * z2
        n_i = n_e / ztilde**3
        m_i = 2 * mu12 * m_u
        T_p = hbar / k_B * q_e * np.sqrt(4 * np.pi * z_factor * n_i / m_i)
        T_norm = temp / T_p
        T_norm = _smooth_clip(T_norm, 0.1, 0.2)
        Gamma = gamma_e_fac * z1 * z2 / (ztilde * T_norm * T_p)
        Gamma = _smooth_clip(Gamma, 600.0, 590.0)
        zeta = np.cbrt(4 / (3 * np.pi**2 * T_norm**2))
        fit_alpha = 0.022
        fit_beta = 0.41 - 0.6 / Gamma
        fit_gamma = 0.06 + 2.2 / Gamma
        poly = 1 + zeta * (fit_alpha + zeta * (fit_beta + fit_gamma * zeta))
        gamtilde = Gamma / np.cbrt(poly)
        A1 = 2.7822
        A2 = 98.34
        A3 = np.sqrt(3) - A1 / np.sqrt(A2)
        B1 = -1.7476
        B2 = 66.07
        B3 = 1.12
        B4 = 65
        gamtilde2 = gamtilde**2
        term1 = 1 / np.sqrt(A2 + gamtilde)
        term2 = 1 / (1 + gamtilde)
        term3 = gamtilde**2 / (B2 + gamtilde)
        term4 = gamtilde2 / (B4 + gamtilde2)
        h = gamtilde**(3 / 2) * (A1 * term1 + A3 * term2) + B1 * term3 + B3 * term4
        return max(h, 0.0)

    @_njit
    def _base_rates(T, D, out):
        """out[c, b]: temperature-only (unscreened) rate b at T[c] [K], as pynucastro's generated rate
        functions compute it (Tfactors, the REACLIB sets in their order, np.interp of the partition
        functions): sum over sets of exp(a0 + a1/T9 + a2 T9^-1/3 + a3 T9^1/3 + a4 T9 + a5 T9^5/3
        + a6 ln T9 [+ net log pf]). Each partition-function table is interpolated once per T (the rates
        share them)."""
        pf = np.empty(D.pf_len.size)
        for c in range(T.size):
            T9 = T[c] / 1.e9
            T9i = 1.0 / T9
            tf = (T9i, T9i**(1. / 3.), T9**(1. / 3.), T9, T9**(5. / 3.), np.log(T9))
            for t in range(D.pf_len.size):
                L = D.pf_len[t]
                pf[t] = np.interp(T9, D.pf_T9[t, :L], D.pf_log[t, :L])
            for b in range(out.shape[1]):
                net = 0.0
                for q in range(D.pf_ptr[b], D.pf_ptr[b + 1]):
                    t = D.pf_table[q]
                    if t >= 0:
                        v = pf[t]
                    else:
                        v = D.pf_value[q]
                    if q == D.pf_ptr[b]:
                        net = v if D.pf_sign[q] > 0 else -v
                    else:
                        net = net + v if D.pf_sign[q] > 0 else net - v
                rate = 0.0
                for q in range(D.set_ptr[b], D.set_ptr[b + 1]):
                    a = D.set_coef[q]
                    ln = a[0] + a[1] * tf[0] + a[2] * tf[1] + a[3] * tf[2] + a[4] * tf[3] + a[5] * tf[4] + a[6] * tf[5]
                    if D.set_pf[q]:
                        ln += net
                    rate += np.exp(ln)
                out[c, b] = rate

    @_njit
    def _pair_constants(T, D, pc):
        """Per screening pair at temperature T [K]: chugunov_2007's factors that do not depend on the
        composition. With n_e the electron density, T_p = pc[p, 0] sqrt(n_e), Gamma = pc[p, 1] cbrt(n_e)
        and zeta = pc[p, 2] cbrt(n_e) wherever neither of its clips acts; pc[p, 3] is the largest
        sqrt(n_e) at which T / T_p stays above its clip (0.2), with a margin."""
        m_u, q_e, k_B, hbar = D.consts[0], D.consts[1], D.consts[2], D.consts[3]
        for p in range(D.pairs.shape[0]):
            z1, a1, z2, a2, ztilde = D.pairs[p, 0], D.pairs[p, 1], D.pairs[p, 2], D.pairs[p, 3], D.pairs[p, 4]
            mu12 = a1 * a2 / (a1 + a2)
            m_i = 2 * mu12 * m_u
            c_Tp = hbar / k_B * q_e * np.sqrt(4 * np.pi * z1 * z2 / ztilde**3 / m_i)
            pc[p, 0] = c_Tp
            pc[p, 1] = q_e**2 / k_B * np.cbrt(4 * np.pi / 3) * z1 * z2 / (ztilde * T)
            pc[p, 2] = np.cbrt(4 * c_Tp**2 / (3 * np.pi**2 * T**2))
            pc[p, 3] = 0.999 * T / (0.2 * c_Tp)

    @_njit
    def _burn_constants(T, rho, D, pc, cf, wk):
        """What does not change in a burn at (T, rho): the screening pairs' factors (pc, _pair_constants),
        each rate's prefactor * rho^dens_exp (cf), and the weak tables interpolated to log T (wk[w, i]:
        value and slope in log rho Ye of the rate, then of the neutrino loss, on table cell i, so that
        pynucastro's bilinear formula becomes wk[w, i, 0] + wk[w, i, 1] (log rho Ye - rhoy_i)).
        Returns False where T is outside a weak-rate table."""
        _pair_constants(T, D, pc)
        for r in range(D.kind.size):
            d = D.dens_exp[r]
            c = D.prefactor[r]
            if d == 1:
                c *= rho
            elif d != 0:
                c *= rho**d
            cf[r] = c
        logT = np.log10(T)
        ok = True
        for w in range(D.weak_nrho.size):
            nT = D.weak_nT[w]
            temp = D.weak_T[w]
            if logT < temp[0] or logT > temp[nT - 1]:
                ok = False
                continue
            j = _table_index(temp, nT, logT)
            dlogT = temp[j + 1] - temp[j]
            rhoy = D.weak_rhoy[w]
            for col in range(2):
                table = D.weak_rate if col == 0 else D.weak_nu
                for i in range(D.weak_nrho[w] - 1):
                    dlogrho = rhoy[i + 1] - rhoy[i]
                    f_ij = table[w, i, j]
                    f_ip1j = table[w, i + 1, j]
                    f_ijp1 = table[w, i, j + 1]
                    f_ip1jp1 = table[w, i + 1, j + 1]
                    C = (f_ijp1 - f_ij) / dlogT
                    B = (f_ip1j - f_ij) / dlogrho
                    A = (f_ip1jp1 - B * dlogrho - C * dlogT - f_ij) / (dlogrho * dlogT)
                    wk[w, i, 2 * col] = f_ij + C * (logT - temp[j])
                    wk[w, i, 2 * col + 1] = B + A * (logT - temp[j])
        return ok

    @_njit
    def _chugunov_fast(gamma, zeta):
        """chugunov_2007 from Gamma and zeta where no clip acts (the same fit, factored)."""
        fit_beta = 0.41 - 0.6 / gamma
        fit_gamma = 0.06 + 2.2 / gamma
        poly = 1 + zeta * (0.022 + zeta * (fit_beta + fit_gamma * zeta))
        gt = gamma / np.cbrt(poly)
        A1 = 2.7822
        A2 = 98.34
        A3 = np.sqrt(3) - A1 / np.sqrt(A2)
        gt2 = gt * gt
        h = gt * np.sqrt(gt) * (A1 / np.sqrt(A2 + gt) + A3 / (1 + gt)) - 1.7476 * gt2 / (66.07 + gt) \
            + 1.12 * gt2 / (65 + gt2)
        return max(h, 0.0)

    @_njit
    def _table_index(grid, count, x):
        """max(0, min(count - 1, searchsorted(grid[:count], x)) - 1), as pynucastro's TableInterpolator."""
        i = 0
        while i < count and grid[i] < x:
            i += 1
        return max(0, min(count - 1, i) - 1)

    @_njit
    def _weak_interpolate(nrho, nT, rhoy, temp, table, w, logrhoy, logT):
        """pynucastro's bilinear TableInterpolator.interpolate of weak table ``w`` (log10 values)."""
        i = _table_index(rhoy, nrho, logrhoy)
        j = _table_index(temp, nT, logT)
        dlogrho = rhoy[i + 1] - rhoy[i]
        dlogT = temp[j + 1] - temp[j]
        f_ij = table[w, i, j]
        f_ip1j = table[w, i + 1, j]
        f_ijp1 = table[w, i, j + 1]
        f_ip1jp1 = table[w, i + 1, j + 1]
        Dc = f_ij
        C = (f_ijp1 - f_ij) / dlogT
        B = (f_ip1j - f_ij) / dlogrho
        A = (f_ip1jp1 - B * dlogrho - C * dlogT - Dc) / (dlogrho * dlogT)
        return (A * (logrhoy - rhoy[i]) * (logT - temp[j]) + B * (logrhoy - rhoy[i]) + C * (logT - temp[j]) + Dc)

    @_njit
    def _rates(Y, rho, T, base, D, screened, pc, wk, weak_ok, log_scor, kb, k):
        """Rates of the network's reactions at (Y, rho, T) into ``k`` (kb: screened base rates; pc, wk and
        weak_ok: from _burn_constants; log_scor: work, the screening factor of each pair).

        Returns (Ye, weak-neutrino loss rate [erg g^-1 s^-1], ok); ok is False where rho Ye or T
        left a weak-rate table (pynucastro raises there).
        """
        n = Y.size
        zy = 0.0
        ay = 0.0
        ytot = 0.0
        for i in range(n):
            zy += D.Z[i] * Y[i]
            ay += D.A[i] * Y[i]
            ytot += Y[i]
        ye = zy / ay
        m_u, q_e, k_B, hbar, N_A = D.consts[0], D.consts[1], D.consts[2], D.consts[3], D.consts[4]
        nb = base.size
        if screened and D.pairs.shape[0] > 0:
            # pynucastro's PlasmaState: only n_e (and gamma_e_fac, from it) enter chugunov_2007
            abar = 1 / ytot
            zbar = zy / ytot
            mbar = abar * m_u
            ntot = rho / mbar
            n_e = zbar * ntot
            sq = np.sqrt(n_e)
            cb = np.cbrt(n_e)
            gamma_e_fac = q_e**2 / k_B * np.cbrt(4 * np.pi / 3) * cb
            for p in range(D.pairs.shape[0]):
                gamma = pc[p, 1] * cb
                if sq < pc[p, 3] and gamma < 589.0:
                    h = _chugunov_fast(gamma, pc[p, 2] * cb)
                else:
                    h = _chugunov_2007(T, n_e, gamma_e_fac, D.pairs[p, 0], D.pairs[p, 1], D.pairs[p, 2],
                                       D.pairs[p, 3], D.pairs[p, 4], m_u, q_e, k_B, hbar)
                log_scor[p] = np.exp(h)   # the screening factor itself
            for b in range(nb):
                x = base[b]
                p = D.base_pair3[b, 0]
                if p >= 0:
                    x *= log_scor[p]
                    p = D.base_pair3[b, 1]
                    if p >= 0:
                        x *= log_scor[p]
                        p = D.base_pair3[b, 2]
                        if p >= 0:
                            x *= log_scor[p]
                kb[b] = x
        else:
            for b in range(nb):
                kb[b] = base[b]
        ok = True
        nu_loss = 0.0
        for q in range(D.base_r.size):
            k[D.base_r[q]] = kb[D.base_a[q]]
        if D.weak_r.size > 0:
            logrhoy = np.log10(rho * ye)
        for q in range(D.weak_r.size):
            r = D.weak_r[q]
            a = D.weak_a[q]
            nrho = D.weak_nrho[a]
            rhoy = D.weak_rhoy[a]
            if not weak_ok or logrhoy < rhoy[0] or logrhoy > rhoy[nrho - 1]:
                ok = False
                k[r] = np.nan
                continue
            i = _table_index(rhoy, nrho, logrhoy)
            x = logrhoy - rhoy[i]
            k[r] = np.exp(_LN10 * (wk[a, i, 0] + wk[a, i, 1] * x))
            nu_loss += N_A * Y[D.weak_nuc[a]] * np.exp(_LN10 * (wk[a, i, 2] + wk[a, i, 3] * x))
        for q in range(D.approx_r.size):
            r = D.approx_r[q]
            kind = D.kind[r]
            c = D.approx[D.arg[r]]
            if kind == _APPG_F or kind == _APPG_R:
                r_pg = kb[c[2]]
                r_pa = kb[c[3]]
                r_pY = kb[c[4]] if c[4] >= 0 else 0.0
                if kind == _APPG_F:
                    k[r] = kb[c[0]] + kb[c[1]] * r_pg / (r_pg + r_pa + r_pY)
                else:
                    k[r] = kb[c[0]] + r_pa * kb[c[1]] / (r_pg + r_pa + r_pY)
            else:
                Yn = Y[int(D.consts[5])]
                if kind == _NNG_F:
                    k[r] = 2.0 * kb[c[0]] * kb[c[1]] / (rho * Yn * kb[c[1]] + kb[c[2]])
                else:
                    k[r] = kb[c[0]] * kb[c[1]] / (rho * Yn * kb[c[2]] + kb[c[0]])
        return ye, nu_loss, ok

    @_njit
    def _power(y, c):
        if c == 1:
            return y
        if c == 2:
            return y**2
        return y**c

    @_njit
    def _ydot(Y, ye, k, D, cf, f, flux):
        """dY/dt into f[:n], as pynucastro's ydot_eq evaluates it: flux = prefactor rho^d (Ye) Y_a^c_a ..
        rate, the reactants in pynucastro's order; per nucleus a sum over rate pairs, each pair's
        (at most two) terms first. flux has one more entry than rates, zero: the second term of a
        pair of one rate (x + 0.0 is x, and x * 1.0 is x: the same arithmetic as the generated code)."""
        nr = D.kind.size
        for r in range(nr):
            x = cf[r] * ye if D.ye_weight[r] else cf[r]
            a = D.react3[r, 0]
            if a >= 0:
                x *= _power(Y[a], D.count3[r, 0])
                b = D.react3[r, 1]
                if b >= 0:
                    x *= _power(Y[b], D.count3[r, 1])
                    c = D.react3[r, 2]
                    if c >= 0:
                        x *= _power(Y[c], D.count3[r, 2])
            flux[r] = x * k[r]
        flux[nr] = 0.0
        for i in range(Y.size):
            s = 0.0
            for g in range(D.nuc_group_ptr[i], D.nuc_group_ptr[i + 1]):
                s += D.pair_ca[g] * flux[D.pair_a[g]] + D.pair_cb[g] * flux[D.pair_b[g]]
            f[i] = s

    @_njit
    def _reactant_derivative(Y, D, r, q, base):
        """d(rate r)/dY of its reactant slot ``q`` (``base``: the rate's coefficient times k, and Ye where
        weighted): the multiplicity power rule for that reactant, times the other reactants' abundances."""
        jr = D.react[q]
        c = D.react_count[q]
        d = base
        if c == 2:
            d *= 2 * Y[jr]
        elif c > 2:
            d *= c * Y[jr]**(c - 1)
        for s in range(D.react_ptr[r], D.react_ptr[r + 1]):
            if s != q:
                y = Y[D.react[s]]
                cs = D.react_count[s]
                d *= y if cs == 1 else y**cs
        return d

    @_njit
    def _jacobian(Y, ye, k, D, cf, J):
        """d(dY/dt)/dY into J[:n, :n] (pynucastro's analytic Jacobian: rates and Ye held fixed);
        the rest of J (the E_nu row and column) is zeroed."""
        m = J.shape[0]
        for i in range(m):
            for j in range(m):
                J[i, j] = 0.0
        for r in range(D.kind.size):
            base = (cf[r] * ye if D.ye_weight[r] else cf[r]) * k[r]
            for q in range(D.react_ptr[r], D.react_ptr[r + 1]):
                d = _reactant_derivative(Y, D, r, q, base)
                for s in range(D.coef_ptr[r], D.coef_ptr[r + 1]):
                    J[D.coef_nuc[s], D.react[q]] += D.coef[s] * d

    @_njit
    def _fun(z, rho, T, base, D, screened, C, f):
        """f = dz/dt for z = (Y, E_nu); returns ok (False: weak table left). C: the burn's constants
        and work arrays (pc, cf, wk, weak_ok, log_scor, kb, k, flux)."""
        pc, cf, wk, weak_ok, log_scor, kb, k, flux = C
        n = z.size - 1
        Y = z[:n]
        ye, nu_loss, ok = _rates(Y, rho, T, base, D, screened, pc, wk, weak_ok, log_scor, kb, k)
        _ydot(Y, ye, k, D, cf, f, flux)
        f[n] = nu_loss
        return ok

    @_njit
    def _jac(z, rho, T, base, D, screened, C, J):
        pc, cf, wk, weak_ok, log_scor, kb, k, _ = C
        n = z.size - 1
        Y = z[:n]
        ye, _, ok = _rates(Y, rho, T, base, D, screened, pc, wk, weak_ok, log_scor, kb, k)
        _jacobian(Y, ye, k, D, cf, J)
        return ok

    # ----------------------------------------------------------------------------------- BDF (scipy)
    _MAX_ORDER = 5
    _NEWTON_MAXITER = 4
    _MIN_FACTOR = 0.2
    _MAX_FACTOR = 10.0
    _EPS = np.finfo(float).eps
    _KAPPA = np.array([0, -0.1850, -1 / 9, -0.0823, -0.0415, 0])
    _GAMMA = np.hstack((0, np.cumsum(1 / np.arange(1, _MAX_ORDER + 1))))
    _ALPHA = (1 - _KAPPA) * _GAMMA
    _ERROR_CONST = _KAPPA * _GAMMA + 1 / np.arange(1, _MAX_ORDER + 2)
    _PIVOT_THRESHOLD = 0.1

    @_njit
    def _rms(x):
        s = 0.0
        for v in x:
            s += v * v
        return np.sqrt(s) / np.sqrt(x.size)

    @_njit
    def _scaled_rms(x, scale):
        s = 0.0
        for i in range(x.size):
            v = x[i] / scale[i]
            s += v * v
        return np.sqrt(s) / np.sqrt(x.size)

    @_njit
    def _compute_R(order, factor):
        M = np.zeros((order + 1, order + 1))
        for i in range(1, order + 1):
            for j in range(1, order + 1):
                M[i, j] = (i - 1 - factor * j) / i
        for j in range(order + 1):
            M[0, j] = 1.0
        for i in range(1, order + 1):
            for j in range(order + 1):
                M[i, j] *= M[i - 1, j]
        return M

    @_njit
    def _change_D(Dd, order, factor, tmp):
        """scipy's change_D: D[:order + 1] = (R U)^T D[:order + 1]."""
        R = _compute_R(order, factor)
        U = _compute_R(order, 1.0)
        RU = R @ U
        m = Dd.shape[1]
        for i in range(order + 1):
            for c in range(m):
                s = 0.0
                for j in range(order + 1):
                    s += RU[j, i] * Dd[j, c]
                tmp[i, c] = s
        for i in range(order + 1):
            for c in range(m):
                Dd[i, c] = tmp[i, c]

    @_njit
    def _lu_factor(J, c, order, LU, piv, cols):
        """LU of (I - c J) in the elimination ``order``, threshold partial pivoting, zero multipliers and
        the pivot row's zeros skipped (cols: work, m integers)."""
        m = J.shape[0]
        for i in range(m):
            oi = order[i]
            for j in range(m):
                LU[i, j] = -c * J[oi, order[j]]
            LU[i, i] += 1.0
        for kk in range(m):
            best = kk
            big = abs(LU[kk, kk])
            for i in range(kk + 1, m):
                if abs(LU[i, kk]) > big:
                    big = abs(LU[i, kk])
                    best = i
            if abs(LU[kk, kk]) < _PIVOT_THRESHOLD * big:
                for j in range(m):
                    tmp = LU[kk, j]
                    LU[kk, j] = LU[best, j]
                    LU[best, j] = tmp
            else:
                best = kk
            piv[kk] = best
            p = LU[kk, kk]
            if p == 0.0:
                continue
            nz = 0
            for j in range(kk + 1, m):   # the pivot row's nonzeros: the row updates touch only these
                if LU[kk, j] != 0.0:
                    cols[nz] = j
                    nz += 1
            for i in range(kk + 1, m):
                lo = LU[i, kk]
                if lo != 0.0:
                    lo /= p
                    LU[i, kk] = lo
                    for q in range(nz):
                        j = cols[q]
                        LU[i, j] -= lo * LU[kk, j]

    @_njit
    def _lu_compress(LU, Lp, Li, Lv, Up, Ui, Uv, dinv):
        """The nonzeros of the factors, row by row (the solves run ~10x as often as the factorization)."""
        m = LU.shape[0]
        nl = 0
        nu = 0
        for i in range(m):
            Lp[i] = nl
            for j in range(i):
                if LU[i, j] != 0.0:
                    Li[nl] = j
                    Lv[nl] = LU[i, j]
                    nl += 1
            Up[i] = nu
            for j in range(i + 1, m):
                if LU[i, j] != 0.0:
                    Ui[nu] = j
                    Uv[nu] = LU[i, j]
                    nu += 1
            dinv[i] = 1.0 / LU[i, i]
        Lp[m] = nl
        Up[m] = nu

    @_njit
    def _lu_solve(piv, order, Lp, Li, Lv, Up, Ui, Uv, dinv, b, x, w):
        """x = (I - c J)^-1 b with the compressed factors of _lu_factor (w: work)."""
        m = b.size
        for i in range(m):
            w[i] = b[order[i]]
        for kk in range(m):
            p = piv[kk]
            if p != kk:
                tmp = w[kk]
                w[kk] = w[p]
                w[p] = tmp
        for i in range(1, m):
            s = w[i]
            for q in range(Lp[i], Lp[i + 1]):
                s -= Lv[q] * w[Li[q]]
            w[i] = s
        for i in range(m - 1, -1, -1):
            s = w[i]
            for q in range(Up[i], Up[i + 1]):
                s -= Uv[q] * w[Ui[q]]
            w[i] = s * dinv[i]
        for i in range(m):
            x[order[i]] = w[i]

    @_njit
    def _burn_cell(z0, rho, T, base, D, screened, times, rtol, atol, max_steps, out, eps_nu_out, C, ws):
        """Integrate one cell from t = 0 to times[-1] with scipy's BDF; the state at every ``times``
        into ``out`` (len(times), m) and the weak-neutrino loss rate there into ``eps_nu_out``.

        Returns (status, nfev, njev, nlu, steps): status as :data:`CELL_STATUS`.
        """
        (f, f0, y, y_new, y_predict, d, dy, scale, psi, rhs, w, Dd, tmpD, J, LU, piv, Lp, Li, Lv, Up, Ui, Uv,
         dinv) = ws
        m = z0.size
        order_elim = D.order
        nfev = 0
        njev = 0
        nlu = 0
        steps = 0
        t_bound = times[-1]
        n_out = times.size
        q_out = 0
        # initial derivative, step and Jacobian (BDF.__init__)
        for i in range(m):
            y[i] = z0[i]
        if not _fun(y, rho, T, base, D, screened, C, f0):
            return 3, 1, 0, 0, 0
        nfev += 1
        # select_initial_step(order = 1)
        for i in range(m):
            scale[i] = atol[i] + abs(y[i]) * rtol
        d0 = _scaled_rms(y, scale)
        d1 = _scaled_rms(f0, scale)
        if d0 < 1e-5 or d1 < 1e-5:
            h0 = 1e-6
        else:
            h0 = 0.01 * d0 / d1
        h0 = min(h0, t_bound)
        for i in range(m):
            y_new[i] = y[i] + h0 * f0[i]
        if not _fun(y_new, rho, T, base, D, screened, C, f):
            return 3, nfev + 1, 0, 0, 0
        nfev += 1
        for i in range(m):
            dy[i] = f[i] - f0[i]
        d2 = _scaled_rms(dy, scale) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** 0.5
        h_abs = min(100 * h0, h1, t_bound)
        newton_tol = max(10 * _EPS / rtol, min(0.03, rtol ** 0.5))
        if not _jac(y, rho, T, base, D, screened, C, J):
            return 3, nfev, 1, 0, 0
        njev += 1
        for i in range(Dd.shape[0]):
            for c in range(m):
                Dd[i, c] = 0.0
        for c in range(m):
            Dd[0, c] = y[c]
            Dd[1, c] = f0[c] * h_abs
        order = 1
        n_equal_steps = 0
        lu_ok = False
        t = 0.0
        while True:
            if steps >= max_steps:
                return 2, nfev, njev, nlu, steps
            # ---- BDF._step_impl
            min_step = 10 * abs(np.nextafter(t, np.inf) - t)
            if h_abs < min_step:
                change_factor = min_step / h_abs
                h_abs = min_step
                _change_D(Dd, order, change_factor, tmpD)
                n_equal_steps = 0
            current_jac = False
            accepted = False
            n_iter = 0
            error_norm = 0.0
            t_new = t
            while not accepted:
                if h_abs < min_step:
                    return 1, nfev, njev, nlu, steps
                t_new = t + h_abs
                if t_new - t_bound > 0:
                    t_new = t_bound
                    _change_D(Dd, order, abs(t_new - t) / h_abs, tmpD)
                    n_equal_steps = 0
                    lu_ok = False
                h = t_new - t
                h_abs = abs(h)
                for c in range(m):
                    s = 0.0
                    for i in range(order + 1):
                        s += Dd[i, c]
                    y_predict[c] = s
                    scale[c] = atol[c] + rtol * abs(s)
                    s = 0.0
                    for i in range(1, order + 1):
                        s += Dd[i, c] * _GAMMA[i]
                    psi[c] = s / _ALPHA[order]
                converged = False
                cc = h / _ALPHA[order]
                table_left = False
                while not converged:
                    if not lu_ok:
                        _lu_factor(J, cc, order_elim, LU, piv, Lp)   # Lp: work until _lu_compress fills it
                        _lu_compress(LU, Lp, Li, Lv, Up, Ui, Uv, dinv)
                        nlu += 1
                        lu_ok = True
                    # ---- solve_bdf_system
                    for c in range(m):
                        y_new[c] = y_predict[c]
                        d[c] = 0.0
                    dy_norm_old = -1.0
                    n_iter = 0
                    for kit in range(_NEWTON_MAXITER):
                        n_iter = kit + 1
                        ok = _fun(y_new, rho, T, base, D, screened, C, f)
                        nfev += 1
                        if not ok:
                            table_left = True
                        finite = True
                        for c in range(m):
                            if not np.isfinite(f[c]):
                                finite = False
                                break
                        if not finite:
                            break
                        for c in range(m):
                            rhs[c] = cc * f[c] - psi[c] - d[c]
                        _lu_solve(piv, order_elim, Lp, Li, Lv, Up, Ui, Uv, dinv, rhs, dy, w)
                        dy_norm = _scaled_rms(dy, scale)
                        if dy_norm_old < 0:
                            rate = -1.0
                        else:
                            rate = dy_norm / dy_norm_old
                        if rate >= 0 and (rate >= 1 or
                                          rate ** (_NEWTON_MAXITER - kit) / (1 - rate) * dy_norm > newton_tol):
                            break
                        for c in range(m):
                            y_new[c] += dy[c]
                            d[c] += dy[c]
                        if dy_norm == 0 or (rate >= 0 and rate / (1 - rate) * dy_norm < newton_tol):
                            converged = True
                            break
                        dy_norm_old = dy_norm
                    if table_left:
                        return 3, nfev, njev, nlu, steps
                    if not converged:
                        if current_jac:
                            break
                        if not _jac(y_predict, rho, T, base, D, screened, C, J):
                            return 3, nfev, njev + 1, nlu, steps
                        njev += 1
                        lu_ok = False
                        current_jac = True
                if not converged:
                    h_abs *= 0.5
                    _change_D(Dd, order, 0.5, tmpD)
                    n_equal_steps = 0
                    lu_ok = False
                    continue
                safety = 0.9 * (2 * _NEWTON_MAXITER + 1) / (2 * _NEWTON_MAXITER + n_iter)
                for c in range(m):
                    scale[c] = atol[c] + rtol * abs(y_new[c])
                    dy[c] = _ERROR_CONST[order] * d[c]
                error_norm = _scaled_rms(dy, scale)
                if error_norm > 1:
                    factor = max(_MIN_FACTOR, safety * error_norm ** (-1 / (order + 1)))
                    h_abs *= factor
                    _change_D(Dd, order, factor, tmpD)
                    n_equal_steps = 0
                else:
                    accepted = True
            steps += 1
            n_equal_steps += 1
            t = t_new
            for c in range(m):
                Dd[order + 2, c] = d[c] - Dd[order + 1, c]
                Dd[order + 1, c] = d[c]
            for i in range(order, -1, -1):
                for c in range(m):
                    Dd[i, c] += Dd[i + 1, c]
            if n_equal_steps >= order + 1:
                if order > 1:
                    for c in range(m):
                        dy[c] = _ERROR_CONST[order - 1] * Dd[order, c]
                    error_m_norm = _scaled_rms(dy, scale)
                else:
                    error_m_norm = np.inf
                if order < _MAX_ORDER:
                    for c in range(m):
                        dy[c] = _ERROR_CONST[order + 1] * Dd[order + 2, c]
                    error_p_norm = _scaled_rms(dy, scale)
                else:
                    error_p_norm = np.inf
                # factors = error_norms ** (-1 / arange(order, order + 3)); the first largest wins (np.argmax)
                norms = (error_m_norm, error_norm, error_p_norm)
                best = 0
                best_factor = 0.0
                for i in range(3):
                    e = norms[i]
                    fac = np.inf if e == 0.0 else e ** (-1.0 / (order + i))
                    if i == 0 or fac > best_factor:
                        best_factor = fac
                        best = i
                order += best - 1
                factor = min(_MAX_FACTOR, safety * best_factor)
                h_abs *= factor
                _change_D(Dd, order, factor, tmpD)
                n_equal_steps = 0
                lu_ok = False
            # ---- dense output at the requested times in (t_old, t] (solve_ivp with t_eval)
            if q_out < n_out and times[q_out] <= t:
                hd = h_abs
                while q_out < n_out and times[q_out] <= t:
                    tq = times[q_out]
                    for c in range(m):
                        out[q_out, c] = Dd[0, c]
                    p = 1.0
                    for j in range(order):
                        p *= (tq - (t - hd * j)) / (hd * (1 + j))
                        for c in range(m):
                            out[q_out, c] += Dd[j + 1, c] * p
                    # the weak-neutrino loss rate at the output state
                    _, nu_loss, _ = _rates(out[q_out, :m - 1], rho, T, base, D, screened, C[0], C[2], C[3],
                                           C[4], C[5], C[6])
                    eps_nu_out[q_out] = nu_loss
                    q_out += 1
            if t - t_bound >= 0:
                return 0, nfev, njev, nlu, steps

    @_njit
    def _integrate_cells(z0, rho, T, base, D, screened, times, rtol, atol, max_steps, out, eps_nu, status, nfev,
                         njev, nlu, steps):
        """Loop of _burn_cell over cells (the rows of z0, rho, T, base)."""
        N, m = z0.shape
        pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.shape[1])
        ws = (np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m),
              np.zeros(m), np.zeros(m), np.zeros(m), np.zeros((_MAX_ORDER + 3, m)), np.zeros((_MAX_ORDER + 1, m)),
              np.zeros((m, m)), np.zeros((m, m)), np.zeros(m, np.int64),
              np.zeros(m + 1, np.int64), np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m + 1, np.int64),
              np.zeros(m * m, np.int64), np.zeros(m * m), np.zeros(m))
        for cell in range(N):
            weak_ok = _burn_constants(T[cell], rho[cell], D, pc, cf, wk)
            C = (pc, cf, wk, weak_ok, log_scor, kb, k, flux)
            code, nf, nj, nl, ns = _burn_cell(z0[cell], rho[cell], T[cell], base[cell], D, screened, times, rtol,
                                              atol[cell], max_steps, out[cell], eps_nu[cell], C, ws)
            status[cell] = code
            nfev[cell] = nf
            njev[cell] = nj
            nlu[cell] = nl
            steps[cell] = ns

    @_njit
    def _constant_arrays(D, n_base):
        """Arrays of a burn's constants and rate work: pc, cf, wk, log_scor, kb, k, flux."""
        npairs = max(D.pairs.shape[0], 1)
        return (np.zeros((npairs, 4)), np.zeros(D.kind.size), np.zeros((D.weak_nrho.size, D.weak_rhoy.shape[1], 4)),
                np.zeros(npairs), np.zeros(n_base), np.zeros(D.kind.size), np.zeros(D.kind.size + 1))

    @_njit
    def _one_cell_constants(rho, T, base, D):
        pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.size)
        weak_ok = _burn_constants(T, rho, D, pc, cf, wk)
        return (pc, cf, wk, weak_ok, log_scor, kb, k, flux)

    @_njit
    def _kernel_rhs(Y, rho, T, base, D, screened):
        z = np.zeros(Y.size + 1)
        z[:Y.size] = Y
        f = np.zeros(Y.size + 1)
        ok = _fun(z, rho, T, base, D, screened, _one_cell_constants(rho, T, base, D), f)
        return f, ok

    @_njit
    def _rhs_cells(Y, rho, T, base, D, screened, out, ok):
        """dY/dt with the loss rate appended into out (N, n + 1), cell by cell (the rows of Y, rho, T, base)."""
        N, n = Y.shape
        pc, cf, wk, log_scor, kb, k, flux = _constant_arrays(D, base.shape[1])
        z = np.zeros(n + 1)
        for cell in range(N):
            weak_ok = _burn_constants(T[cell], rho[cell], D, pc, cf, wk)
            for i in range(n):
                z[i] = Y[cell, i]
            ok[cell] = weak_ok and _fun(z, rho[cell], T[cell], base[cell], D, screened,
                                        (pc, cf, wk, weak_ok, log_scor, kb, k, flux), out[cell])

    @_njit
    def _kernel_jacobian(Y, rho, T, base, D, screened):
        z = np.zeros(Y.size + 1)
        z[:Y.size] = Y
        J = np.zeros((Y.size + 1, Y.size + 1))
        ok = _jac(z, rho, T, base, D, screened, _one_cell_constants(rho, T, base, D), J)
        return J, ok


def base_rates(data, T):
    """Temperature-only (unscreened) rates of every base rate at T [K] (N,): array (N, base rates).

    Parameters
    ----------
    data : KernelData
    T : array_like (N,)
        Temperature [K].
    """
    T = np.ascontiguousarray(np.atleast_1d(T), dtype=float)
    out = np.empty((T.size, data.set_ptr.size - 1))
    _base_rates(T, data, out)
    return out


def kernel_rhs(kernel, Y, rho, T):
    """dY/dt with the weak-neutrino loss rate [erg g^-1 s^-1] appended, from the compiled kernel.

    Parameters
    ----------
    kernel : thermoemu.nuclear.network.BurnerKernel
    Y : array_like (isotopes,)
        Molar abundances Y = X / A [mol g^-1].
    rho : float
        Density [g cm^-3].
    T : float
        Temperature [K].

    Returns
    -------
    numpy.ndarray (isotopes + 1,)
        The same quantity as the generated ``rhs_nu_screened`` / ``rhs_nu_unscreened``.
    """
    base = kernel.base_rates(np.array([float(T)]))[0]
    f, ok = _kernel_rhs(np.asarray(Y, float), float(rho), float(T), base, kernel.data, kernel.screening)
    if not ok:
        raise ValueError(f"rho Ye = {rho * kernel.ye(Y):.3e} g cm^-3 or T = {T:.3e} K is outside a weak-rate table")
    return f


def kernel_rhs_cells(kernel, Y, rho, T):
    """:func:`kernel_rhs` over cells: dY/dt with the loss rate appended, (N, isotopes + 1), and a flag per
    cell (False: outside a weak-rate table; that row is NaN).

    Parameters
    ----------
    Y : array_like (N, isotopes)
        Molar abundances [mol g^-1].
    rho, T : array_like (N,)
        [g cm^-3], [K].
    """
    Y = np.ascontiguousarray(np.atleast_2d(Y), dtype=float)
    if Y.shape[1] != kernel.data.Z.size:
        raise ValueError(f"Y has {Y.shape[1]} isotopes per cell; network {kernel.name} has {kernel.data.Z.size}")
    rho = np.ascontiguousarray(np.broadcast_to(np.asarray(rho, float), Y.shape[:1]))
    T = np.ascontiguousarray(np.broadcast_to(np.asarray(T, float), Y.shape[:1]))
    out = np.zeros((Y.shape[0], Y.shape[1] + 1))
    ok = np.zeros(Y.shape[0], dtype=np.bool_)
    _rhs_cells(Y, rho, T, kernel.base_rates(T), kernel.data, kernel.screening, out, ok)
    out[~ok] = np.nan
    return out, ok


def kernel_jacobian(kernel, Y, rho, T):
    """d(dY/dt)/dY (isotopes, isotopes) from the compiled kernel (pynucastro's analytic Jacobian).

    Parameters are those of :func:`kernel_rhs`.
    """
    base = kernel.base_rates(np.array([float(T)]))[0]
    J, ok = _kernel_jacobian(np.asarray(Y, float), float(rho), float(T), base, kernel.data, kernel.screening)
    if not ok:
        raise ValueError(f"rho Ye = {rho * kernel.ye(Y):.3e} g cm^-3 or T = {T:.3e} K is outside a weak-rate table")
    n = len(Y)
    return J[:n, :n]


def integrate_cells(kernel, density, temperature, Y0, times, *, rtol=1e-6, atol=1e-20, max_steps=500_000):
    """Burn cells at constant density and temperature with the compiled BDF.

    Parameters
    ----------
    kernel : thermoemu.nuclear.network.BurnerKernel
    density, temperature : numpy.ndarray (N,)
        [g cm^-3], [K].
    Y0 : numpy.ndarray (N, isotopes)
        Initial molar abundances [mol g^-1].
    times : numpy.ndarray (k,)
        Output times [s], positive and increasing; the burn ends at the last.
    rtol : float
        Relative tolerance.
    atol : float
        Absolute tolerance on Y [mol g^-1]; the neutrino energy E_nu gets 1e-6 of the cell's
        total mass-energy scale in erg g^-1 (as :mod:`thermoemu.nuclear.burner`).
    max_steps : int
        Steps per cell before it is given up (status 2).

    Returns
    -------
    dict
        ``z`` (N, k, isotopes + 1): Y and E_nu [erg g^-1] at each time; ``eps_nu`` (N, k) [erg g^-1 s^-1];
        ``status`` (:data:`CELL_STATUS`), ``nfev``, ``njev``, ``nlu``, ``steps`` (N,).
    """
    rho = np.ascontiguousarray(density, dtype=float)
    T = np.ascontiguousarray(temperature, dtype=float)
    Y0 = np.ascontiguousarray(Y0, dtype=float)
    times = np.ascontiguousarray(times, dtype=float)
    N, n = Y0.shape
    z0 = np.zeros((N, n + 1))
    z0[:, :n] = Y0
    atol_vec = np.full((N, n + 1), float(atol))
    atol_vec[:, n] = 1e-6 * np.maximum(1.0, np.abs(kernel.energy_release(-Y0)))
    base = kernel.base_rates(T)
    out = np.full((N, times.size, n + 1), np.nan)
    eps_nu = np.full((N, times.size), np.nan)
    status = np.zeros(N, np.int64)
    nfev = np.zeros(N, np.int64)
    njev = np.zeros(N, np.int64)
    nlu = np.zeros(N, np.int64)
    steps = np.zeros(N, np.int64)
    _integrate_cells(z0, rho, T, base, kernel.data, kernel.screening, times, float(rtol), atol_vec, int(max_steps),
                     out, eps_nu, status, nfev, njev, nlu, steps)
    return {"z": out, "eps_nu": eps_nu, "status": status, "nfev": nfev, "njev": njev, "nlu": nlu, "steps": steps}
