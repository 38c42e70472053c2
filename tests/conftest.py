"""Settings of the whole suite."""

from __future__ import annotations

import os

from hypothesis import settings

# Under CI the property tests and state machines draw the same examples on every run, so
# the gate turns red on a change, never on the luck of a draw. Elsewhere they draw anew
# each run and keep exploring (a failure found so becomes an @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
