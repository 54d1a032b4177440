"""The small off-policy agents the off-policy and data-parallel tests share."""

from __future__ import annotations

import dataclasses

from equirl.agents import crossq, offpolicy, sac, td3
from equirl.agents.config import CrossQConfig, OffPolicyConfig, SACConfig, TD3Config
from equirl.nn import NetworkConfig, make_networks

ENV = dict(bodies=("hopper_3_shin", "walker_7_full"), num_envs=4, max_limbs=7)
NETWORKS = {
    "mlp": NetworkConfig(kind="mlp", mlp_hidden=(32, 32), squash=True),
    "set": NetworkConfig(
        kind="set",
        width=32,
        depth=1,
        heads=2,
        vector_channels=8,
        invariant_channels=4,
        vector_key_channels=2,
        squash=True,
    ),
    "mlp_heading": NetworkConfig(kind="mlp_heading", mlp_hidden=(16, 16), squash=True),
    "transformer": NetworkConfig(kind="transformer", width=16, depth=1, heads=2, squash=True),
}
# 2 steps x 4 envs = 8 transitions an iteration: a capacity of 20 wraps mid-batch.
SAC = OffPolicyConfig(buffer_size=20, batch_size=8, learning_starts=16, steps_per_iteration=2, updates_per_iteration=2)
ITERATIONS = 3
RULES = {
    "sac": lambda networks: sac.make_rule(networks, SACConfig()),
    # Renorm proper (past warm-up) from the first update: the test then covers the r/d path.
    "crossq": lambda networks: crossq.make_rule(networks, CrossQConfig()),
    "td3": lambda networks: td3.make_rule(networks, TD3Config()),
}
CROSSQ_NET = dict(q_norm="batch_renorm", renorm_warmup=2)


def make_agent(env, algorithm: str, kind: str, config: OffPolicyConfig = SAC):
    net = NETWORKS[kind]
    if algorithm == "crossq":
        net = dataclasses.replace(net, **CROSSQ_NET)
    networks = make_networks(net, env.num_limbs)
    return offpolicy.make_offpolicy(env, networks, config, RULES[algorithm](networks)), networks
