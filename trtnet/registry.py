"""Tables filled by decorators: the ops, their TensorRT emitters and PyTorch references, and the interpreter's
layer kernels. One rule for all of them: a name registered twice is refused at import, naming both places, so
a second definition can neither replace the first nor be dropped in its favour without notice."""
import inspect
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class InternalError(AssertionError):
    """A mistake in trtnet itself rather than in a model or a file: a name registered twice, or an op recording
    an attribute its declaration does not give."""


def place(fn):
    """file:line where `fn` is defined (paths inside the source tree relative to it)."""
    code = inspect.unwrap(fn).__code__
    path = os.path.abspath(code.co_filename)
    if path.startswith(_ROOT + os.sep):
        path = os.path.relpath(path, _ROOT)
    return f"{path}:{code.co_firstlineno}"


class Registry(dict):
    """A dict from names to what is registered under them, with the decorator that fills it."""

    def __init__(self, what):
        super().__init__()
        self.what, self.places = what, {}

    def add(self, key, value, fn):
        """Register `value` under `key`; `fn`, the function it comes from, says where in errors."""
        if key in self:
            raise InternalError(f"{self.what} '{key}' is registered twice: at {self.places.get(key, '?')} and at "
                                f"{place(fn)}")
        self[key] = value
        self.places[key] = place(fn)

    def register(self, *keys):
        """A decorator registering the decorated function under each of `keys`."""
        def decorate(fn):
            for key in keys:
                self.add(key, fn, fn)
            return fn
        return decorate
