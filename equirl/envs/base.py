"""What an agent needs of an environment: the `Env` protocol.

`BatchedEnv` (physics) and `ImaginedEnv` (a world model in place of the
physics) both implement it; the agents are typed against it and use nothing
else. Both are pure-function environments over a batch: `reset(key)` and
`step(state, action)` return a state with `obs`, `reward`, `terminated`,
`truncated` and `info` (see `equirl.envs.batched.step_info` for its keys),
and both can be jitted and scanned.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax


@runtime_checkable
class Env(Protocol):
    config: Any  # equirl.envs.config.EnvConfig: task, episode_length, autoreset
    morphologies: list  # one Morphology per body
    body_of_env: Any  # [num_envs] int: which body each environment steps
    mesh: Any  # the jax.sharding.Mesh the batch is split over, or None

    @property
    def num_envs(self) -> int: ...

    @property
    def num_limbs(self) -> int: ...

    @property
    def action_shape(self) -> tuple[int, int]: ...

    def reset(self, key: jax.Array) -> Any: ...

    def step(self, state: Any, action: jax.Array) -> Any: ...

    def close(self) -> None: ...
