"""Ctrl-C and SIGTERM for long-running commands: end cleanly, and never in the middle of a unit of work.

A training step updates several networks and optimisers one after another, and a scored frame is
written to several outputs; a stop that lands between two of those leaves a checkpoint or an output
set that no uninterrupted run would have made. `whole_unit` holds the stop until the unit is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _handlers(handlers: dict[int, Callable]) -> Iterator[None]:
    """`handlers` installed for the block and the previous ones put back after it (for a caller of
    `main()` in its own process, whose own handlers must survive the command)."""
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def whole_unit() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) inside the block takes effect, as KeyboardInterrupt, once the block is done.
    A signal the process ignores stays ignored (a shell's background job ignores SIGINT so that Ctrl-C
    meant for the foreground spares it). Signals reach only the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    with _handlers({number: lambda number, _: received.append(number)
                    for number in STOP_SIGNALS if signal.getsignal(number) is not signal.SIG_IGN}):
        yield
    if received:
        raise KeyboardInterrupt


@contextmanager
def stopped_by_ctrl_c_or_sigterm() -> Iterator[None]:
    """Ctrl-C and a service manager's stop both raise KeyboardInterrupt inside the block, even where the
    parent left SIGINT ignored or blocked: a non-interactive shell starts its `&` jobs with SIGINT
    ignored (a test suite launched that way hands it to every worker), and both states are inherited
    through exec. What it changes is put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        with _handlers(dict.fromkeys(STOP_SIGNALS, signal.default_int_handler)):
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
