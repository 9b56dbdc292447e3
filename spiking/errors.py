"""The project's user-error type: bad input or settings, told in one line without a traceback."""


class SpikingError(ValueError):
    """A problem with the user's input, files or settings (not a bug): the command line prints its
    message in one line and exits with status 2. Every project error type derives from it."""
