"""The one exception type that the command line turns into a one-line message."""


class ArchRepairError(Exception):
    """Bad input or an impossible request, with a message that says what to do.

    Raise it for anything a user can fix (a missing file, an unknown model or block name,
    a checkpoint that does not fit the data); let programming errors raise their own types.
    """


class ArchRepairTypeError(ArchRepairError, TypeError):
    """A Python API argument of the wrong type (the message names the argument, what it got and what
    it takes)."""


class ArchRepairValueError(ArchRepairError, ValueError):
    """A Python API argument of the right type with a value it cannot take."""
