"""The errors bayesstruct raises for what a user can fix, and the exit codes the CLI gives them.

Every one of these is caught by ``bayesstruct`` and printed as one line (no traceback):

==========================  =========  ==================================================
error                       exit code  meaning
==========================  =========  ==================================================
:class:`UserInputError`     2          a bad config, file, argument or run directory
:class:`NonFiniteLossError` 3          training diverged (NaN/inf loss or log density)
==========================  =========  ==================================================

Library code raises the most specific subclass and names the file, field or argument and what
is wrong with it; the CLI adds nothing but the ``error:`` prefix.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "NonFiniteLossError", "RunDirError",
           "UnsupportedLayerError", "UserInputError"]


class UserInputError(ValueError):
    """Something the user gave (a config, a file, an argument) cannot be used; the message
    names it and says what is wrong. The CLI exits 2."""


class ConfigError(UserInputError):
    """An invalid config: the message names the field, the bad value and the allowed ones."""


class DataError(UserInputError):
    """A data file exists but cannot be read (truncated, corrupt, wrong format, too small for
    the requested split); the message names the file."""


class CheckpointError(UserInputError):
    """A checkpoint or posterior file cannot be read, or belongs to another run."""


class RunDirError(UserInputError):
    """A run directory cannot be used: held by another process, or not a bayesstruct run."""


class UnsupportedLayerError(UserInputError, NotImplementedError):
    """A network holds a layer or parameter the chosen prior or guide cannot handle; raised
    before any training, naming the module path, its type and what would make it work."""


class NonFiniteLossError(FloatingPointError):
    """The loss or log density became NaN/inf; the message says which engine, where, and where
    the last good checkpoint is. The CLI exits 3."""
