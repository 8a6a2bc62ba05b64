"""Writing outputs whole: a reader sees the old file (or directory) or the new one, never half of one, and a
failure leaves nothing behind. While a write is under way its temporary paths are in PENDING, which the command
lines remove when a signal stops the process before the writer's own cleanup can run.

Kept free of heavy imports so that the command lines can load it first."""
import os
import shutil
import tempfile
from contextlib import contextmanager

from .errors import TrtnetError

# Paths being written (temporary files and directories, directories made for an output).
PENDING = set()


def write_atomic(path, data):
    """Write `data` (bytes, or a callable writing to a binary file object, so that a large file need not be
    assembled in memory first) to a short-named temporary file beside `path`, then rename it over `path`. A
    replaced file keeps its mode, a symlink keeps pointing at the (new) target, and only a regular file or a new
    name is ever replaced (never a device such as /dev/null). Missing directories are made, and removed again
    if the write fails."""
    target = os.path.realpath(path)  # through symlinks: the link stays, its target gets the data
    if os.path.lexists(target) and not os.path.isfile(target):
        raise TrtnetError(f"{path}: {'a directory' if os.path.isdir(target) else 'not a regular file'}; "
                          "refusing to replace it")
    with _staged(path, os.path.dirname(target)) as stage:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".trtnet-")
        stage(tmp)
        os.fchmod(fd, os.stat(target).st_mode & 0o7777 if os.path.isfile(target) else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            _put(f, data)
        os.replace(tmp, target)
    return path


def write_directory(path, files):
    """Write the directory `path` holding `files` ({relative path: data, as write_atomic takes}) whole: it is
    assembled in a hidden directory beside `path` and renamed into place; an older `path` is moved aside first
    and removed after."""
    final = os.path.abspath(path)
    parent, name = os.path.split(final)
    with _staged(path, parent) as stage:
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
        stage(tmp)
        for rel, data in files.items():
            dest = os.path.join(tmp, rel)
            _make_dirs(os.path.dirname(dest), stage)
            stage(dest)
            with open(dest, "xb") as f:
                _put(f, data)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the output from other users
        old = None
        if os.path.lexists(final):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old-")
            os.rename(final, os.path.join(old, name))
        try:
            os.rename(tmp, final)
        except BaseException:
            if old:
                os.rename(os.path.join(old, name), final)
            raise
        finally:
            if old:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _put(f, data):
    if callable(data):
        data(f)
    else:
        f.write(data)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_dirs(d, stage):
    if not os.path.isdir(d):
        _make_dirs(os.path.dirname(d), stage)
        stage(d)
        os.mkdir(d)


@contextmanager
def _staged(path, directory):
    """Make `directory` (with its missing parents) and yield `stage(p)`, which records a temporary path about to
    be created. On an exception every staged path and every directory made here is removed (directories only
    once empty); PENDING holds them meanwhile."""
    made, p = [], directory
    while not os.path.exists(p):
        made.append(p)
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        raise TrtnetError(f"{path}: {p} is a file, not a directory")
    staged = set(made)
    PENDING.update(made)

    def stage(p):
        staged.add(p)
        PENDING.add(p)

    try:
        for m in reversed(made):
            os.mkdir(m)
        yield stage
    except BaseException:
        for p in sorted(staged, key=len, reverse=True):  # files before the directories holding them
            if os.path.isdir(p) and not os.path.islink(p):
                if not os.listdir(p):
                    os.rmdir(p)
            elif os.path.lexists(p):
                os.unlink(p)
        raise
    finally:
        PENDING.difference_update(staged)
