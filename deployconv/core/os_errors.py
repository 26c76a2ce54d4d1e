"""OSError -> a what/why/fix DeployconvError, so a full disk or a read-only folder is a message, not a traceback.

Bad input (exit 2): a path that does not exist, is a directory where a file was expected, or is not a directory.
The environment (exit 3): no space, no permission, a read-only file system, and any other OS failure."""

from __future__ import annotations

import errno

from deployconv.core.errors import BadInputError, DeployconvError, MissingEnvironmentError

_ENV: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space, or write somewhere else (--out)"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space, or write somewhere else (--out)"),
    errno.EACCES: ("permission denied", "choose a folder you can write (--out), or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you own (--out), or fix its permissions"),
    errno.EROFS: ("the file system is read-only", "write to a writable folder (--out)"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) and run again"),
}
_INPUT: dict[int, tuple[str, str]] = {
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.EISDIR: ("is a directory, not a file", "pass the file itself, not its folder"),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter path"),
    errno.ELOOP: ("too many levels of symbolic links", "pass a real path, not a link loop"),
}


def from_oserror(e: OSError) -> DeployconvError:
    where = e.filename if e.filename is not None else "a file"
    if e.filename2 is not None:
        where = f"{e.filename} -> {e.filename2}"
    if e.errno in _INPUT:
        why, fix = _INPUT[e.errno]
        return BadInputError(f"{where}: {why}", why=e.strerror or why, fix=fix)
    why, fix = _ENV.get(e.errno or -1, (e.strerror or type(e).__name__, "check the disk and the path, then run "
                                                                         "again"))
    return MissingEnvironmentError(f"cannot read or write {where}: {why}",
                                   why="the operating system refused (" + (errno.errorcode.get(e.errno or -1, "?"))
                                       + "); nothing half-written was kept",
                                   fix=fix)
