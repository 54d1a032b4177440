"""Gymnasium ids for every body and task, registered on `import equirl`.

Ids: `equirl/<body>-v0` is the published v1 task (walk toward a fixed far
direction), `equirl/<body>_waypoints-v0` the v2 task (follow waypoints);
`equirl/MJCF-v0` and `equirl/MJCF_waypoints-v0` take `xml_path=` for any
MJCF body. The task lives in the name, not in gymnasium's version number,
which is kept for changes to the environments themselves.
"""

from __future__ import annotations

NAMESPACE = "equirl"
ENTRY_POINT = "equirl.envs.gym_env:EquirlGymEnv"
SUFFIX = {"v1": "", "v2": "_waypoints"}


def env_id(body: str, task: str = "v1") -> str:
    """The gymnasium id of a body ("MJCF" for any file) and task version."""
    return f"{NAMESPACE}/{body}{SUFFIX[task]}-v0"


def register_envs() -> None:
    """Register every equirl id with Gymnasium; ids already registered are left alone."""
    import gymnasium

    from equirl.morphology.sgrl import BODY_NAMES

    for body in (*BODY_NAMES, "MJCF"):
        for task in SUFFIX:
            name = env_id(body, task)
            if name in gymnasium.registry:
                continue
            kwargs = {"task": task} if body == "MJCF" else {"body": body, "task": task}
            # No max_episode_steps: the environment truncates itself (episode_length).
            gymnasium.register(id=name, entry_point=ENTRY_POINT, kwargs=kwargs)
