"""SIGINT/SIGTERM during training: ask the loop to stop after the current step and save; a second one acts as usual."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stop_on_signals(request_stop: Callable[[int], None]) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM call ``request_stop(signum)`` once; the previous handlers come back after
    that first signal (a second Ctrl-C raises KeyboardInterrupt at once) and when the block ends."""
    previous: dict[int, Any] = {}

    def handle(signum: int, frame: Any) -> None:
        # Only set a flag (the callback's job): printing here could re-enter stderr while tqdm writes to it.
        request_stop(signum)
        signal.signal(signum, previous[signum])

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is signal.SIG_IGN:  # e.g. SIGINT of a shell's background job: keep
                continue
            handler = signal.signal(signum, handle)
            previous[signum] = handler if handler is not None else signal.SIG_DFL
    except ValueError:  # not the main thread: signals cannot be caught here, the defaults stay
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
