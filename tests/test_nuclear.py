"""Nuclear networks on pynucastro: generation and cache, burner, NSE, state grids, CLI.

Uses ``small22`` (first compile about a minute, then cached); ``mesa80``'s figures are in
docs/nuclear.md (its first compile takes minutes and ~5 GB, too much for CI).
"""

import numpy as np
import pytest

pytest.importorskip("pynucastro")

from thermoemu.networks.nuclear.build import (MESA80, NETWORKS, _postprocess, load_network,  # noqa: E402
                                              network_module_path)
from thermoemu.networks.nuclear.burner import burn  # noqa: E402
from thermoemu.nuclear_state import burn_state, nuclear_state  # noqa: E402
from thermoemu.state import StateError  # noqa: E402

START = {"si28": 0.5, "s32": 0.25, "ar36": 0.1, "ca40": 0.1, "fe54": 0.05}


@pytest.fixture(scope="session")
def small22(tmp_path_factory):
    return load_network("small22", directory=tmp_path_factory.mktemp("nuclear"))


def _x0(net, comp=START):
    X = np.zeros(len(net.isotopes))
    for k, v in comp.items():
        X[net.isotopes.index(k)] = v
    return X


def test_mesa80_list_is_mesas_80_isotopes():
    assert len(MESA80) == len(set(MESA80)) == 80
    assert {"ca41", "cu59", "zn60", "n", "p"} <= set(MESA80)


def test_generated_module_is_cached_and_keeps_only_neutrino_weak_energy(small22):
    source = small22.module.__file__
    text = open(source).read()
    assert "@numba.njit()" not in text and "edot_nu + edot_gamma" not in text
    assert "def rhs_screened(t, Y, rho, T)" in text and "def jacobian_unscreened(t, Y, rho, T)" in text
    assert len(small22.isotopes) == 22 and {"n14", "cr56", "co55", "ni56", "p", "n"} <= set(small22.isotopes)
    assert network_module_path("small22", small22.module.__file__.rsplit("/", 1)[0]).name in source


def test_postprocess_refuses_unexpected_code():
    with pytest.raises(RuntimeError, match="no function"):
        _postprocess("def something_else(x):\n    return x\n")


def test_burn_reference_case_conserves_mass_and_releases_energy(small22):
    r = burn(small22, [1e8], [5e9], _x0(small22)[None], 0.1)
    assert r.success.all() and r.status[0] == 0
    X = r.mass_fraction[0]
    assert X.sum() == pytest.approx(1.0, abs=1e-8) and X.min() >= 0
    assert X[small22.isotopes.index("ni56")] > 0.3          # silicon burning towards the iron group
    assert 1e16 < r.e_nuc[0] < 1e18 and r.eps_nu[0] > 0
    assert 0.49 < r.ye[0] < small22.ye(_x0(small22) / small22.A)  # electron captures lower Ye


def test_long_unscreened_burn_reaches_nse(small22):
    """Issue 6: against pynucastro's NSE at the end state's Ye, <= 1e-4 in X without screening."""
    import pynucastro as pyna
    net = load_network("small22", screening=False, directory=small22.module.__file__.rsplit("/", 1)[0])
    r = burn(net, [1e8], [5e9], _x0(net)[None], 1000.0, rtol=1e-8)
    assert r.success[0]
    nse = pyna.NSENetwork(rates=NETWORKS["small22"](pyna).get_rates())
    comp = nse.get_comp_nse(1e8, 5e9, float(r.ye[0]), use_coulomb_corr=False)
    X_nse = {("p" if str(k).lower() == "h1" else str(k).lower()): v for k, v in comp.X.items()}
    diff = [abs(x - X_nse.get(i, 0.0)) for i, x in zip(net.isotopes, r.mass_fraction[0])]
    assert max(diff) < 1e-4


def test_screening_changes_energy(small22):
    plain = load_network("small22", screening=False, directory=small22.module.__file__.rsplit("/", 1)[0])
    a = burn(small22, [1e8], [3.5e9], _x0(small22)[None], 0.1)
    b = burn(plain, [1e8], [3.5e9], _x0(plain)[None], 0.1)
    assert a.success.all() and b.success.all()
    assert abs(a.e_nuc[0] / b.e_nuc[0] - 1) > 1e-3


def test_nuclear_state_validation():
    ds = nuclear_state(1e8, 5e9, START, network=None)
    assert float(ds["ye"]) == pytest.approx(0.95 * 0.5 + 0.05 * 26 / 54, rel=1e-12)
    with pytest.raises(StateError, match="sum to 0.75"):
        nuclear_state(1e8, 5e9, {"si28": 0.5, "s32": 0.25})
    assert float(nuclear_state(1e8, 5e9, {"si28": 0.5, "s32": 0.25}, normalize=True)["mass_fraction"].sum()) == 1.0
    with pytest.raises(StateError, match="unknown isotope"):
        nuclear_state(1e8, 5e9, {"xx99": 1.0})
    with pytest.raises(StateError, match="temperature = 1e\\+12"):
        nuclear_state(1e8, 1e12, START)
    with pytest.raises(StateError, match="mass_fraction = -0.1"):
        nuclear_state(1e8, 5e9, {"si28": 1.1, "s32": -0.1})


def test_burn_state_on_a_grid(small22):
    T = np.array([3.5e9, 5e9, 6e9])
    ds = nuclear_state(np.array([1e7, 1e8, 1e9]), T, {k: np.full(3, v) for k, v in START.items()},
                       network=small22)
    out = burn_state(ds, "0.1 s", network=small22)
    assert out["success"].all() and out["mass_fraction"].dims == ("cell", "isotope")
    np.testing.assert_allclose(out["mass_fraction"].sum("isotope"), 1.0, atol=1e-8)
    assert (out["e_nuc"] > 0).all() and out["e_nuc"].attrs["units"] == "erg g^-1"
    with pytest.raises(StateError, match="dt = -1"):
        burn_state(ds, -1.0, network=small22)


def test_cli_burn(tmp_path, small22, monkeypatch):
    import xarray as xr

    from thermoemu.cli import main
    monkeypatch.setenv("THERMOEMU_CACHE", str(tmp_path / "cache"))
    import thermoemu.networks.nuclear.build as build
    monkeypatch.setattr(build, "_cache_root", lambda: __import__("pathlib").Path(small22.module.__file__).parent)
    out = tmp_path / "burn.nc"
    args = ["burn", "--network", "small22", "--temperature", "5e9", "--density", "1e8", "--dt", "0.1",
            "--composition", "si28=0.5,s32=0.25,ar36=0.1,ca40=0.1,fe54=0.05", "-o", str(out)]
    assert main(args) == 0
    ds = xr.open_dataset(out)
    assert {"mass_fraction", "ye", "e_nuc", "eps_nu"} <= set(ds.data_vars) and bool(ds["success"])
    assert main(args[:-4] + ["--composition", "si28=0.5", "-o", str(out)]) == 2
    assert main(args[:-4] + ["--composition", "si28=half", "-o", str(out)]) == 2
