"""equirl: equivariant reinforcement learning for 3D, morphology-agnostic locomotion."""

from equirl.envs.registration import register_envs as _register_envs
from equirl.errors import ConfigError, EquirlError, MorphologyError

_register_envs()  # gymnasium.make("equirl/walker_7_full-v0") works after `import equirl`

__all__ = ["ConfigError", "EquirlError", "MorphologyError"]
__version__ = "0.1.0"
