"""torch emulator models: networks, feature scaling, training and safe artifacts."""

from ...core.artifacts import ArtifactError
from ...core.training import TrainSettings
from .artifact import load_model_set, read_manifest, save_region
from .features import VARIABLES
from .nets import NetConfig
from .region import RegionModel
from .training import train_region

__all__ = ["ArtifactError", "NetConfig", "RegionModel", "TrainSettings", "VARIABLES", "load_model_set",
           "read_manifest", "save_region", "train_region"]
