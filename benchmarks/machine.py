"""What every results file records of the machine it was measured on."""

from __future__ import annotations

import os
import platform
from typing import Any


def describe(load_before: float) -> dict[str, Any]:
    """Cores, Python and OS, and the 1-minute load average before the run and now: other work on a
    small shared machine skews wall times, so a reader must be able to see it."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
