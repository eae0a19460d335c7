"""The tests' assertions: check() and the wait_until() latch."""
import time


class TestFailure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def wait_until(cond, timeout=10.0, what="condition"):
    """A latch: polls cond() until it is true, failing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out waiting for {what}")
        time.sleep(0.02)
