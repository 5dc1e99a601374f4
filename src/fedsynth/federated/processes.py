"""The local processes of a federation: free loopback ports, finding and ending the processes
that carry a marker in their environment, their memory, and the import path they inherit."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def marked_processes(marker: str, value: str) -> list[int]:
    """PIDs of the processes whose environment holds ``marker=value``."""
    wanted = f"{marker}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def end_processes(marker: str, value: str, *, grace: float = 5.0) -> None:
    """SIGTERM the marked processes, then SIGKILL those still alive after ``grace`` seconds."""
    pids = marked_processes(marker, value)
    for pid in pids:
        with ignore_gone():
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = marked_processes(marker, value)
    for pid in pids:
        with ignore_gone():
            os.kill(pid, signal.SIGKILL)


class ignore_gone:
    """Context manager that ignores a process gone before it was signalled."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:
        return kind is ProcessLookupError


def import_path() -> str:
    """The caller's import path beyond the interpreter's own, so that the Flower processes import
    what the caller can (e.g. a module registering a custom generator)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    resolved = [str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()]
    extra = [p for p in resolved if not p.startswith(prefixes)]
    return os.pathsep.join(dict.fromkeys(extra))


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
