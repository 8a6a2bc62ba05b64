"""The base of every error a user can cause.

Kept free of imports so that the command lines can load it before anything heavy."""


class TrtnetError(Exception):
    """A mistake in a model, a weights file, a command line or a file system path: reported as one line."""
