"""An installed wheel, run outside the source tree, finds its built-in catalog specs and shipped models
(package data), and its CLI finds both wings through the chemistry registry."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding a wheel of this tree (dependencies from the test venv's site-packages)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a clean copy: setuptools builds in the tree and would keep stale build/ files
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "results", "built", "__pycache__", ".pytest_cache"))
    wheels = base / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)]
    try:
        import setuptools
        if int(setuptools.__version__.split(".")[0]) >= 68:
            cmd.insert(5, "--no-build-isolation")  # the venv's own setuptools: no download
    except ImportError:
        pass
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    wheel = next(wheels.glob("thermoemu-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (numpy, xarray, torch, ...) from the test venv, without its editable thermoemu
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                          str(wheel)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return venv, base


def _run(venv, cwd, code):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_builtin_spec_name_and_shipped_models_from_an_installed_wheel(installed):
    venv, base = installed
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    run = _run(venv, elsewhere, """
        import thermoemu as te
        from pathlib import Path
        assert "site-packages" in te.__file__, te.__file__
        spec = te.load_spec("popiii-r1")
        nuclear = te.load_spec("si-mesa80-test")
        emulator = te.Emulator("default")
        nnn = te.NuclearEmulator("default")
        print(spec.name, spec.samples, nuclear.kind, sorted(emulator.regions), nnn.dts)
    """)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[:3] == ["popiii-r1", "100000", "nuclear"]
    assert "[0, 1, 2, 3, 4]" in run.stdout
    cli = subprocess.run([str(venv / "bin" / "python"), "-m", "thermoemu.cli", "build", "no-such-spec", "--out", "x"],
                         cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2
    assert "not a file, nor a built-in spec: popiii-r0, popiii-r1" in cli.stderr
    helptext = subprocess.run([str(venv / "bin" / "python"), "-m", "thermoemu.cli", "--help"], cwd=elsewhere,
                              capture_output=True, text=True, timeout=300).stdout
    for command in ("build", "collapse", "evaluate", "burn", "train-nnn", "evaluate-nnn", "validate"):
        assert command in helptext
