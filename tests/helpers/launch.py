"""Launching the multi-device and multi-process runs of the data-parallel tests, and
comparing their losses with a 1-device run's (tolerances: tests/test_distributed.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers.flags import FAST_XLA_FLAGS

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

LOSS_RTOL = 1e-4
LOSS_ATOL = 1e-6
JOB_TIMEOUT = 420


def assert_same_losses(mine: dict[str, list[float]], reference: dict[str, list[float]], keys) -> dict[str, float]:
    """Each of `keys`, iteration by iteration, within the stated tolerance; returns the largest
    (absolute, relative) difference of each (the figures the README quotes)."""
    worst = {}
    for key in keys:
        a, b = np.asarray(mine[key], np.float64), np.asarray(reference[key], np.float64)
        assert a.shape == b.shape and a.size, key
        np.testing.assert_allclose(a, b, rtol=LOSS_RTOL, atol=LOSS_ATOL, err_msg=key)
        diff = np.abs(a - b)
        worst[key] = (float(diff.max()), float(np.max(diff / np.maximum(np.abs(b), LOSS_ATOL))))
    return worst


def _subprocess_env(**extra) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def launch_two_devices(job: str, out: Path) -> subprocess.Popen:
    """`python tests/test_distributed.py JOB OUT` on 2 CPU devices; it writes OUT/result.json."""
    out.mkdir(parents=True, exist_ok=True)
    env = _subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {FAST_XLA_FLAGS}")
    return subprocess.Popen(
        [sys.executable, str(TESTS / "test_distributed.py"), job, str(out)],
        cwd=out,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch_two_processes(config_path: Path, cwd: Path, *extra: str) -> list[subprocess.Popen]:
    """`python -m equirl train --config CONFIG` as processes 0 and 1 of one run on localhost."""
    port = free_port()
    processes = []
    for index in range(2):
        env = _subprocess_env(
            EQUIRL_COORDINATOR=f"localhost:{port}",
            EQUIRL_NUM_PROCESSES="2",
            EQUIRL_PROCESS_ID=str(index),
            XLA_FLAGS=FAST_XLA_FLAGS,
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "equirl", "train", "--config", str(config_path), *extra],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    return processes


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) of a launched process, killed if it outlives JOB_TIMEOUT."""
    try:
        out, err = process.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    decode = lambda b: (b or b"").decode(errors="replace")  # noqa: E731
    return process.returncode, decode(out), decode(err)
