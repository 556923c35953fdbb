"""Writing a file so that it is either the old one or the complete new one (``atomic_write``).

The model, weights and history files scratchnet saves go through here: ``model.save``,
``save_weights``, ``ModelCheckpoint`` and the command line's ``history.json`` (figures are
matplotlib's ``savefig``; exercise starters a plain copy). The bytes are written to a new
temporary file beside the target, flushed, fsynced and ``os.replace``d over it (atomic). On any
failure the temporary file is removed and the previous file is left byte-identical. A target
that is not a regular file (``/dev/null``, a FIFO) or is read-only is refused before anything is
written: replacing it would destroy it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from .option_checks import check_path


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX). Best effort: not every system allows it."""
    try:
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError:
        pass


def atomic_write(path, chunks, who: str = "save") -> None:
    """Write the byte strings ``chunks`` to ``path`` so that ``path`` is either old or complete.

    The temporary file is created with ``os.open(..., 0o666)`` so it gets the permissions any
    new file gets (the umask applies; ``tempfile.mkstemp`` would make it private, 0600), or the
    permissions of the file it replaces.
    """
    user_path = os.fspath(check_path(path, who))
    path = os.path.realpath(os.path.expanduser(user_path))  # through a symlink: replace its target
    folder, base = os.path.split(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot save to {user_path!r}: it is a folder; give a "
                                f"file name, e.g. {os.path.join(user_path, 'model.sn')!r}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"cannot save to {user_path!r}: the folder {folder!r} "
                                f"does not exist (create it first, e.g. os.makedirs)")
    _check_replaceable(path, user_path)
    try:
        _write_replace(path, folder, base, chunks)
    except OSError as error:
        if error.errno is None:
            raise
        raise type(error)(error.errno, f"cannot save to {user_path!r}: "
                          f"{error.strerror or error}") from None


def _check_replaceable(path: str, user_path: str) -> None:
    """Refuse a target that saving (a new file renamed over it) would destroy or should not touch.

    * Not a regular file (``/dev/null``, a FIFO, a device, a socket): ``os.replace`` would put a
      regular file in its place (as root: no more ``/dev/null``). Refused rather than written
      into: a FIFO blocks until someone reads it, and a model "saved" to a device is no file.
    * Read-only: ``os.replace`` needs only the folder to be writable, so it would silently
      replace a file its owner protected. Refused if the file has no write bit at all (mode bits,
      which apply to root too: root may write any file, so ``os.access`` says yes) or if this user
      may not write it (``os.access``, for the other users' bits).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # a new file
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise OSError(errno.EINVAL, f"cannot save to {user_path!r}: it is {kind}, not a regular file; "
                      f"saving writes a new file and renames it over the old one, which would replace "
                      f"it. Give the path of a regular file")
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot save to {user_path!r}: the file is read-only (mode "
                              f"{stat.filemode(mode)}) and saving would replace it; make it writable "
                              f"first (chmod u+w {user_path}, or os.chmod) or save to another file")


def _write_replace(path, folder, base, chunks) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp_path = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            handle = os.open(tmp_path, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 48-bit random name collided
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.chmod(tmp_path, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass  # no previous file (or a system without modes): keep the default
        os.replace(tmp_path, path)
    except BaseException:  # also KeyboardInterrupt: never leave a temporary file behind
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
