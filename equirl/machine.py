"""A one-line description of the machine, for benchmark tables and reports."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    """CPU model and usable cores, or the accelerators jax runs on."""
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{len(jax.devices())}x {device.device_kind}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return f"{model}, {cores} cores"
