"""Events of a long piece of work (building, checking, quantizing): the library announces its phases and their
progress, and whoever called it (a command line's timeline and bars, a test, a notebook) listens. Nothing is
printed here."""
import time
from contextlib import contextmanager


class Listener:
    """Override what you need: each phase starts, may report progress, and finishes (with the exception that
    ended it, or None)."""

    def started(self, phase):
        pass

    def progress(self, phase, done, total):
        pass

    def finished(self, phase, seconds, error):
        pass


class Events:
    """The listeners of one run; the library's functions take one (or None: nobody listens)."""

    def __init__(self, *listeners):
        self.listeners = [x for x in listeners if x is not None]
        self.current = []

    @contextmanager
    def phase(self, name):
        """Announce a phase around a block of work."""
        self.current.append(name)
        for x in self.listeners:
            x.started(name)
        start, error = time.perf_counter(), None
        try:
            yield self
        except BaseException as e:
            error = e
            raise
        finally:
            self.current.pop()
            for x in self.listeners:
                x.finished(name, time.perf_counter() - start, error)

    def progress(self, done, total, phase=None):
        """`done` of `total` steps of the innermost phase (or `phase`)."""
        name = phase or (self.current[-1] if self.current else "")
        for x in self.listeners:
            x.progress(name, done, total)

    def step(self, phase=None):
        """A callback (done, total) -> None reporting progress, for loops that take one (the interpreter's);
        None where nobody listens, so that such loops skip the counting."""
        return (lambda done, total: self.progress(done, total, phase)) if self.listeners else None
