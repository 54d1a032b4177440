"""MJX: the same physics as pure JAX, for GPUs and TPUs.

MJX models of different bodies have different array sizes, so each body's
rows are stepped by their own vmapped program and written back in place.
On a device mesh (`sharded_step`) each device steps its own rows when every
device holds the same pattern of bodies; otherwise XLA partitions the step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from equirl.morphology.limb_graph import Morphology


class MjxBackend:
    name = "mjx"

    def __init__(self, morphs: list[Morphology], body_of_env: np.ndarray, frame_skip: int):
        from mujoco import mjx  # imported here: loading MJX is slow and the native path does not need it

        self._mjx = mjx
        self.frame_skip = frame_skip
        self.body_of_env = np.asarray(body_of_env)
        self.models = [mjx.put_model(m.model) for m in morphs]
        self.sizes = [(m.model.nq, m.model.nv, m.model.nu) for m in morphs]
        self.timesteps = np.array([m.model.opt.timestep for m in morphs])

    def close(self) -> None:
        pass

    def _step_one(self, model, qpos, qvel, time, ctrl):
        mjx = self._mjx
        data = mjx.make_data(model)
        dtype = data.qpos.dtype
        data = data.replace(
            qpos=qpos.astype(dtype), qvel=qvel.astype(dtype), time=time.astype(dtype), ctrl=ctrl.astype(dtype)
        )
        data = jax.lax.fori_loop(0, self.frame_skip, lambda _, d: mjx.step(model, d), data)
        return data.qpos, data.qvel, data.time

    def step(self, qpos: jax.Array, qvel: jax.Array, time: jax.Array, ctrl: jax.Array):
        return self._step_rows(self.body_of_env, qpos, qvel, time, ctrl)

    def sharded_step(self, mesh):
        """`step` for a batch split over `mesh`'s one axis."""
        per_device = self.body_of_env.reshape(mesh.size, -1)
        if np.any(per_device != per_device[0]):
            return self.step  # devices hold different bodies: one global program, partitioned by XLA
        spec = jax.sharding.PartitionSpec(mesh.axis_names[0])
        local = functools.partial(self._step_rows, per_device[0])
        # check_vma=False: MJX's solver mixes per-device and constant values in lax.cond branches.
        return jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 4, out_specs=(spec,) * 4, check_vma=False)

    def _step_rows(self, body_of_env: np.ndarray, qpos, qvel, time, ctrl):
        out_q, out_v, out_t = qpos, qvel, time
        for b, model in enumerate(self.models):
            rows = np.nonzero(body_of_env == b)[0]
            if rows.size == 0:
                continue
            if rows.size == len(body_of_env):
                rows = slice(None)  # one body: a slice, not a gather
            nq, nv, nu = self.sizes[b]
            q, v, t = jax.vmap(self._step_one, in_axes=(None, 0, 0, 0, 0))(
                model, qpos[rows, :nq], qvel[rows, :nv], time[rows], ctrl[rows, :nu]
            )
            out_q = out_q.at[rows, :nq].set(q.astype(qpos.dtype))
            out_v = out_v.at[rows, :nv].set(v.astype(qvel.dtype))
            out_t = out_t.at[rows].set(t.astype(time.dtype))
        # MJX never resets a diverging simulation; non-finite values reveal it.
        return out_q, out_v, out_t, jnp.zeros(time.shape, jnp.bool_)
