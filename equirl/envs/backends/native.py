"""MuJoCo's C engine, stepping a batch across threads, callable from jitted code.

`mujoco.rollout` does the stepping in a persistent C++ thread pool with the
GIL released; `jax.pure_callback` lets a jitted training loop call it. Rows
that belong to the same body are stepped in one rollout call (rollout needs
models of one size signature per call). On a device mesh (`sharded_step`)
each device's callback steps only that device's rows.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import rollout

from equirl.errors import MorphologyError
from equirl.morphology.limb_graph import Morphology

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


class NativeBackend:
    name = "native"

    def __init__(self, morphs: list[Morphology], body_of_env: np.ndarray, frame_skip: int, num_threads: int):
        self.frame_skip = frame_skip
        self.num_threads = num_threads
        self.body_of_env = np.asarray(body_of_env)
        self.models = [m.model for m in morphs]
        for m, model in zip(morphs, self.models):
            expected = 1 + model.nq + model.nv
            if mujoco.mj_stateSize(model, _STATE) != expected:
                raise MorphologyError(f"{m.source}: physics state has parts other than time, qpos and qvel")
        self.timesteps = np.array([model.opt.timestep for model in self.models])
        self._pool = rollout.Rollout(nthread=num_threads if num_threads > 1 else 0)
        # Each thread needs its own MjData per model.
        self._datas = [[mujoco.MjData(model) for _ in range(max(num_threads, 1))] for model in self.models]
        # Callbacks of several devices may arrive at once; they share the pool and its MjData.
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    # -- host side ----------------------------------------------------------

    def host_step(self, qpos, qvel, time, ctrl, bodies=None):
        """NumPy step of every row; leading batch dims (from vmap) are flattened.

        bodies: the body index of each row (a device's share of a sharded
        batch); by default the rows are the whole batch, body_of_env.
        """
        lead = qpos.shape[:-1]
        qpos = np.asarray(qpos, np.float64).reshape(-1, qpos.shape[-1])
        qvel = np.asarray(qvel, np.float64).reshape(-1, qvel.shape[-1])
        time = np.asarray(time, np.float64).reshape(-1)
        ctrl = np.asarray(ctrl, np.float64).reshape(-1, ctrl.shape[-1])
        if bodies is None:
            bodies = np.tile(self.body_of_env, qpos.shape[0] // len(self.body_of_env))
        else:
            bodies = np.asarray(bodies).reshape(-1)
        out_q, out_v, out_t = qpos.copy(), qvel.copy(), time.copy()
        for b, model in enumerate(self.models):
            rows = np.nonzero(bodies == b)[0]
            if rows.size == 0:
                continue
            nq, nv, nu = model.nq, model.nv, model.nu
            state = np.concatenate([time[rows, None], qpos[rows, :nq], qvel[rows, :nv]], axis=1)
            controls = np.ascontiguousarray(ctrl[rows, None, :nu])
            warm = np.zeros((rows.size, nv))  # same start for every row: results do not depend on batching
            with self._lock:
                states, _ = self._pool.rollout(
                    self.models[b],
                    self._datas[b],
                    state,
                    controls,
                    nstep=self.frame_skip,
                    initial_warmstart=warm,
                )
            final = states[:, -1]
            out_t[rows] = final[:, 0]
            out_q[rows, :nq] = final[:, 1 : 1 + nq]
            out_v[rows, :nv] = final[:, 1 + nq : 1 + nq + nv]
        # MuJoCo resets a diverging simulation (time restarts at 0): report it.
        expected = time + self.frame_skip * self.timesteps[bodies]
        reset = np.abs(out_t - expected) > 0.5 * self.timesteps[bodies]
        return (
            out_q.reshape(lead + (-1,)),
            out_v.reshape(lead + (-1,)),
            out_t.reshape(lead),
            reset.reshape(lead),
        )

    # -- JAX side -----------------------------------------------------------

    def step(self, qpos: jax.Array, qvel: jax.Array, time: jax.Array, ctrl: jax.Array, bodies=None):
        """(qpos, qvel, time) after frame_skip physics steps with ctrl held, plus a reset flag.

        bodies: [rows] int, each row's body, when the rows are not the whole batch.
        """
        shapes = (
            jax.ShapeDtypeStruct(qpos.shape, qpos.dtype),
            jax.ShapeDtypeStruct(qvel.shape, qvel.dtype),
            jax.ShapeDtypeStruct(time.shape, time.dtype),
            jax.ShapeDtypeStruct(time.shape, jnp.bool_),
        )

        def host(q, v, t, c, *b):
            out_q, out_v, out_t, reset = self.host_step(q, v, t, c, *b)
            return (
                out_q.astype(q.dtype),
                out_v.astype(v.dtype),
                out_t.astype(t.dtype),
                reset,
            )

        extra = () if bodies is None else (bodies,)
        return jax.pure_callback(host, shapes, qpos, qvel, time, ctrl, *extra, vmap_method="broadcast_all")

    def sharded_step(self, mesh):
        """`step` for a batch split over `mesh`'s one axis: every device runs its
        own callback on its own rows (in a multi-host run, only its process's)."""
        spec = jax.sharding.PartitionSpec(mesh.axis_names[0])
        bodies = np.asarray(self.body_of_env, np.int32)
        mapped = jax.shard_map(self.step, mesh=mesh, in_specs=(spec,) * 5, out_specs=(spec,) * 4)
        return lambda qpos, qvel, time, ctrl: mapped(qpos, qvel, time, ctrl, jnp.asarray(bodies))
