"""Action distributions over padded per-limb torques [..., L, 3].

`MaskedGaussian` is a diagonal Gaussian with an action mask: where the mask
is False (padding limbs, missing or undriven hinges) the action is a point
mass at zero that adds nothing to log-probabilities, entropies or KL
divergences, so a body's distribution does not depend on how much padding
surrounds it. With squash=True it is the tanh-squashed Gaussian used by SAC:
samples lie in (-1, 1) and log-probabilities include the change of variables.
"""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_SQUASH_EDGE = 1.0 - 1e-6  # log_prob clips squashed values to (-edge, edge)


def log_one_minus_tanh_sq(x: jax.Array) -> jax.Array:
    """log(1 - tanh(x)^2), accurate for large |x| (where 1 - tanh^2 underflows)."""
    return 2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x))


class MaskedGaussian(distrax.Distribution):
    """Diagonal Gaussian (optionally tanh-squashed) over [..., L, 3] with an action mask.

    loc, log_scale: [..., L, 3]; mask: [..., L, 3] bool. The event is the whole
    [L, 3] block; batch dimensions are the leading ones.
    """

    def __init__(self, loc: jax.Array, log_scale: jax.Array, mask: jax.Array, squash: bool = False):
        mask = jnp.broadcast_to(jnp.asarray(mask, bool), loc.shape)
        self._mask = mask
        self._loc = jnp.where(mask, loc, 0.0)
        self._log_scale = jnp.where(mask, log_scale, 0.0)
        self._squash = bool(squash)

    # -- description ------------------------------------------------------------

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self._loc.shape[-2:])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self._loc.shape[:-2])

    @property
    def squash(self) -> bool:
        return self._squash

    @property
    def mask(self) -> jax.Array:
        return self._mask

    @property
    def loc(self) -> jax.Array:
        """The Gaussian's mean before any squashing (zero where masked)."""
        return self._loc

    @property
    def log_scale(self) -> jax.Array:
        """Log standard deviation before any squashing (zero where masked)."""
        return self._log_scale

    def _masked_sum(self, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(self._mask, x, 0.0), axis=(-2, -1))

    def _gaussian_log_prob(self, x: jax.Array) -> jax.Array:
        z = (x - self._loc) * jnp.exp(-self._log_scale)
        return -0.5 * z * z - self._log_scale - _HALF_LOG_TWO_PI

    # -- sampling ---------------------------------------------------------------

    def _pre_squash_sample(self, key: jax.Array, n: int) -> jax.Array:
        noise = jax.random.normal(key, (n,) + self._loc.shape, self._loc.dtype)
        return jnp.where(self._mask, self._loc + jnp.exp(self._log_scale) * noise, 0.0)

    def _sample_n(self, key: jax.Array, n: int) -> jax.Array:
        x = self._pre_squash_sample(key, n)
        return jnp.tanh(x) if self._squash else x

    def _sample_n_and_log_prob(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        x = self._pre_squash_sample(key, n)
        log_prob = self._gaussian_log_prob(x)
        if not self._squash:
            return x, self._masked_sum(log_prob)
        # Change of variables on the pre-squash sample: no atanh, no clipping.
        return jnp.tanh(x), self._masked_sum(log_prob - log_one_minus_tanh_sq(x))

    # -- pre-squash samples (on-policy updates) ----------------------------------
    # PPO stores the Gaussian sample x and steps the environment with
    # squash_sample(x). Its ratio of densities is then the ratio of the Gaussian
    # densities of x (the Jacobian of tanh depends on x alone and cancels), with
    # no arctanh of a saturated tanh(x) that would make the ratio differ from 1.

    def sample_pre_squash_and_log_prob(self, seed: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(x, Gaussian log-density of x): the sample before any squashing."""
        x = self._pre_squash_sample(seed, 1)[0]
        return x, self.pre_squash_log_prob(x)

    def pre_squash_log_prob(self, x: jax.Array) -> jax.Array:
        """Gaussian log-density of a pre-squash sample x (the Gaussian's own, with or without squash)."""
        return self._masked_sum(self._gaussian_log_prob(x))

    def squash_sample(self, x: jax.Array) -> jax.Array:
        """The action of a pre-squash sample x: tanh(x) if squashed, else x."""
        return jnp.tanh(x) if self._squash else x

    def entropy_estimate(self, seed: jax.Array) -> jax.Array:
        """The entropy: exact for the Gaussian; for the squashed one -log_prob of one
        reparameterised sample, H = H_gauss + E[log(1 - tanh(x)^2)]."""
        if not self._squash:
            return self.entropy()
        return -self._sample_n_and_log_prob(seed, 1)[1][0]

    # -- densities --------------------------------------------------------------

    def log_prob(self, value: jax.Array) -> jax.Array:
        if not self._squash:
            return self._masked_sum(self._gaussian_log_prob(value))
        x = jnp.arctanh(jnp.clip(value, -_SQUASH_EDGE, _SQUASH_EDGE))
        return self._masked_sum(self._gaussian_log_prob(x) - log_one_minus_tanh_sq(x))

    def entropy(self) -> jax.Array:
        """Exact for the Gaussian; the squashed one has no closed form (estimate it
        as -log_prob of samples, as SAC does)."""
        if self._squash:
            raise NotImplementedError("a tanh-squashed Gaussian has no closed-form entropy: use -log_prob of samples")
        return self._masked_sum(0.5 + _HALF_LOG_TWO_PI + self._log_scale)

    def kl_divergence(self, other: "MaskedGaussian", **kwargs) -> jax.Array:
        """KL(self || other) of the (pre-squash) Gaussians over self's unmasked dims."""
        del kwargs
        if not isinstance(other, MaskedGaussian):
            raise TypeError(f"KL divergence to {type(other).__name__} is not implemented")
        log_ratio = other._log_scale - self._log_scale
        z = (self._loc - other._loc) * jnp.exp(-other._log_scale)
        var_ratio = jnp.exp(2.0 * (self._log_scale - other._log_scale))
        return self._masked_sum(log_ratio + 0.5 * (var_ratio + z * z - 1.0))

    # -- summaries --------------------------------------------------------------

    def mode(self) -> jax.Array:
        """The deterministic action: loc, squashed if the distribution is."""
        return jnp.tanh(self._loc) if self._squash else self._loc

    def mean(self) -> jax.Array:
        if self._squash:
            raise NotImplementedError("the mean of a tanh-squashed Gaussian has no closed form: use mode()")
        return self._loc

    def stddev(self) -> jax.Array:
        """Standard deviation (pre-squash); zero where masked (a point mass)."""
        return jnp.where(self._mask, jnp.exp(self._log_scale), 0.0)

    def variance(self) -> jax.Array:
        return jnp.square(self.stddev())

    def __getitem__(self, index) -> "MaskedGaussian":
        """Index the batch dimensions (the [L, 3] event is kept whole)."""
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None), slice(None))
        return MaskedGaussian(self._loc[index], self._log_scale[index], self._mask[index], self._squash)
