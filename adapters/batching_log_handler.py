"""Log lines written to a stream in batches: the standard library's logging, driven side."""

from __future__ import annotations

import logging
import threading
from typing import TextIO

__all__ = ["BatchingStreamHandler"]


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes lines in batches: at most `max_delay` seconds late, at once
    for WARNING and above (with everything before them, in order), and whenever about
    `max_bytes` are waiting.

    A write per request would hand the GIL to the server's own threads on every request
    (docs/PERFORMANCE.md). `write_lazy` queues a line formatted only when the batch is written.
    """

    def __init__(self, stream: TextIO, max_delay: float = 0.2, max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self._lines: list[object] = []
        self._size = 0
        self._stopping = threading.Event()
        threading.Thread(target=self._flush_often, name="log-flusher", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._queue(line, len(line), urgent=record.levelno >= logging.WARNING)

    def write_lazy(self, line: object, size: int) -> None:
        """Queue a line whose `str()` is formatted when the batch is written."""
        self._queue(line, size)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            pending, self._lines, self._size = self._lines, [], 0
            try:
                if pending:
                    self.stream.write("".join(map(self._text, pending)))
                self.stream.flush()
            except Exception:  # a closed or broken stream must not break the caller
                return

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        super().close()

    def _queue(self, item: object, size: int, urgent: bool = False) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(item)
            self._size += size
            urgent = urgent or self._size >= self.max_bytes
        if urgent:
            self.flush()

    def _text(self, item: object) -> str:
        return item if isinstance(item, str) else f"{item}{self.terminator}"

    def _flush_often(self) -> None:
        while not self._stopping.wait(self.max_delay):
            if self._lines:
                self.flush()
