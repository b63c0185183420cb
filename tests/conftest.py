"""Suite-wide settings: hypothesis budgets.

``make test`` runs every property test on a bounded budget (profile ``ci``);
``make fuzz`` runs the same tests far longer (``BYOM_HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=timedelta(seconds=2), derandomize=True, print_blob=True
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("BYOM_HYPOTHESIS_PROFILE", "ci"))
