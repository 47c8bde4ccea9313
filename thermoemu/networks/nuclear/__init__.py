"""Nuclear reaction networks for silicon burning, generated with pynucastro (optional extra ``nuclear``)."""

from .build import NETWORKS, NuclearNetwork, load_network

__all__ = ["NETWORKS", "NuclearNetwork", "load_network"]
