"""Stopping on Ctrl-C or `kill` without losing work: deterministically at a batch boundary.

A signal handler that raises `KeyboardInterrupt` at an arbitrary bytecode can land where the
exception is swallowed (inside a library's `except` or `finally`), so a killed training could
exit 0. Inside `stop_at_boundaries()` the handler only records the request; the training loop
checks it after every batch and stops there, and the block then raises `KeyboardInterrupt`
itself. Outside such a block (reading data, calibrating), and on a second signal, the handler
raises at once as before.
"""

from __future__ import annotations

import contextlib
import threading

_requested = threading.Event()
_deferring = False


def request_stop(signum=None, frame=None) -> None:
    """The SIGINT / SIGTERM handler."""
    if _deferring and not _requested.is_set():
        _requested.set()
        return
    raise KeyboardInterrupt


def stop_requested() -> bool:
    return _requested.is_set()


@contextlib.contextmanager
def stop_at_boundaries():
    """Defers a stop request to the next check of `stop_requested()`; raises KeyboardInterrupt at
    the end of the block if one came."""
    global _deferring
    _requested.clear()
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt
