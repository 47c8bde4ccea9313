"""Command line: ``thermoemu build | collapse | integrate | sample | train | evaluate | saha-table | validate | burn |
train-nnn | evaluate-nnn | apply``.

One entry point. The commands that know no physics (``build``) live here; each wing adds its own
through its chemistry (:meth:`thermoemu.core.protocols.Chemistry.add_commands`), so this module
imports no wing; ``apply`` comes from :mod:`thermoemu.snapshots`.
"""

from __future__ import annotations

import argparse
import sys
import time

from .core.artifacts import ArtifactError
from .core.catalog import CatalogError
from .core.grid import StateError
from .core.protocols import chemistries
from .snapshots.apply import ApplyError
from .snapshots.cli import add_commands as snapshot_commands
from .units import UnitsError

__all__ = ["build_parser", "main"]


def _build(a):
    from .core.catalog import build_catalog

    t0 = time.perf_counter()
    index = build_catalog(a.spec, a.out, samples=a.samples, n_workers=a.workers, scheduler=a.scheduler,
                          progress=not a.quiet)
    wall = time.perf_counter() - t0
    print(f"catalog {index['name']}: {index['samples_written']} samples in {len(index['shards'])} shards "
          f"({index['failed']} failed integrations, flagged) in {a.out}; {wall:.1f} s")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="thermoemu", description="Stiff astrophysical thermochemistry for simulations.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or resume a training catalog from a YAML spec on a dask cluster")
    b.add_argument("spec", help="catalog spec (YAML file, or a built-in name such as popiii-r1)")
    b.add_argument("--out", required=True, help="catalog folder (shards + index.json)")
    b.add_argument("--samples", type=int, default=None, help="override the spec's sample count")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of a LocalCluster (default: number of cores)")
    where.add_argument("--scheduler", default=None, help="address of an existing dask scheduler, e.g. tcp://host:8786")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=_build)
    for chemistry in chemistries().values():
        chemistry.add_commands(sub)
    snapshot_commands(sub)
    return p


def _legacy(argv):
    """Old spellings that still work: ``evaluate --nuclear-test CATALOG`` is ``evaluate-nnn CATALOG``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"] and any(a == "--nuclear-test" or a.startswith("--nuclear-test=") for a in argv):
        rest, catalog, i = [], None, 1
        while i < len(argv):
            if argv[i] == "--nuclear-test":
                catalog, i = argv[i + 1] if i + 1 < len(argv) else None, i + 2
                continue
            if argv[i].startswith("--nuclear-test="):
                catalog = argv[i].split("=", 1)[1]
            else:
                rest.append(argv[i])
            i += 1
        print("thermoemu evaluate --nuclear-test is now thermoemu evaluate-nnn CATALOG", file=sys.stderr)
        argv = ["evaluate-nnn"] + ([catalog] if catalog else []) + rest
    return argv


def main(argv=None):
    import thermoemu  # noqa: F401 - registers the built-in chemistries and ds.emu
    args = build_parser().parse_args(_legacy(argv))
    try:
        return args.func(args)
    except (StateError, UnitsError, ValueError, FileNotFoundError, CatalogError, ArtifactError, ApplyError) as exc:
        print(f"thermoemu {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
