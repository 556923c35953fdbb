"""Unpacking a downloaded .tar.gz without letting it write anywhere else.

A tar member's name is a path chosen by whoever made the archive. ``../../.bashrc``, an
absolute ``/etc/passwd``, a symlink pointing outside followed by a file "inside" it, a hard
link or a device file would all let an archive write or expose files outside the target
folder. ``safe_extract`` refuses the whole archive (``CorruptDataError`` naming the member)
before writing anything if any member is not a plain file or folder with a relative name
that stays inside; it then unpacks with Python's own ``filter="data"`` where available
(Python 3.12, 3.11.4+, ...) as a second line of defence.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

from .common import CorruptDataError


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be unpacked, or None if it is a plain file/folder staying inside."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (parts and ":" in parts[0]):
        return "absolute path"
    if ".." in parts:
        return "'..' in the path would leave the folder"
    if not (member.isfile() or member.isdir()):
        kinds = {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "device",
                 tarfile.BLKTYPE: "device", tarfile.FIFOTYPE: "fifo"}
        return f"{kinds.get(member.type, 'special file')} (only regular files and folders are unpacked)"
    return None


def safe_extract(archive, folder) -> None:
    """Unpack the .tar(.gz) ``archive`` into the existing ``folder``, refusing hostile members."""
    archive, folder = Path(archive), Path(folder)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = member_problem(member)
                if problem:
                    raise CorruptDataError(f"{archive}: refused to unpack member {member.name!r}: {problem}; "
                                           "nothing was unpacked")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, members=members, filter="data")
            else:  # older Python: the checks above are the whole defence
                tar.extractall(folder, members=members)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise CorruptDataError(f"{archive}: damaged or truncated archive ({type(error).__name__}: "
                               f"{error})") from None
