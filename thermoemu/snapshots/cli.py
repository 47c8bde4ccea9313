"""``thermoemu apply INPUT --dt DT -o OUTPUT``: a simulation snapshot, stepped and written back."""

from __future__ import annotations

import json
import sys

__all__ = ["add_commands"]

#: Cells per slab by default (the same as :data:`thermoemu.snapshots.apply.CHUNK_CELLS`; a test checks).
CHUNK_CELLS = 131072


def _apply(a):
    from .apply import apply_snapshot

    summary = apply_snapshot(a.input, a.dt, a.output, model=a.model, reference=a.reference, update=a.update,
                             out_of_domain=a.out_of_domain, convention=a.convention, chunk_cells=a.chunk_cells,
                             scheduler=a.scheduler, n_workers=a.workers, progress=not a.quiet)
    rate = summary["cells_per_s"]
    print(f"applied {'the reference solver' if a.reference else a.model + ' models'} to {summary['cells']} cells "
          f"in {summary['wall_s']:.1f} s ({rate:.0f} cells/s; {summary['parts_computed']} slabs computed, "
          f"{summary['parts_kept']} kept from an earlier run); {summary['failed']} flagged, "
          f"{summary['out_of_domain']} out of domain, {summary['fallback']} by the reference fallback; "
          f"wrote {summary['output']}" if rate else f"nothing to compute; wrote {summary['output']}")
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f, indent=1, default=str)
    return 0


def add_commands(sub):
    """Add ``apply`` to the ``thermoemu`` parser's subparsers."""
    p = sub.add_parser("apply", help="step every cell of a snapshot (Grackle fields, a state grid, a yt-loadable "
                                     "file) and write it back in its own convention")
    p.add_argument("input", help="snapshot: .nc, .zarr, .h5 with Grackle-named fields, or a file yt can load")
    p.add_argument("--dt", required=True,
                   help="'1e10 s' (any time units), '0.01 t_ff' (free-fall fraction per cell), or the name of a "
                        "per-cell field (code time units unless it has a units attribute)")
    p.add_argument("-o", "--output", required=True, help="output .nc or .zarr")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", default="default", help="model folder or 'default' (the shipped models)")
    which.add_argument("--reference", action="store_true", help="step with the reference solver instead")
    p.add_argument("--update", default=None, choices=["timescale", "plain", "shaped", "tangent"],
                   help="the emulator's update rule (default: the model set's own: plain for the shipped "
                        "physics-first set, timescale = OS25 eq. 8 for DeepONet sets such as os25-deeponet)")
    p.add_argument("--out-of-domain", default="reference", choices=["reference", "flag", "raise"])
    p.add_argument("--convention", default=None, choices=["grackle", "thermoemu"],
                   help="the input's convention (default: detected from its fields)")
    p.add_argument("--chunk-cells", type=int, default=CHUNK_CELLS,
                   help=f"cells per slab and dask task (default {CHUNK_CELLS}); memory per worker grows with it")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of a LocalCluster (default: every core; 0: in this process)")
    where.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    p.add_argument("--summary", default=None, help="also write the summary as JSON to this file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_apply)
    return sys.modules[__name__]
