"""What one ``promdrift exporter`` worker process allows its clients (the options
``--read-timeout``, ``--max-connections``, ``--max-buffer``, ``--max-body``, ``--threads``,
``--graceful-timeout``; :class:`promdrift.exporter.service.httpserver.Server` enforces
them), and the defaults of the app's ``--max-body`` and ``--max-rows``. Kept apart from the
server and the app so that the command line reads its defaults without their dependencies
(the ``exporter`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_MAX_BODY", "DEFAULT_MAX_ROWS"]

#: Default request body limit in bytes (larger bodies get a 413).
DEFAULT_MAX_BODY = 1 << 20
#: Default number of observations per request (more get a 413).
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class Limits:
    """What one server process allows its clients (each limit is described in
    ``promdrift.exporter.service.httpserver``).

        >>> Limits().read_timeout, Limits().max_connections
        (5.0, 256)
        >>> Limits(max_buffer=10, max_body=100)
        Traceback (most recent call last):
        ...
        ValueError: max_buffer (10) must hold one body of max_body + 1 (101) bytes
    """

    read_timeout: float = 5.0
    max_connections: int = 256
    max_buffer: int = 32 << 20
    max_body: int = 1 << 20
    max_head: int = 16 << 10
    threads: int = 4
    graceful_timeout: float = 30.0
    retry_after: int = 1

    def __post_init__(self) -> None:
        for name in ("read_timeout", "max_connections", "max_buffer", "max_body", "max_head",
                     "threads", "retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.graceful_timeout < 0:
            raise ValueError(f"graceful_timeout must be >= 0, got {self.graceful_timeout!r}")
        if self.max_buffer < self.max_body + 1:
            raise ValueError(f"max_buffer ({self.max_buffer}) must hold one body of max_body + 1 "
                             f"({self.max_body + 1}) bytes")
