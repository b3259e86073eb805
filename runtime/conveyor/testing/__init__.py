"""conveyor.testing: what you need to test workflows built on conveyor.

- FakeClock: pass it to `build(clock=...)` and move time by hand.
- await_status / require / trigger_callback_on / await_timeout_insert: drive a run in a test.
- new_testing_run: a Run for unit-testing one step function.
- conveyor.testing.conformance: the pytest suites every adapter must pass.
"""

from conveyor.testing._clock import FakeClock
from conveyor.testing._helpers import (
    await_status,
    await_timeout_insert,
    new_testing_run,
    require,
    trigger_callback_on,
)

__all__ = [
    "FakeClock",
    "await_status",
    "await_timeout_insert",
    "new_testing_run",
    "require",
    "trigger_callback_on",
]
