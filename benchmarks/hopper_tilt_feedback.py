"""Does simple linear balance feedback keep the 3D hoppers up? A grid of gains, raw MuJoCo.

On top of a stiff hold of every hinge (action 3 × angle error − 0.3 × joint speed), the
x-hinges get kx × (the torso's sideways lean plus 0.1 s of its rate) and the y-hinges
ky × (its forward lean plus rate). Episodes end on the published hopper health bounds
(torso above h_min, tilt under 1 rad), at most 1,000 control steps of 4 physics steps.

    python benchmarks/hopper_tilt_feedback.py
"""

from __future__ import annotations

import itertools

import mujoco
import numpy as np

from equirl.morphology.sgrl import task_facts

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
GAINS = (-20, -5, -1, 0, 1, 5, 20)


def healthy_steps(body: str, kx: float, ky: float, seed: int, kp: float = 3.0, kd: float = 0.3) -> int:
    model = mujoco.MjModel.from_xml_path(f"envs/hopper/{body}.xml")
    data = mujoco.MjData(model)
    data.qpos[:] = model.qpos0 + np.random.default_rng(seed).uniform(-0.005, 0.005, model.nq)
    mujoco.mj_forward(model, data)
    joint = model.actuator_trnid[:, 0]
    qadr, vadr, axis = model.jnt_qposadr[joint], model.jnt_dofadr[joint], model.jnt_axis[joint]
    about_x, about_y = np.abs(axis[:, 0]) > 0.5, np.abs(axis[:, 1]) > 0.5
    h_min = task_facts(body).h_min
    for t in range(1000):
        up, spin = data.xmat[1].reshape(3, 3)[:, 2], data.qvel[3:6]  # torso axis (world), angular velocity
        lean_x, lean_y = up[0] + 0.1 * spin[1], up[1] - 0.1 * spin[0]
        u = kp * (model.qpos0[qadr] - data.qpos[qadr]) - kd * data.qvel[vadr]
        u += np.where(about_x, kx * lean_y * np.sign(axis[:, 0]), 0.0) + np.where(
            about_y, ky * lean_x * np.sign(axis[:, 1]), 0.0
        )
        data.ctrl[:] = np.clip(u, -1.0, 1.0)
        mujoco.mj_step(model, data, nstep=4)
        if data.xpos[1, 2] < h_min or np.arccos(np.clip(data.xmat[1, 8], -1.0, 1.0)) > 1.0:
            return t + 1
    return 1000


def main() -> None:
    print("| body | stiff hold only | best gains (kx, ky) | steps with them |")
    print("|---|---:|---|---:|")
    for body in BODIES:
        mean = {
            g: np.mean([healthy_steps(body, *g, seed=s) for s in range(3)]) for g in itertools.product(GAINS, GAINS)
        }
        best = max(mean, key=mean.get)
        print(f"| {body} | {mean[(0, 0)]:.0f} | {best} | {mean[best]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
