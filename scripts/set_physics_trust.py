"""Record a region's own physics trust in a physics-first model set's manifest.

    python scripts/set_physics_trust.py MODEL_DIR REGION TRUST

The region's net is then applied only where the physics step's estimated error is at least TRUST
(``RegionModel.physics_trust``; the package default is ``PHYSICS_TRUST``). The nets were trained where
the error is at least ``PHYSICS_TRUST``, so a larger TRUST applies them on a subset of their training
states. The shipped set records 3.0 for region 3 (docs/emulator.md: the collapse at 0.01 t_ff).
"""

import sys
from pathlib import Path

from thermoemu.core.artifacts import MANIFEST
from thermoemu.primordial.models.artifact import read_manifest
from thermoemu.core.files import write_json_atomic


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        raise SystemExit(__doc__)
    model_dir, region, trust = Path(argv[0]), str(int(argv[1])), float(argv[2])
    if not trust >= 0:
        raise SystemExit(f"TRUST = {argv[2]!r}; must be >= 0")
    manifest = read_manifest(model_dir)
    entry = manifest["regions"].get(region)
    if entry is None or entry["predictor"]["config"]["kind"] != "residual":
        raise SystemExit(f"{model_dir}: region {region} is not a physics-first (residual) model")
    entry["physics_trust"] = trust
    write_json_atomic(model_dir / MANIFEST, manifest)
    print(f"{model_dir}: region {region} physics_trust = {trust:g}")


if __name__ == "__main__":
    main()
