"""Catalog specs, builds on a real dask cluster, resumption after failures, and open_catalog."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from thermoemu.core.catalog import CatalogError, build_catalog, build_shard, open_catalog
from thermoemu.core.files import file_sha256
from thermoemu.primordial.catalog import dt_max_over_t_ff, sample_inputs, sampling_ranges, timescale_eps
from thermoemu.core.spec import SpecError, load_spec, validate_spec

SPECS = [f"popiii-r{r}" for r in range(5)]


@pytest.fixture(scope="module")
def small_spec():
    """Region 1, 3 shards of 24 samples (the last one 16), with timescales."""
    raw = copy.deepcopy(load_spec("popiii-r1").raw)
    raw.update(name="test-r1", samples=64, shard_size=24, seed=7)
    return validate_spec(raw)


@pytest.fixture(scope="module")
def clean_build(small_spec, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    index = build_catalog(small_spec, out, client=dask_client, progress=False)
    return out, index


# ---------------------------------------------------------------- specs
@pytest.mark.parametrize("name", SPECS)
def test_builtin_specs_follow_table1(name):
    from thermoemu.primordial.sampling import REGIONS
    spec = load_spec(name)
    region = int(name[-1])
    assert sampling_ranges(spec) == {k: tuple(float(x) for x in v) for k, v in REGIONS[region].items()}
    assert dt_max_over_t_ff(spec) == pytest.approx(10**0.5)
    assert timescale_eps(spec) == 0.1
    assert spec.samples >= 100_000


def _raw():
    return copy.deepcopy(load_spec("popiii-r1").raw)


def _set(raw, path, value):
    *head, last = path.split(".")
    d = raw
    for k in head:
        d = d[k]
    if value is KeyError:
        del d[last]
    else:
        d[last] = value
    return raw


@pytest.mark.parametrize("path, value, message", [
    ("colour", "red", "colour: unknown key"),
    ("solver.rtoll", 1e-4, "solver.rtoll: unknown key"),
    ("network.options.k2", "case_c", "network.options"),
    ("network.options.k99", "x", "network.options.k99: unknown key"),
    ("network.kind", "nuclear-x", "network.kind: unknown network 'nuclear-x'"),
    ("sampling.log10_ranges.n_H", [8, 4], "sampling.log10_ranges.n_H: min 8 > max 4"),
    ("sampling.log10_ranges.temperature", [1, 9], "outside the allowed"),
    ("sampling.log10_ranges.H", "0..1", "expected a list [min, max]"),
    ("sampling.log10_ranges.trace", KeyError, "sampling.log10_ranges.trace: missing required field"),
    ("samples", "many", "samples: expected an integer, got str 'many'"),
    ("samples", 0, "samples: must be >= 1"),
    ("shard_size", 2.5, "shard_size: expected an integer"),
    ("seed", KeyError, "seed: missing required field"),
    ("timestep.law", "uniform", "timestep.law: unknown law 'uniform'"),
    ("timestep.dt_max_over_t_ff", -1.0, "timestep.dt_max_over_t_ff: must be > 0"),
    ("record.timescales.eps", 1.5, "record.timescales.eps: must lie in (0, 1)"),
    ("solver.rtol", -1.0, "solver: rtol must be > 0"),
])
def test_bad_specs_name_key_and_problem(path, value, message):
    with pytest.raises(SpecError) as err:
        validate_spec(_set(_raw(), path, value))
    assert message in str(err.value)


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(p)
    with pytest.raises(FileNotFoundError, match="popiii-r9"):
        load_spec("popiii-r9")


# ---------------------------------------------------------------- sampling
def test_timestep_law_and_shard_seeds(small_spec):
    n_H, x0, dt, dt_max = sample_inputs(small_spec, 0, 4000)
    u = np.log10(1 + dt) / np.log10(1 + dt_max)
    assert (dt >= 0).all() and (dt <= dt_max).all()
    # log10(1 + dt/s) uniform in [0, log10(1 + dt_max/s)]: quartiles of u near 1/4, 1/2, 3/4
    assert np.allclose(np.percentile(u, [25, 50, 75]), [0.25, 0.5, 0.75], atol=0.03)
    lo, hi = sampling_ranges(small_spec)["n_H"]
    assert (np.log10(n_H) >= lo).all() and (np.log10(n_H) <= hi).all()
    again = sample_inputs(small_spec, 0, 4000)
    other = sample_inputs(small_spec, 1, 4000)
    assert np.array_equal(again[0], n_H) and not np.array_equal(other[0], n_H)


def test_a_shard_rebuilt_alone_is_byte_identical(small_spec, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    ea = build_shard(small_spec.raw, 1, 24, str(a))
    eb = build_shard(small_spec.raw, 1, 24, str(b))
    assert ea["sha256"] == eb["sha256"] == file_sha256(a / "shard-00001.nc")


# ---------------------------------------------------------------- builds
def test_clean_build_is_complete(clean_build, small_spec):
    out, index = clean_build
    assert index["complete"] and index["samples_written"] == 64
    assert [e["samples"] for e in index["shards"]] == [24, 24, 16]
    assert index["spec_sha256"] == small_spec.content_hash()
    assert index["rate_set_version"] and index["solver_settings"]["rtol"] == 1e-4
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk["shards"] == index["shards"]
    assert not list(out.glob("*.part"))


def _shard_checksums(out):
    return {p.name: file_sha256(p) for p in sorted(out.glob("shard-*.nc"))}


def test_failed_shard_task_then_rerun_gives_exact_catalog(clean_build, small_spec, dask_client, tmp_path):
    clean_out, _ = clean_build
    out = tmp_path / "faulty"
    out.mkdir()
    # an obstacle where shard 1 must be renamed into place: its task raises on the worker
    (out / "shard-00001.nc").mkdir()
    with pytest.raises(CatalogError, match="1 of 3 shards failed.*shard 1"):
        build_catalog(small_spec, out, client=dask_client, progress=False)
    index = json.loads((out / "index.json").read_text())
    assert not index["complete"] and sorted(e["shard"] for e in index["shards"]) == [0, 2]
    with pytest.raises(CatalogError, match="incomplete"):
        open_catalog(out)
    kept = {n: os.stat(out / n).st_mtime_ns for n in ("shard-00000.nc", "shard-00002.nc")}
    (out / "shard-00001.nc").rmdir()
    index = build_catalog(small_spec, out, client=dask_client, progress=False)
    assert index["complete"] and index["samples_written"] == 64
    assert {n: os.stat(out / n).st_mtime_ns for n in kept} == kept  # finished shards were not rebuilt
    assert _shard_checksums(out) == _shard_checksums(clean_out)
    ds = open_catalog(out, verify=True)
    ids = ds["sample"].values
    assert ids.size == 64 and np.unique(ids).size == 64


def test_killed_build_resumes_from_the_command_line(clean_build, small_spec, tmp_path):
    """SIGKILL the whole `thermoemu build` (client and workers) mid-build, then run it again."""
    clean_out, _ = clean_build
    raw = copy.deepcopy(small_spec.raw)
    raw["samples"] = 144  # 6 shards of 24: the first three are those of the clean build
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "thermoemu.cli", "build", str(spec_file), "--out", str(out), "--workers", "1", "-q"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("shard-*.nc"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(list(out.glob("shard-*.nc")))
    assert 2 <= n_before < 6, "the build should have been killed part-way"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ds = open_catalog(out, verify=True)
    ids = ds["sample"].values
    assert ids.size == 144 and np.unique(ids).size == 144
    assert np.array_equal(np.sort(ids), np.arange(144))
    clean = _shard_checksums(clean_out)
    resumed = _shard_checksums(out)
    assert {k: resumed[k] for k in ("shard-00000.nc", "shard-00001.nc")} == \
        {k: clean[k] for k in ("shard-00000.nc", "shard-00001.nc")}


def test_rerun_of_a_complete_build_changes_nothing(clean_build, small_spec):
    """A complete catalog re-run starts no cluster and keeps its index, build record included."""
    out, _ = clean_build
    before = (out / "index.json").read_bytes()
    shards = _shard_checksums(out)
    index = build_catalog(small_spec, out, n_workers=1, progress=False)
    assert (out / "index.json").read_bytes() == before  # a new cluster would have changed its address
    assert index == json.loads(before) and _shard_checksums(out) == shards


def test_other_spec_in_the_same_folder_is_refused(clean_build, small_spec, dask_client):
    out, _ = clean_build
    raw = copy.deepcopy(small_spec.raw)
    raw["seed"] = 8
    with pytest.raises(CatalogError, match="built from another spec"):
        build_catalog(validate_spec(raw), out, client=dask_client, progress=False)


# ---------------------------------------------------------------- open
def test_open_catalog_is_lazy_with_units_flags_and_splits(clean_build):
    import dask.array as da
    out, _ = clean_build
    ds = open_catalog(out)
    assert isinstance(ds["abundance"].data, da.Array) and isinstance(ds["tau_eps"].data, da.Array)
    assert ds["n_H"].attrs["units"] == "cm^-3" and ds["dt"].attrs["units"] == "s"
    assert ds["temperature"].attrs["units"] == "K" and ds["tau_eps"].attrs["units"] == "s"
    assert ds.sizes["sample"] == 64 and list(ds["variable"].values)[-1] == "temperature"
    assert (ds["success"] == 1).all()
    # conservation of the targets
    from thermoemu.primordial.physics.network import CONSERVATION_MATRIX
    y = ds["abundance"].values
    assert np.abs(CONSERVATION_MATRIX[0] @ y - 1).max() < 1e-12
    # timescales: capped at dt_max, and every crossing not later than the cap
    tau, dt_max = ds["tau_eps"].values, ds["dt_max"].values
    assert (tau <= dt_max * (1 + 1e-12)).all() and (tau > 0).all()
    assert set(np.unique(ds["tau_sign"].values)) <= {-1, 1}
    parts = [open_catalog(out, split=s)["sample"].values for s in ("train", "validation", "test")]
    assert sum(p.size for p in parts) == 64
    assert np.unique(np.concatenate(parts)).size == 64
    assert np.array_equal(open_catalog(out, split="test")["sample"].values, parts[2])
    q = open_catalog(out, quantify=True)
    assert str(q["n_H"].data.units) == "1 / centimeter ** 3"
    with pytest.raises(ValueError, match="split = 'dev'"):
        open_catalog(out, split="dev")


def test_splits_are_a_fixed_hash_of_the_sample_id():
    from thermoemu.core.catalog import _split_of
    ids = np.arange(200_000)
    s = _split_of(ids, 7, (0.9, 0.05, 0.05))
    frac = np.bincount(s, minlength=3) / ids.size
    assert np.allclose(frac, [0.9, 0.05, 0.05], atol=0.003)
    assert np.array_equal(_split_of(ids[1000:2000], 7, (0.9, 0.05, 0.05)), s[1000:2000])


def test_open_rejects_a_folder_without_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a thermoemu catalog"):
        open_catalog(tmp_path)
