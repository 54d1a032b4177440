"""Controllers shipped inside the package, ready to evaluate and render with no training.

Each lives in equirl/evaluation/controllers/<name>/ as three small files:
  config.yaml    the TrainConfig it was trained with (network and task);
  policy.msgpack the actor's parameters and the observation normaliser (flax serialisation);
  card.json      what it was trained on, the budget, and its measured returns.

    equirl pretrained                                   # list them with their figures
    equirl eval --pretrained NAME --bodies walker       # any bodies, MJCF paths, random bodies
    equirl render --pretrained NAME --body hopper_5_full

`export` writes one from a training (or distillation) run; the card's figures are
whatever was measured (benchmarks/distill.py), never edited by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
from flax import serialization

from equirl.errors import ConfigError

CONTROLLERS = Path(__file__).resolve().parent / "controllers"
FILES = ("config.yaml", "policy.msgpack", "card.json")


def names(folder: Path = CONTROLLERS) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if all((p / f).is_file() for f in FILES))


def card(name: str, folder: Path = CONTROLLERS) -> dict:
    return json.loads((_folder(name, folder) / "card.json").read_text())


def _folder(name: str, folder: Path) -> Path:
    path = folder / name
    if not all((path / f).is_file() for f in FILES):
        known = ", ".join(names(folder)) or "none"
        raise ConfigError(f"pretrained controller {name!r}: not shipped (shipped: {known})")
    return path


def load(name: str, folder: Path = CONTROLLERS):
    """The shipped controller `name` as an `equirl.evaluation.Policy` (deterministic)."""
    from equirl.agents.config import TrainConfig
    from equirl.agents.policy import ActingState, ActorParams, initial_normalizer, make_act
    from equirl.agents.registry import spec
    from equirl.config_io import load_yaml
    from equirl.evaluation.evaluate import Policy
    from equirl.nn import make_networks

    path = _folder(name, folder)
    config = load_yaml(TrainConfig, path / "config.yaml")
    networks = make_networks(config.network, config.env.max_limbs)
    template = ActingState(ActorParams(_actor_template(networks, config)), initial_normalizer())
    state = serialization.from_bytes(template, (path / "policy.msgpack").read_bytes())
    algorithm = spec(config.algorithm)
    act = make_act(networks, algorithm.normalize_observations(config), algorithm.observation_std_floor(config))

    def deterministic(agent_state, obs):
        return act(agent_state, obs, None, True)

    return Policy(config=config, state=state, act=deterministic, run_dir=path, step=card(name, folder).get("env_steps"))


def load_any(source: str | os.PathLike, folder: Path = CONTROLLERS):
    """A shipped controller if `source` names one, else the newest checkpoint of the run
    directory `source` (the benchmarks that read policies take either)."""
    if str(source) in names(folder):
        return load(str(source), folder)
    from equirl.evaluation.evaluate import load_policy_for_eval

    try:
        return load_policy_for_eval(source)
    except ConfigError as err:
        shipped = ", ".join(names(folder)) or "none"
        raise ConfigError(f"{err} (nor a shipped controller: {shipped})") from None


def _actor_template(networks, config):
    """The actor's parameter tree (shapes only matter), traced from an observation's shapes:
    no environment is built, so loading a controller takes a second, not a compile."""
    from equirl.observation import observation_shapes

    return jax.eval_shape(networks.actor.init, jax.random.PRNGKey(0), observation_shapes(config.env.max_limbs))


def export(run_dir: str | os.PathLike, name: str, card_fields: dict, folder: Path = CONTROLLERS) -> Path:
    """Write the newest checkpoint of `run_dir` as shipped controller `name` with its card."""
    from equirl.agents.policy import acting_state
    from equirl.agents.saved_runs import load_run
    from equirl.runs.checkpoints import write_config

    if not name or "/" in name:
        raise ConfigError(f"pretrained name {name!r}: must be a non-empty folder name")
    config, state, _ = load_run(run_dir)
    small = jax.device_get(acting_state(state))
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, config)  # config.yaml
    (path / "policy.msgpack").write_bytes(serialization.to_bytes(small))
    fields = dict(card_fields, name=name, network=config.network.kind, env_steps=int(state.env_steps))
    (path / "card.json").write_text(json.dumps(fields, indent=2) + "\n")
    return path


def describe(folder: Path = CONTROLLERS) -> str:
    """The `equirl pretrained` listing: one block per controller, its card's figures."""
    lines = []
    for name in names(folder):
        c = card(name, folder)
        lines.append(f"{name}: {c.get('network')} network, {c.get('summary', '')}".rstrip(", "))
        for key in ("trained_on", "teachers", "budget", "measured"):
            if key in c:
                value = c[key]
                text = json.dumps(value) if not isinstance(value, str) else value
                lines.append(f"  {key}: {text}")
    return "\n".join(lines) if lines else "no pretrained controllers are shipped"
