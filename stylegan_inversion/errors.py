"""The base class of errors whose message is complete for a user (names the file or key and the reason).

The CLIs show such an error as one ``error: ...`` line and exit 1, never a traceback; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error caused by input, configuration or environment, explained fully by its message."""


class DeviceError(UserError, RuntimeError):
    """A requested compute device that this machine does not have."""


class SetupError(UserError, RuntimeError):
    """A model file or package the study needs is missing or unusable."""
