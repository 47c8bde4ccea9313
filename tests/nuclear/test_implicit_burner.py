"""The compiled burner (thermoemu.nuclear.implicit): its kernel against pynucastro's generated code,
its integrator against scipy's BDF, NSE, bad inputs, and the catalog default.

small22 in the session cache (tests/conftest.py); mesa80's figures are in docs/nuclear.md
(benchmarks/bench_burner.py).
"""

import numpy as np
import pytest

pytest.importorskip("pynucastro")

from thermoemu.nuclear import implicit
from thermoemu.nuclear.burner import BurnerStepper, burn, burn_times
from thermoemu.nuclear.network import NETWORKS, load_burner_kernel, load_network

START = {"si28": 0.5, "s32": 0.25, "ar36": 0.1, "ca40": 0.1, "fe54": 0.05}
RTOL = 1e-6


def _x0(net, comp=START):
    X = np.zeros(len(net.isotopes))
    for k, v in comp.items():
        X[net.isotopes.index(k)] = v
    return X


@pytest.fixture(scope="module")
def net():
    return load_network("small22")


@pytest.fixture(scope="module")
def plain(net):
    return load_network("small22", screening=False, directory=net.module.__file__.rsplit("/", 1)[0])


@pytest.mark.parametrize("screened", [True, False])
def test_kernel_is_the_generated_rhs_and_jacobian(net, plain, screened):
    """Rates from T-only parts x screening factors, weak tables, approximate rates, stoichiometry as
    arrays: pynucastro's dY/dt, neutrino loss and Jacobian to round-off, at random states."""
    network = net if screened else plain
    kernel = load_burner_kernel(network)
    rng = np.random.default_rng(4)
    n = len(network.isotopes)
    for trial in range(12):
        T, rho = 10 ** rng.uniform(9.2, 9.9), 10 ** rng.uniform(7, 9)
        X = rng.dirichlet(np.full(n, 0.3))
        if trial % 2:
            X[:2] = 0.0                      # free nucleons absent, as catalogs start
        Y = X / X.sum() / network.A
        ref = network.rhs_with_neutrino(0.0, np.append(Y, 0.0), rho, T)
        f = implicit.kernel_rhs(kernel, Y, rho, T)
        np.testing.assert_allclose(f[:n], ref[:n], rtol=0, atol=1e-13 * np.abs(ref[:n]).max())
        assert f[n] == pytest.approx(ref[n], rel=1e-13)
        J_ref = network.jacobian(0.0, Y, rho, T)
        J = implicit.kernel_jacobian(kernel, Y, rho, T)
        np.testing.assert_array_equal(J != 0, J_ref != 0)
        np.testing.assert_allclose(J, J_ref, rtol=0, atol=1e-13 * np.abs(J_ref).max())


def test_kernel_rhs_over_cells_is_the_one_cell_rhs(net):
    """kernel_rhs_cells (the evaluation's persistence eps_nu) equals kernel_rhs cell by cell; a cell
    outside the weak tables is flagged and NaN, not raised."""
    kernel = load_burner_kernel(net)
    rng = np.random.default_rng(7)
    n = len(net.isotopes)
    X = rng.dirichlet(np.full(n, 0.3), size=6)
    T, rho = 10 ** rng.uniform(9.2, 9.9, 6), 10 ** rng.uniform(7, 9, 6)
    T[-1] = 1e12  # above every weak-rate table
    out, ok = implicit.kernel_rhs_cells(kernel, X / net.A, rho, T)
    assert ok.tolist() == [True] * 5 + [False] and np.isnan(out[-1]).all()
    for i in range(5):
        np.testing.assert_array_equal(out[i], implicit.kernel_rhs(kernel, X[i] / net.A, rho[i], T[i]))


@pytest.mark.parametrize("T, rho", [(3e9, 1e7), (4.5e9, 1e8), (6e9, 1e9)])
def test_compiled_burner_agrees_with_scipy_bdf(net, T, rho):
    """Same method, same tolerances: X, Ye, e_nuc and eps_nu at every output time within a few rtol."""
    times = np.array([1e-6, 1e-3, 0.1, 10.0, 100.0])
    X0 = _x0(net, {"si28": 0.6, "o16": 0.2, "s32": 0.1, "fe54": 0.05, "ni56": 0.05})
    a = burn_times(net, [rho], [T], X0[None], times, method="compiled")
    b = burn_times(net, [rho], [T], X0[None], times, method="BDF")
    assert a.success.all() and b.success.all() and a.status[0] == 0
    np.testing.assert_allclose(a.mass_fraction, b.mass_fraction, rtol=0, atol=3 * RTOL)
    np.testing.assert_allclose(a.ye, b.ye, rtol=3 * RTOL)
    scale = np.abs(b.e_nuc).max()
    np.testing.assert_allclose(a.e_nuc, b.e_nuc, rtol=10 * RTOL, atol=10 * RTOL * scale)
    np.testing.assert_allclose(a.eps_nu, b.eps_nu, rtol=10 * RTOL)
    # the same BDF: about the same work
    assert 0.8 < a.nfev[0] / b.nfev[0] < 1.25


def test_compiled_burner_reaches_nse(plain):
    """The NSE check of test_nuclear.py, on the compiled burner: <= 1e-4 in X at the end state's Ye."""
    import pynucastro as pyna
    r = burn(plain, [1e8], [5e9], _x0(plain)[None], 1000.0, rtol=1e-8, method="compiled")
    assert r.success[0]
    nse = pyna.NSENetwork(rates=NETWORKS["small22"](pyna).get_rates())
    comp = nse.get_comp_nse(1e8, 5e9, float(r.ye[0]), use_coulomb_corr=False)
    X_nse = {("p" if str(k).lower() == "h1" else str(k).lower()): v for k, v in comp.X.items()}
    assert max(abs(x - X_nse.get(i, 0.0)) for i, x in zip(plain.isotopes, r.mass_fraction[0])) < 1e-4


def test_compiled_is_the_default_and_the_stepper_agrees(net):
    X0 = _x0(net)
    default = burn(net, [1e8, 3e8], [5e9, 4e9], np.stack([X0, X0]), [0.1, 1e-3])
    compiled = burn(net, [1e8, 3e8], [5e9, 4e9], np.stack([X0, X0]), [0.1, 1e-3], method="compiled")
    np.testing.assert_array_equal(default.mass_fraction, compiled.mass_fraction)
    assert default.success.all() and (default.nfev > 0).all()
    np.testing.assert_allclose(default.mass_fraction.sum(1), 1.0, atol=1e-8)
    step = BurnerStepper(net).step_arrays({"temperature": [5e9, 4e9], "density": [1e8, 3e8]},
                                          np.stack([X0, X0]).T, np.array([0.1, 1e-3]))
    np.testing.assert_array_equal(step.x.T, default.mass_fraction)
    np.testing.assert_array_equal(step.extra["e_nuc"], default.e_nuc)
    assert BurnerStepper(net).label == "small22 burner (compiled)"


def test_bad_inputs_name_the_value(net):
    X0 = _x0(net)[None]
    with pytest.raises(ValueError, match=r"dt = -0.5 s in cell 0: must be finite and > 0"):
        burn(net, [1e8], [5e9], X0, -0.5)
    bad = X0.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"mass_fraction = nan in cell 0, isotope 3: must be finite"):
        burn(net, [1e8], [5e9], bad, 0.1)
    with pytest.raises(ValueError, match=r"temperature = inf K in cell 1"):
        burn(net, [1e8, 1e8], [5e9, np.inf], np.repeat(X0, 2, 0), 0.1)
    with pytest.raises(ValueError, match=r"density = -1.0 g cm\^-3 in cell 0"):
        burn(net, [-1.0], [5e9], X0, 0.1)
    with pytest.raises(ValueError, match=r"method = 'RK45'; choose one of compiled, BDF, LSODA, Radau"):
        burn(net, [1e8], [5e9], X0, 0.1, method="RK45")
    with pytest.raises(ValueError, match=r"times = \[0.1, 0.01\] s"):
        burn_times(net, [1e8], [5e9], X0, [0.1, 0.01])


def test_leaving_a_weak_rate_table_is_a_status_not_a_crash(net):
    """rho Ye = 1e12 g/cc is beyond the weak tables (pynucastro raises there); the cell fails with
    status 4 and the others burn."""
    X0 = np.repeat(_x0(net)[None], 2, 0)
    r = burn(net, [2e12, 1e8], [5e9, 5e9], X0, 0.1)
    assert r.status.tolist() == [4, 0] and r.success.tolist() == [False, True]
    assert np.isnan(r.mass_fraction[0]).all() and np.isfinite(r.mass_fraction[1]).all()


def test_kernel_refuses_generated_code_it_does_not_understand():
    source = ("def do_rate_eval_screened(t, Y, rho, T):\n\n    tf = Tfactors(T)\n    rate_eval = RateEval()\n"
              "    something_new(rate_eval, tf, extra=1)\n\n    return rate_eval\n")
    with pytest.raises(RuntimeError, match="does not understand this line .*something_new"):
        implicit._rate_calls(source)


def test_catalog_specs_default_to_the_compiled_burner():
    from thermoemu.core.spec import SpecError, validate_spec
    from thermoemu.nuclear.catalog import provenance
    raw = {"name": "x", "network": {"kind": "nuclear", "options": {"network": "small22"}},
           "sampling": {"log10_temperature": [9.3, 9.7], "log10_density": [7.5, 8.5],
                        "composition": {"ye": [0.46, 0.5]}},
           "timestep": {"law": "list", "values": [1e-3, 1e-1]}, "samples": 2, "shard_size": 2, "seed": 1,
           "record": {"state": True}}
    spec = validate_spec(raw)
    assert spec.raw["solver"]["method"] == "compiled"
    assert "compiled-BDF" in provenance(spec)["solver"]
    raw["solver"] = {"method": "RK45"}
    with pytest.raises(SpecError, match="solver.method: 'RK45' \\(allowed: compiled, BDF, LSODA, Radau\\)"):
        validate_spec(raw)


# ----------------------------------------------------------------------------- the physics step (issue 27)
def test_physics_step_follows_the_burn_from_a_trajectory_state(net):
    """From a state on its own trajectory (START burned for 1e-3 s), the linearly implicit substeps
    follow the burner: composition error far below the change, Ye change and e_nuc close, mass conserved,
    and the error estimate shrinks with more substeps."""
    from thermoemu.nuclear.physics_step import physics_step
    kernel = load_burner_kernel(net)
    rho, T = np.array([1e8, 3e8]), np.array([3.5e9, 4e9])
    X_start = np.stack([_x0(net)] * 2)
    X0 = burn_times(net, rho, T, X_start, [1e-3]).mass_fraction[:, 0]
    dt = 1e-3
    ref = burn_times(net, rho, T, X0, [dt])
    X_ref = ref.mass_fraction[:, 0]
    change = np.abs(X_ref - X0).sum(axis=1)
    z_over_a = net.Z / net.A
    errors = []
    for substeps in (2, 8):
        r = physics_step(kernel, rho, T, X0, dt, substeps=substeps)
        assert (r["status"] == 0).all() and (r["negative"] < 1e-10).all()
        np.testing.assert_allclose(r["mass_fraction"].sum(axis=1), 1.0, atol=1e-12)
        err = np.abs(r["mass_fraction"] - X_ref).sum(axis=1)
        errors.append((err, r["error"]))
    err8, est8 = errors[1]
    assert (err8 < 0.2 * change).all()
    assert (est8 < errors[0][1]).all()
    r = physics_step(kernel, rho, T, X0, dt, substeps=8)
    dye_ref = X_ref @ z_over_a - X0 @ z_over_a
    dye = r["mass_fraction"] @ z_over_a - X0 @ z_over_a
    assert (np.abs(dye - dye_ref) < 0.5 * np.abs(dye_ref) + 1e-12).all()  # small22's few weak rates: dYe ~ 1e-8
    # e_nuc, a small difference of large mass-excess terms near quasi-equilibrium: within 40 % (persistence: 100 %)
    np.testing.assert_allclose(r["e_nuc"], ref.e_nuc[:, 0], rtol=0.4)
    assert (r["eps_nu"] > 0).all()


def test_physics_step_rejects_bad_dt_and_flags_a_cell_outside_the_tables(net):
    from thermoemu.nuclear.physics_step import physics_step
    kernel = load_burner_kernel(net)
    X0 = np.stack([_x0(net)] * 2)
    with pytest.raises(ValueError, match=r"dt = -1.0 s: must be finite and > 0"):
        physics_step(kernel, [1e8, 1e8], [3e9, 3e9], X0, -1.0)
    r = physics_step(kernel, [1e8, 1e8], [3e9, 1e12], X0, 1e-3)
    assert r["status"].tolist() == [0, 3] and np.isnan(r["mass_fraction"][1]).all()
