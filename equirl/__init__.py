"""equirl: equivariant reinforcement learning for 3D, morphology-agnostic locomotion."""

from equirl.errors import ConfigError, EquirlError, MorphologyError

__all__ = ["ConfigError", "EquirlError", "MorphologyError"]
__version__ = "0.1.0"
