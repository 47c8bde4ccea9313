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
def small22():
    """small22 in the session cache (tests/conftest.py), compiled here once so dask workers load it."""
    net = load_network("small22")
    burn(net, [1e8], [5e9], _x0(net)[None], 1e-6)
    return net


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


def test_cli_burn(tmp_path, small22):
    import xarray as xr

    from thermoemu.cli import main
    out = tmp_path / "burn.nc"
    args = ["burn", "--network", "small22", "--temperature", "5e9", "--density", "1e8", "--dt", "0.1",
            "--composition", "si28=0.5,s32=0.25,ar36=0.1,ca40=0.1,fe54=0.05", "-o", str(out)]
    assert main(args) == 0
    ds = xr.open_dataset(out)
    assert {"mass_fraction", "ye", "e_nuc", "eps_nu"} <= set(ds.data_vars) and bool(ds["success"])
    assert main(args[:-4] + ["--composition", "si28=0.5", "-o", str(out)]) == 2
    assert main(args[:-4] + ["--composition", "si28=half", "-o", str(out)]) == 2


# ----------------------------------------------------------------------------- catalogs
def _tiny_spec(**sampling):
    return {"name": "si-small22-tiny", "network": {"kind": "nuclear", "options": {"network": "small22"}},
            "sampling": {"log10_temperature": [9.3, 9.7], "log10_density": [7.5, 8.5],
                         "composition": {"isotopes": "network", "alpha": 0.3, "ye": [0.46, 0.5], **sampling}},
            "timestep": {"law": "list", "values": [1e-3, 1e-1]},
            "samples": 6, "shard_size": 3, "seed": 7, "record": {"state": True}}


def test_shipped_nuclear_specs_validate():
    from thermoemu.catalog_spec import load_spec
    for name in ("si-mesa80", "si-mesa80-test"):
        spec = load_spec(name)
        assert spec.raw["timestep"]["values"] == [10.0**k for k in range(-6, 3)]
        assert spec.raw["sampling"]["log10_temperature"] == [9.2, 9.9]


@pytest.mark.parametrize("change, match", [
    (lambda r: r["network"]["options"].update(network="approx21"), "network.options.network"),
    (lambda r: r["sampling"]["composition"].update(ye=[0.5, 0.45]), "sampling.composition.ye"),
    (lambda r: r["sampling"].update(log10_temperature=[9.0, 12.0]), "sampling.log10_temperature"),
    (lambda r: r["timestep"].update(values=[1.0, 0.1]), "timestep.values"),
    (lambda r: r["timestep"].update(law="log1p_uniform"), "timestep.law"),
    (lambda r: r.update(solver={"rtol": 2.0}), "solver.rtol"),
])
def test_nuclear_spec_errors_name_the_key(change, match):
    from thermoemu.catalog_spec import SpecError, validate_spec
    raw = _tiny_spec()
    change(raw)
    with pytest.raises(SpecError, match=match):
        validate_spec(raw)


def test_nuclear_sampling_respects_ye_and_is_reproducible(small22):
    from thermoemu.catalog_spec import validate_spec
    from thermoemu.nuclear_catalog import sample_nuclear_inputs
    spec = validate_spec(_tiny_spec())
    T, rho, X, rate = sample_nuclear_inputs(spec, 0, 200, small22)
    ye = X @ (small22.Z / small22.A)
    assert ((ye > 0.46) & (ye < 0.5)).all() and 0 < rate <= 1
    np.testing.assert_allclose(X.sum(1), 1.0, atol=1e-12)
    assert (X[:, [small22.isotopes.index("n"), small22.isotopes.index("p")]] == 0).all()
    assert (np.log10(T) >= 9.3).all() and (np.log10(T) <= 9.7).all()
    T2, _, X2, _ = sample_nuclear_inputs(spec, 0, 200, small22)
    np.testing.assert_array_equal(X, X2)
    assert not np.array_equal(X, sample_nuclear_inputs(spec, 1, 200, small22)[2])


def test_nuclear_catalog_builds_on_dask_and_opens(small22, dask_client, tmp_path):
    from thermoemu.catalog import build_catalog, open_catalog
    index = build_catalog(_tiny_spec(), tmp_path / "cat", client=dask_client, progress=False)
    assert index["complete"] and index["samples_written"] == 6 and index["failed"] == 0
    assert index["network"] == "small22" and index["rate_set_version"].startswith("pynucastro-")
    ds = open_catalog(tmp_path / "cat")
    assert ds.sizes["sample"] == 6 and ds["dt"].values.tolist() == [1e-3, 1e-1]
    X = ds["mass_fraction"].values
    np.testing.assert_allclose(X.sum(-1), 1.0, atol=1e-8)
    # the 0.1 s column equals a direct burn of the same state to 0.1 s
    i = 4
    direct = burn(small22, [float(ds["density"][i])], [float(ds["temperature"][i])],
                  ds["initial_mass_fraction"].values[i][None], 0.1)
    np.testing.assert_allclose(ds["e_nuc"].values[i, 1], direct.e_nuc[0], rtol=1e-3)
    np.testing.assert_allclose(X[i, 1], direct.mass_fraction[0], atol=1e-6)
    # resuming an interrupted build keeps finished shards
    (tmp_path / "cat" / "shard-00001.nc").unlink()
    again = build_catalog(_tiny_spec(), tmp_path / "cat", client=dask_client, progress=False)
    assert again["samples_written"] == 6


# ----------------------------------------------------------------------------- NNN
@pytest.fixture(scope="module")
def nnn_catalog(small22, dask_client, tmp_path_factory):
    """60 states from small-net isotopes, burned by small22 (training and evaluation tests)."""
    from thermoemu.catalog import build_catalog
    spec = _tiny_spec(isotopes="small_net")
    spec.update(samples=60, shard_size=30, name="si-small22-nnn")
    out = tmp_path_factory.mktemp("nnncat") / "cat"
    build_catalog(spec, out, client=dask_client, progress=False)
    return out


def _small_nnn(n):
    from thermoemu.models.nnn import NNNConfig
    return NNNConfig(n, layers=3, first_width=48, width=96)


SPLIT = (0.6, 0.2, 0.2)


def _fast_settings(**kw):
    from thermoemu.models.training import TrainSettings
    return TrainSettings(**{"lr": 1e-3, "batch_size": 32, "max_epochs": 40, "patience": 40, "l1": 0.0, "l2": 0.0,
                            "threads": 1, **kw})


def test_nnn_outputs_a_normalized_composition():
    import torch

    from thermoemu.models.nnn import NNN
    model = NNN(_small_nnn(22))
    logX, e = model(torch.randn(5, 24))
    np.testing.assert_allclose(logX.exp().sum(1).detach().numpy(), 1.0, rtol=1e-5)
    assert e.shape == (5, 2)


def test_nnn_trains_saves_and_loads(nnn_catalog, tmp_path):
    from thermoemu.models.nnn import load_nnn_set, train_nnn
    out = tmp_path / "nnn"
    entry = train_nnn(nnn_catalog, 0.1, out, config=_small_nnn(22), settings=_fast_settings(), progress=False,
                      fractions=SPLIT)
    history = np.array(entry["history"])
    assert history[-1, 1] < history[0, 1]          # validation L1 loss fell
    assert entry["metrics"]["mean_abs_dX"] < 0.1
    models, manifest = load_nnn_set(out, network="small22")
    assert list(models) == [0.1] and manifest["isotopes"][:2] == ["n", "p"]
    X0 = np.zeros((1, 22))
    X0[0, manifest["isotopes"].index("si28")] = 1.0
    X, e_nuc, eps_nu = models[0.1].predict([5e9], [1e8], X0)
    assert X.shape == (1, 22) and abs(X.sum() - 1) < 1e-5 and np.isfinite(e_nuc).all()
    # resume: a second call with the same checkpoint folder starts from the finished state
    again = train_nnn(nnn_catalog, 0.1, out, config=_small_nnn(22), settings=_fast_settings(), progress=False,
                      fractions=SPLIT)
    assert again["metrics"]["epochs"] == entry["metrics"]["epochs"]
    with pytest.raises(ValueError, match="dt = 5.0 s is not in the catalog"):
        train_nnn(nnn_catalog, 5.0, out, config=_small_nnn(22), settings=_fast_settings(), progress=False,
                  fractions=SPLIT)


def test_nnn_artifacts_refuse_pickles_and_other_networks(nnn_catalog, tmp_path):
    import json
    import shutil

    import torch

    from thermoemu.models.artifact import ArtifactError
    from thermoemu.models.nnn import load_nnn_set, train_nnn
    out = tmp_path / "nnn"
    entry = train_nnn(nnn_catalog, 1e-3, out, config=_small_nnn(22), settings=_fast_settings(max_epochs=2),
                      progress=False, fractions=SPLIT)
    with pytest.raises(ArtifactError, match="not 'mesa80'"):
        load_nnn_set(out, network="mesa80")
    bad = tmp_path / "pickled"
    shutil.copytree(out, bad)
    torch.save({"weights": torch.zeros(3)}, bad / entry["file"])
    with pytest.raises(ArtifactError, match="sha256|safetensors"):
        load_nnn_set(bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    pt = bad / "weights.pt"
    torch.save({"weights": torch.zeros(3)}, pt)
    manifest["models"]["0.001"]["file"] = "weights.pt"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="never unpickles"):
        load_nnn_set(bad)


def test_nuclear_evaluation_against_the_same_network_is_exact(nnn_catalog, tmp_path):
    """With the catalog itself built by small22, the 'small net' must reproduce it exactly; the
    NNN errors are finite and the table and plot are written."""
    from thermoemu.models.nnn import train_nnn
    from thermoemu.nuclear_evaluate import evaluate_nuclear, format_nuclear_table, plot_nuclear_evaluation
    epochs = {dt: train_nnn(nnn_catalog, dt, tmp_path / "nnn", config=_small_nnn(22),
                            settings=_fast_settings(max_epochs=5 if dt < 0.01 else 7), progress=False,
                            fractions=SPLIT)["metrics"]["epochs"] for dt in (1e-3, 0.1)}
    assert epochs == {1e-3: 5, 0.1: 7}  # separate checkpoints per dt (0.001 and 0.1 once collided)
    ds = evaluate_nuclear(tmp_path / "nnn", nnn_catalog)
    assert ds["dt"].values.tolist() == [1e-3, 0.1]
    small = ds["error"].sel(model="small22")
    assert small.shape == (2, 4) and float(small.max()) < 1e-6
    nnn = ds["error"].sel(model="nnn")
    assert np.isfinite(nnn).all() and float(nnn.min()) > 0
    table = format_nuclear_table(ds)
    assert table.count("\n") == 3 and "| 0.1 |" in table
    plot_nuclear_evaluation(ds, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 1000
