"""The one exception type that the command line turns into a one-line message."""


class ArchRepairError(Exception):
    """Bad input or an impossible request, with a message that says what to do.

    Raise it for anything a user can fix (a missing file, an unknown model or block name,
    a checkpoint that does not fit the data); let programming errors raise their own types.
    """
