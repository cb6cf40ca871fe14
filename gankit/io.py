"""Atomic file writes: the one implementation behind checkpoints, statistics, cards, configs and pictures.

A crash at any moment leaves either the old file or the new one, never a truncated mix (nothing a user produced
is ever lost). A leaf module: it imports nothing from gankit.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO


def current_umask() -> int:
    """The process's umask (read without changing it where /proc tells it; else set and restored at once)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 minus the user's umask; an
    existing file's own mode when it is replaced), not the 0600 of ``mkstemp``: run directories are shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


ZIP_START, ZIP_END = b"PK\x03\x04", b"PK\x05\x06"   # a zip's first local header; its end-of-directory record


def damage_of(path: str | Path) -> str | None:
    """Why a file that torch cannot read looks damaged ("empty", "truncated"), or None when it does not.

    ``torch.save`` writes a zip archive whose end-of-directory record comes last: a file that starts like one
    but lacks that record was cut short (an interrupted copy or download; gankit's own writes are atomic).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 65_557))             # the end record sits in the last 22 + 65535 (comment) bytes
        tail = f.read()
    if head == ZIP_START and ZIP_END not in tail:
        return f"is truncated ({size:,} bytes; the end of the archive, which torch writes last, is missing)"
    return None
