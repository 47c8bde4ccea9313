"""Record a region's own physics trust (and backward-Euler answer) in a physics-first model set's manifest.

    python scripts/set_physics_trust.py MODEL_DIR REGION TRUST [--backward-euler CHANGE | --no-backward-euler]

The region's net is then applied only where the physics step's estimated error is at least TRUST
(``RegionModel.physics_trust``; the package default is ``PHYSICS_TRUST``). The nets were trained where
the error is at least ``PHYSICS_TRUST``, so a larger TRUST applies them on a subset of their training
states. The shipped set records 3.0 for region 3 (docs/emulator.md: the collapse at 0.01 t_ff).

``--backward-euler CHANGE`` records ``RegionModel.backward_euler_change``: where the net would correct,
the network's backward-Euler step answers wherever its Newton iteration converges and no variable
changes by more than CHANGE (relative). The shipped set records 0.1 for region 4 (docs/emulator.md).
"""

import argparse
from pathlib import Path

from thermoemu.core.artifacts import MANIFEST
from thermoemu.core.files import write_json_atomic
from thermoemu.primordial.models.artifact import read_manifest


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage=__doc__.split("\n\n")[1].strip())
    p.add_argument("model_dir", type=Path)
    p.add_argument("region", type=int)
    p.add_argument("trust", type=float)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--backward-euler", type=float, metavar="CHANGE")
    group.add_argument("--no-backward-euler", action="store_true")
    a = p.parse_args(argv)
    if not a.trust >= 0:
        raise SystemExit(f"TRUST = {a.trust!r}; must be >= 0")
    if a.backward_euler is not None and not a.backward_euler > 0:
        raise SystemExit(f"--backward-euler CHANGE = {a.backward_euler!r}; must be > 0")
    manifest = read_manifest(a.model_dir)
    entry = manifest["regions"].get(str(a.region))
    if entry is None or entry["predictor"]["config"]["kind"] != "residual":
        raise SystemExit(f"{a.model_dir}: region {a.region} is not a physics-first (residual) model")
    entry["physics_trust"] = a.trust
    if a.backward_euler is not None:
        entry["backward_euler_change"] = a.backward_euler
    elif a.no_backward_euler:
        entry.pop("backward_euler_change", None)
    write_json_atomic(a.model_dir / MANIFEST, manifest)
    print(f"{a.model_dir}: region {a.region} physics_trust = {a.trust:g}, backward_euler_change = "
          f"{entry.get('backward_euler_change')}")


if __name__ == "__main__":
    main()
