"""Generate, compile once and cache the nuclear networks (pynucastro, numba).

``mesa80``: the 80 isotopes of MESA's ``mesa_80.net`` (Grichener et al. 2025, Appendix A lists 77;
MESA's file also has 41Ca, 59Cu and 60Zn; MESA's separate ``prot`` is pynucastro's single ``p``),
REACLIB forward rates, reverse rates from detailed balance, tabulated weak rates in the order
FFN, Oda, Langanke (the Suzuki sd-shell tables stop at log T = 9.65 and raise outside;
``../shared/physics/nuclear.md``).

``small22``: the closest analog of MESA's ``approx21_cr60_plus_co56`` that pynucastro 3.1 can build
(see :data:`SMALL22_DIFFERENCES`).

pynucastro writes a Python module of numba-jitted functions. We post-process it once:

* every ``@numba.njit()`` becomes ``@numba.njit(cache=True)``, so the multi-minute compile of the
  80-isotope right-hand side and Jacobian happens once per machine, not per process;
* the weak-rate energy term keeps only the neutrino loss (the tables' gamma column is energy that
  stays in the gas and is already part of the mass difference);
* entry points with the screening hard-wired (Chugunov et al. 2007, or none), because a screening
  function passed as an argument defeats numba's disk cache;
* ``rhs_nu_screened`` / ``rhs_nu_unscreened``: dY/dt with the weak-neutrino loss rate appended,
  from one rate evaluation (the burner integrates both; evaluating the rates twice per step cost
  ~40% of a mesa80 burn).

The module is written to ``<cache>/nuclear/<name>-<hash>.py`` (``thermoemu.core.files.cache_dir``),
keyed by the network definition and the pynucastro version, and imported from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.files import cache_dir
from ..core.grid import StateError

__all__ = ["MESA80", "NETWORKS", "SMALL22_DIFFERENCES", "BurnerKernel", "NuclearNetwork", "load_burner_kernel",
           "load_network", "network_module_path", "nucleus_charge_mass"]

#: MESA's mesa_80.net (../shared/physics/nuclear.md), pynucastro names.
MESA80 = (
    "n p d he3 he4 li7 be7 be9 be10 b8 c12 c13 n13 n14 n15 o14 o15 o16 o17 o18 f17 f18 f19 "
    "ne18 ne19 ne20 ne21 ne22 na21 na22 na23 na24 mg23 mg24 mg25 mg26 al25 al26 al27 si27 si28 si29 si30 "
    "p30 p31 s31 s32 s33 s34 cl35 ar35 ar36 ar37 ar38 k39 ca39 ca40 ca41 ca42 sc43 ti44 ti45 ti46 v47 "
    "cr48 cr49 cr50 mn51 fe52 fe53 fe54 fe56 co55 co56 ni56 ni57 ni58 ni59 cu59 zn60"
).split()

#: Alpha chain plus what approx21_cr60_plus_co56 adds; intermediates for the (a,p)(p,g) links are
#: approximated out after the rates are collected.
_SMALL22_CORE = "n p he3 he4 c12 n14 o16 ne20 mg24 si28 s32 ar36 ca40 ti44 cr48 fe52 fe54 fe56 co55 co56 ni56 cr56".split()
_SMALL22_INTERMEDIATES = "al27 p31 cl35 k39 sc43 v47 mn51 co55 fe53".split()

SMALL22_DIFFERENCES = """\
small22 against MESA's approx21_cr60_plus_co56:
* isotopes: n, p, 3He, 4He, 12C, 14N, 16O, 20Ne, 24Mg, 28Si, 32S, 36Ar, 40Ca, 44Ti, 48Cr, 52Fe, 54Fe,
  55Co, 56Fe, 56Co, 56Ni, 56Cr (22). MESA has a separate 'prot' and 'neut' with composite rates and
  60Cr instead of 55Co and 56Cr; pynucastro 3.1 ships neither approx21 nor MESA's composite rates
  (the effective 56Fe -> 60Cr capture), so 56Cr is the inert neutron-rich end and 55Co is kept for
  54Fe(p,g)55Co(p,g)56Ni.
* (a,p)(p,g) links through 27Al .. 51Mn are pynucastro's make_ap_pg_approx (the same idea as
  approx21's); 52Fe(n,g)53Fe(n,g)54Fe is make_nn_g_approx.
* weak rates: tabulated n <-> p and 56Ni <-> 56Co <-> 56Fe only (FFN/Oda/Langanke), so Ye can change
  only through free nucleons and A = 56, as in approx21.
* 14N takes part only through REACLIB rates among the kept nuclei (no CNO cycle).
"""


def _pynucastro():
    try:
        import pynucastro
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("nuclear networks need the optional extra: pip install 'thermoemu[nuclear]' "
                          "(pynucastro with numba)") from exc
    return pynucastro


def _mesa80(pyna):
    return pyna.network_helper(MESA80, network_type="python", use_tabular_rates=True,
                               tabular_ordering=["ffn", "oda", "langanke"], use_detailed_balance=True)


def _small22(pyna):
    inert = ["n14", "cr56"]  # no rates link them to the rest (see SMALL22_DIFFERENCES)
    nuclei = sorted((set(_SMALL22_CORE) | set(_SMALL22_INTERMEDIATES)) - set(inert))
    net = pyna.network_helper(nuclei, network_type="python", use_tabular_rates=True, inert_nuclei=inert,
                              tabular_ordering=["ffn", "oda", "langanke"], use_detailed_balance=True)
    net.make_ap_pg_approx(intermediate_nuclei=["al27", "p31", "cl35", "k39", "sc43", "v47", "mn51"])
    net.make_nn_g_approx(intermediate_nuclei=["fe53"])
    net.remove_nuclei(["al27", "p31", "cl35", "k39", "sc43", "v47", "mn51", "fe53"])
    return net


#: Known networks: name -> builder of the pynucastro PythonNetwork.
NETWORKS = {"mesa80": _mesa80, "small22": _small22}
_DEFINITION_VERSION = 5


def _cache_root():
    return cache_dir() / "nuclear"


def network_module_path(name, directory=None):
    """Where the generated module of network ``name`` is cached."""
    pyna = _pynucastro()
    if name not in NETWORKS:
        raise ValueError(f"network = {name!r} is not known; choose one of {sorted(NETWORKS)}")
    key = hashlib.sha256(f"{name}-{_DEFINITION_VERSION}-{pyna.__version__}".encode()).hexdigest()[:10]
    return Path(directory or _cache_root()) / f"{name}_{key}.py"


def _function_source(source, name):
    """Text of top-level function ``name`` (from its ``def`` to the next top-level statement)."""
    m = re.search(rf"^def {name}\(.*?(?=^\S|\Z)", source, flags=re.S | re.M)
    if m is None:
        raise RuntimeError(f"pynucastro's generated code has no function {name!r}")
    return m.group(0)


def _specialized_copy(source, name, new_name, screened):
    """``name`` without the screening argument: Chugunov 2007 called directly, or no screening."""
    suffix = "screened" if screened else "unscreened"
    text = _function_source(source, name)
    text = text.replace(f"def {name}(t, Y, rho, T, screen_func):", f"def {new_name}(t, Y, rho, T):", 1)
    text = text.replace("if screen_func is not None:", "if True:" if screened else "if False:")
    text = text.replace("screen_func(", "_chugunov_2007(")
    text = text.replace("do_rate_eval(t, Y, rho, T, screen_func)", f"do_rate_eval_{suffix}(t, Y, rho, T)")
    if "screen_func" in text:
        raise RuntimeError(f"could not hard-wire the screening in {name}")
    return "@numba.njit(cache=True)\n" + text


_NEUTRINO = '''

@numba.njit(cache=True)
def neutrino_loss_rate(Y, rho, T):
    """Weak-rate neutrino energy loss [erg g^-1 s^-1], >= 0 (screening does not enter weak rates)."""
    rate_eval = do_rate_eval_unscreened(0.0, Y, rho, T)
    return -rate_eval.enuc_weak
'''

#: dY/dt and dE_nu/dt from one rate evaluation, one copy per screening variant.
_RHS_WITH_NEUTRINO = '''

@numba.njit(cache=True)
def rhs_nu_{variant}(t, z, rho, T):
    """dY/dt of z[:nnuc] = Y with the weak-neutrino loss rate appended, from one rate evaluation."""
    Y = z[:nnuc]
    rate_eval = do_rate_eval_{variant}(t, Y, rho, T)
    out = np.empty(nnuc + 1, dtype=np.float64)
    out[:nnuc] = ydot_eq(Y, rho, rate_eval)
    out[nnuc] = -rate_eval.enuc_weak
    return out
'''
_NEUTRINO += "".join(_RHS_WITH_NEUTRINO.format(variant=v) for v in ("screened", "unscreened"))


def _postprocess(source):
    """See the module docstring; returns the new source and the number of weak-energy terms changed."""
    source = source.replace("@numba.njit()", "@numba.njit(cache=True)")
    # keep only the neutrino part of the weak-rate energy (erg g^-1 s^-1, negative: a loss)
    source, count = re.subn(r"rate_eval\.enuc_weak \+= N_A \* Y\[(\w+)\] \* \(edot_nu \+ edot_gamma\)",
                            r"rate_eval.enuc_weak += N_A * Y[\1] * edot_nu", source)
    added = ["", "# ---- added by thermoemu: screening hard-wired (a function argument defeats numba's cache)",
             "from pynucastro.screening import chugunov_2007 as _chugunov_2007", "",
             *[_specialized_copy(source, f, f.replace("_eq", "") + ("_screened" if sc else "_unscreened"), sc)
               for sc in (True, False) for f in ("do_rate_eval", "rhs_eq", "jacobian_eq")],
             _NEUTRINO]
    return source + "\n".join(added), count


def generate(name, directory=None):
    """Write the post-processed module of network ``name`` (atomically) and return its path."""
    _pynucastro()  # the ImportError that names the extra
    path = network_module_path(name, directory)
    net = _pyna_network(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(path.stem + f"_raw_{os.getpid()}.py")
    net.write_network(str(raw))
    source, _ = _postprocess(raw.read_text())
    raw.unlink()
    _atomic_write(path, source)
    return path


_PYNA_NETS: dict = {}


def _pyna_network(name):
    """The pynucastro network ``name`` (~5-10 s to build), kept for the process: generating the
    module and then the compiled burner's kernel on a fresh machine builds it once."""
    if name not in _PYNA_NETS:
        _PYNA_NETS[name] = NETWORKS[name](_pynucastro())
    return _PYNA_NETS[name]


def _atomic_write(path, text):
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class NuclearNetwork:
    """A compiled network: isotope names, A, Z, masses and the jitted entry points.

    ``rhs(t, Y, rho, T)`` and ``jacobian(t, Y, rho, T)`` act on molar abundances Y = X / A with the
    screening chosen at load time; ``energy_release(dY)`` [erg g^-1] from AME masses;
    ``neutrino_loss_rate(Y, rho, T)`` [erg g^-1 s^-1].
    """

    name: str
    isotopes: tuple
    A: np.ndarray
    Z: np.ndarray
    screening: bool
    module: object

    @property
    def rhs(self):
        return self.module.rhs_screened if self.screening else self.module.rhs_unscreened

    @property
    def rhs_with_neutrino(self):
        """``f(t, z, rho, T)``: dY/dt of ``z[:-1] = Y`` and, last, the weak-neutrino loss rate."""
        return self.module.rhs_nu_screened if self.screening else self.module.rhs_nu_unscreened

    @property
    def jacobian(self):
        return self.module.jacobian_screened if self.screening else self.module.jacobian_unscreened

    def energy_release(self, dY):
        """Energy from the mass change of molar abundances ``dY`` [erg g^-1] (positive: released)."""
        return -float(np.dot(dY, self.module.mass)) * self.module.N_A

    def neutrino_loss_rate(self, Y, rho, T):
        return float(self.module.neutrino_loss_rate(Y, rho, T))

    def ye(self, Y):
        return float(np.sum(self.Z * Y) / np.sum(self.A * Y))


_LOADED: dict = {}


def load_network(name="mesa80", *, screening=True, directory=None, progress=False):
    """Generate (first time), import and return network ``name`` (``"mesa80"`` or ``"small22"``).

    The first call on a machine writes the module (~10 s) and the first evaluation compiles it
    (mesa80: several minutes and ~5 GB; small22: about a minute); later processes load the
    compiled code from numba's cache in about a second.
    """
    # numba notes that the inner rate evaluation cannot be cached (it holds the weak-rate tables);
    # the entry points above it are cached, which is what makes later loads fast
    import warnings
    try:
        from numba.core.errors import NumbaWarning
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)
    except ImportError:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore", message=".*partition function is not supported by tables",
                            category=UserWarning)
    path = network_module_path(name, directory)
    if not path.exists():
        if progress:
            sys.stderr.write(f"generating network {name} into {path}\n")
        generate(name, directory)
    key = str(path)
    if key not in _LOADED:
        spec = importlib.util.spec_from_file_location(f"thermoemu_nuclear_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _LOADED[key] = module
    module = _LOADED[key]
    names = tuple(str(n).lower() for n in module.names)
    names = tuple("n" if n == "n" else ("p" if n == "h1" else n) for n in names)
    return NuclearNetwork(name, names, np.asarray(module.A, dtype=float), np.asarray(module.Z, dtype=float),
                          screening, module)


# ---------------------------------------------------------------------------------- compiled burner
def _kernel_path(network):
    """Cache file of the compiled burner's kernel arrays for a loaded network (next to its module)."""
    from .implicit import KERNEL_FORMAT
    module_path = Path(network.module.__file__)
    return module_path.with_name(f"{module_path.stem}_kernel{KERNEL_FORMAT}.npz")


def _write_kernel(network):
    """Generate the kernel arrays of a loaded network (its pynucastro network and generated module)."""
    from .implicit import build_kernel_arrays
    npz = _kernel_path(network)
    arrays = build_kernel_arrays(_pyna_network(network.name), network.module)
    tmp = npz.with_name(npz.stem + f".tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, npz)


@dataclass
class BurnerKernel:
    """What the compiled burner (:mod:`thermoemu.nuclear.implicit`) needs of a network.

    ``data``: the network as arrays (:class:`~thermoemu.nuclear.implicit.KernelData`);
    ``base_rates(T)``: (N, base rates) temperature-only rates at T [K] (N,); ``energy_release(dY)``
    [erg g^-1] per row; ``ye(Y)``.
    """

    network: NuclearNetwork
    data: object

    @property
    def screening(self):
        return self.network.screening

    @property
    def name(self):
        return self.network.name

    def base_rates(self, T):
        from .implicit import base_rates
        return base_rates(self.data, T)

    def energy_release(self, dY):
        """Energy from the mass change ``dY`` [mol g^-1] (rows) [erg g^-1], positive when released."""
        return -(np.asarray(dY, float) @ np.asarray(self.network.module.mass, float)) * self.network.module.N_A

    def ye(self, Y):
        Y = np.asarray(Y, float)
        return float(np.sum(self.network.Z * Y) / np.sum(self.network.A * Y))


_KERNELS: dict = {}


def load_burner_kernel(network, *, progress=False):
    """The compiled burner's kernel of a loaded network: arrays generated once per machine (~10 s:
    the pynucastro network is rebuilt to read its stoichiometry, unless this process just built it
    to write the module) and nothing network-specific to compile.

    Parameters
    ----------
    network : NuclearNetwork
        From :func:`load_network`; the kernel follows its screening choice.
    progress : bool
        Say on stderr when the kernel is generated.

    Returns
    -------
    BurnerKernel
    """
    from .implicit import kernel_data
    npz = _kernel_path(network)
    key = (str(npz), network.screening)
    if key in _KERNELS:
        return _KERNELS[key]
    if not npz.exists():
        if progress:
            sys.stderr.write(f"generating the compiled burner's kernel of {network.name} into {npz.parent}\n")
        _write_kernel(network)
    with np.load(npz) as f:
        data = kernel_data({k: f[k] for k in f.files})
    _KERNELS[key] = BurnerKernel(network, data)
    return _KERNELS[key]


def nucleus_charge_mass(isotopes):
    """Charge Z and mass number A (float arrays) of isotopes named as pynucastro names them."""
    from pynucastro import Nucleus
    Z, A = [], []
    for name in isotopes:
        try:
            nuc = Nucleus(name)
        except Exception as exc:
            raise StateError(f"mass_fraction: unknown isotope {name!r}") from exc
        Z.append(nuc.Z)
        A.append(nuc.A)
    return np.array(Z, float), np.array(A, float)
