"""The base of every error a user can cause, and the files to remove if the process is stopped.

Kept free of imports so that the command lines can load it before anything heavy."""


class TrtnetError(Exception):
    """A mistake in a model, a weights file, a command line or a file system path: reported as one line."""


# Paths being written (temporary files, directories made for an output): removed when a signal stops the
# process before the writer's own cleanup can run.
PENDING = set()
