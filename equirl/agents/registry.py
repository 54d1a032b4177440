"""Which training algorithms exist: one line each, name -> the module that declares it.

Each module holds `SPEC`, an `AlgorithmSpec` saying which config block it
reads, what it needs of the networks, and how to build its `Agent`. The
driver (`equirl.agents.train`) asks the spec and never names an algorithm, so
adding one is a module plus one line here (or `register` at run time).
Modules are imported only when their algorithm is used.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from equirl.errors import ConfigError

ALGORITHMS: dict[str, str] = {
    "ppo": "equirl.agents.ppo",
    "sac": "equirl.agents.sac",
    "crossq": "equirl.agents.crossq",
    "td3": "equirl.agents.td3",
    "distill": "equirl.agents.distill",
}


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
    """What the driver needs to know of an algorithm.

    make(config, env, networks, total_iterations) -> Agent.
    steps_per_env(config): control steps each environment takes per iteration.
    normalize_observations(config): whether the policy reads normalised observations.
    observation_std_floor(config): the least std its scalars are divided by then.
    check(config): extra consistency checks of a TrainConfig (raise ConfigError).
    state_shape_fields: "block.field" values that change the agent state's shapes
      (a run cannot resume across a change of them).
    make_rule(networks, config) -> UpdateRule: off-policy algorithms only, for
      code that drives the update rule outside `BatchedEnv` (benchmarks/reference_gym.py).
    """

    name: str
    make: Callable[..., Any]
    steps_per_env: Callable[[Any], int]
    normalize_observations: Callable[[Any], bool]
    observation_std_floor: Callable[[Any], float] = lambda config: 0.0
    check: Callable[[Any], None] = lambda config: None
    state_shape_fields: tuple[str, ...] = ()
    make_rule: Callable[..., Any] | None = None


def register(name: str, module: str) -> None:
    """Make `name` an algorithm whose `SPEC` lives in `module` (tests register toy ones)."""
    ALGORITHMS[name] = module


def spec(name: str) -> AlgorithmSpec:
    if name not in ALGORITHMS:
        raise ConfigError(f"algorithm={name!r}: must be one of {tuple(ALGORITHMS)}")
    found = getattr(importlib.import_module(ALGORITHMS[name]), "SPEC", None)
    if not isinstance(found, AlgorithmSpec):
        raise ConfigError(f"algorithm={name!r}: module {ALGORITHMS[name]} declares no AlgorithmSpec named SPEC")
    return found


def offpolicy_spec(
    name: str,
    block: str,
    make_rule: Callable[..., Any],
    check: Callable[[Any], None] | None = None,
    starts_from_policy: bool = False,
):
    """The spec of an off-policy algorithm: the shared `offpolicy` block plus its own `block`;
    make_rule(networks, block_config) -> UpdateRule. starts_from_policy: the rule's learner
    can start from a given actor (offpolicy.init_actor), and make_rule takes it as `prior=`."""

    def make(config, env, networks, total_iterations):
        from equirl.agents.offpolicy import make_offpolicy
        from equirl.agents.start import load_start

        source = config.offpolicy.init_actor
        start = load_start(source, networks, config) if source else None
        prior = {"prior": start.params.actor} if start is not None else {}
        rule = make_rule(networks, getattr(config, block), **prior)
        return make_offpolicy(env, networks, config.offpolicy, rule, start)

    def full_check(config) -> None:
        if not config.network.squash:
            raise ConfigError(
                f"network.squash=false: {name} needs a tanh-squashed actor (bounded actions); set network.squash=true"
            )
        if config.offpolicy.init_actor and not starts_from_policy:
            raise ConfigError(
                f"offpolicy.init_actor={config.offpolicy.init_actor!r}: {name} cannot start from a given actor "
                "(sac and crossq can)"
            )
        if getattr(getattr(config, block), "prior_weight", 0.0) > 0 and not config.offpolicy.init_actor:
            raise ConfigError(f"{block}.prior_weight: anchors the actor to offpolicy.init_actor, which is not set")
        if check is not None:
            check(config)

    return AlgorithmSpec(
        name=name,
        make=make,
        steps_per_env=lambda config: config.offpolicy.steps_per_iteration,
        normalize_observations=lambda config: config.offpolicy.normalize_observations,
        observation_std_floor=lambda config: config.offpolicy.observation_std_floor,
        check=full_check,
        state_shape_fields=("offpolicy.buffer_size",),
        make_rule=lambda networks, config: make_rule(networks, getattr(config, block)),
    )
