"""Wait for a condition instead of sleeping: tests poll a predicate until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    pass


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Return the predicate's first truthy value; fail with ``message`` (and the last error) on timeout.

    Exceptions inside the predicate count as "not yet" so transient API errors do not end a wait,
    but the last one is reported if time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {text}{detail}")
        time.sleep(interval)
