"""The project's own exception types.

Every error a user can cause (a bad file, a bad body, a bad config value) is
raised as one of these, with the offending file or value named in the message.
"""


class EquirlError(Exception):
    """Base class of every error equirl raises on purpose."""


class MorphologyError(EquirlError):
    """A body description or MJCF file that equirl cannot turn into a limb graph."""


class ConfigError(EquirlError):
    """A configuration value that is out of range or inconsistent."""


class TrainingDiverged(EquirlError):
    """A training run whose losses stopped being finite or whose critic ran away: it was stopped."""
