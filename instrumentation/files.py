"""Writing a file so that readers see the old content or the new, never a part of it.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> atomic_write(path, "hello\\n")
    >>> open(path).read()
    'hello\\n'
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path: str, text: str, *, prefix: str = ".promdrift-", suffix: str = "",
                 shared: bool = False) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, flush and fsync it, then
    rename it over ``path``. The temporary file is removed if anything fails.

    The file keeps ``mkstemp``'s owner-only mode unless ``shared``, which gives it the mode a
    plain ``open`` would (``0o666`` less the umask).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if shared:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
