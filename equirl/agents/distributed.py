"""Data parallelism over every device of every process, on jax.sharding.

Training always runs on a `Mesh` with one axis, "envs", over the devices it
may use (one device is a mesh of one). The environment state and the SAC
replay buffer are split along their leading (batch) axis across the mesh;
parameters, optimiser state, normaliser, RNG key and counters are replicated.
The agents write their iteration as one global computation and only say where
the batch axis is sharded (`constrain`); XLA's partitioner inserts the
collectives (gradient all-reduce, gathers of shuffled minibatches). The
physics callback of the native backend runs under `shard_map`, so each device
steps its own environments, and in a multi-host run each process owns only
the environments of its devices.

Multi-host: `initialize_from_env` starts `jax.distributed` from
EQUIRL_COORDINATOR (host:port of process 0), EQUIRL_NUM_PROCESSES and
EQUIRL_PROCESS_ID, or from SLURM's variables through JAX's own detection.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from equirl.errors import ConfigError

AXIS = "envs"

COORDINATOR_VAR = "EQUIRL_COORDINATOR"
NUM_PROCESSES_VAR = "EQUIRL_NUM_PROCESSES"
PROCESS_ID_VAR = "EQUIRL_PROCESS_ID"


# --- processes ------------------------------------------------------------------------


def _env_int(environ: Mapping[str, str], name: str, low: int) -> int:
    text = environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: must be an integer >= {low}") from None
    if value < low:
        raise ConfigError(f"{name}={text!r}: must be an integer >= {low}")
    return value


def launch_settings(environ: Mapping[str, str] = os.environ) -> dict | None:
    """The arguments of jax.distributed.initialize this process was launched with,
    {} for JAX's own cluster detection (SLURM with several tasks), or None for
    a single process."""
    if NUM_PROCESSES_VAR in environ or PROCESS_ID_VAR in environ or COORDINATOR_VAR in environ:
        count = _env_int(environ, NUM_PROCESSES_VAR, 1)
        index = _env_int(environ, PROCESS_ID_VAR, 0)
        if index >= count:
            raise ConfigError(f"{PROCESS_ID_VAR}={index}: must be below {NUM_PROCESSES_VAR}={count}")
        address = environ.get(COORDINATOR_VAR, "")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{COORDINATOR_VAR}={address!r}: must be host:port of process 0")
        return {"coordinator_address": address, "num_processes": count, "process_id": index}
    if "SLURM_JOB_ID" in environ and "SLURM_NTASKS" in environ:
        # A SLURM step of several tasks: JAX reads the coordinator, count and rank itself.
        return {} if _env_int(environ, "SLURM_NTASKS", 1) > 1 else None
    return None


def initialize_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Join a multi-process run if this process was launched as part of one.

    Must come before anything uses a JAX device. Returns whether
    jax.distributed was started (here or earlier).
    """
    if jax.distributed.is_initialized():
        return True
    settings = launch_settings(environ)
    if settings is None:
        return False
    # Collectives between CPU processes go through gloo (JAX's default, said once here).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**settings)
    except RuntimeError as err:
        if "must be called before" not in str(err):
            raise
        raise ConfigError(
            f"launched as one of several processes ({settings or 'SLURM'}), but JAX was already in use: "
            "initialize_from_env() must run before anything touches a device (equirl train does so)"
        ) from None
    return True


def is_primary() -> bool:
    """Process 0 writes logs, config files and progress; the others only compute."""
    return jax.process_index() == 0


# --- the mesh -------------------------------------------------------------------------


def global_mesh() -> Mesh:
    """All devices of all processes on one axis."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def single_device_mesh() -> Mesh:
    """A mesh of this process's first device (loading a checkpoint to evaluate it)."""
    return Mesh(np.asarray(jax.local_devices()[:1]), (AXIS,))


def describe(mesh: Mesh) -> str:
    processes = len({d.process_index for d in mesh.devices.flat})
    kind = mesh.devices.flat[0].platform
    return f"{mesh.size} {kind} device{'s' * (mesh.size > 1)} in {processes} process{'es' * (processes > 1)}"


def check_divisible(name: str, value: int, devices: int) -> int:
    """value // devices, or a ConfigError naming the value when it does not split evenly."""
    if value % devices:
        raise ConfigError(f"{name}={value}: must be divisible by the number of devices ({devices})")
    return value // devices


# --- shardings ------------------------------------------------------------------------


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Split along dimension `axis` over the mesh."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def constrain(tree: Any, mesh: Mesh, axis: int = 0) -> Any:
    """Every leaf of `tree` split along dimension `axis` over the mesh (inside jit)."""
    return jax.lax.with_sharding_constraint(tree, batch_sharding(mesh, axis))


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.lax.with_sharding_constraint(tree, replicated(mesh))


def _is_batch_leaf(path) -> bool:
    """Leaves with one row per environment or per stored transition: the
    environment state, per-environment sums and the replay buffer's rows."""
    names = [getattr(key, "name", None) for key in path]
    return "env_state" in names or "per_env" in names or ("buffer" in names and "data" in names)


def state_shardings(mesh: Mesh, state: Any) -> Any:
    """The sharding of every leaf of an agent state (PPOState or SACState)."""
    rows, everywhere = batch_sharding(mesh), replicated(mesh)
    return jax.tree_util.tree_map_with_path(lambda path, _: rows if _is_batch_leaf(path) else everywhere, state)


def constrain_state(state: Any, mesh: Mesh) -> Any:
    """`state` with its leaves placed as `state_shardings` says (inside jit)."""
    return jax.lax.with_sharding_constraint(state, state_shardings(mesh, state))


def abstract_state(mesh: Mesh, shapes: Any) -> Any:
    """ShapeDtypeStructs with their shardings: what a checkpoint is restored into."""
    return jax.tree.map(
        lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
        shapes,
        state_shardings(mesh, shapes),
    )


def local_rows(array: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded array, on the host, in order
    (all rows in a single-process run)."""
    if array.is_fully_addressable:
        return np.asarray(array)
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, parts = set(), []
    for shard in shards:
        start = shard.index[0].start or 0
        if start not in seen:  # a replicated axis holds the same rows twice
            seen.add(start)
            parts.append(np.asarray(shard.data))
    return np.concatenate(parts)
