"""Small equivariance-preserving operations on per-limb vector channels.

Layout: vector features are [..., L, 3, C] (three coordinates, C channels),
so a channel mix is a matmul on the last axis and never touches coordinates.
Every operation here is safe on zero vectors (padding, the torso's missing
hinge axes): no square root or division ever sees a zero, so values and
gradients stay finite.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.observation import AXIAL_CHANNELS, INPUT_VECTOR_SCALE, POLAR_CHANNELS, Observation, hinge_rates

# The network's own, fixed "down" direction. It is NOT read from the
# observation: an O(3)-equivariant network that took gravity from its input
# would be equivariant to tilts too. A constant down vector makes the networks
# equivariant exactly to the subgroup that fixes it, O_g(3).
DOWN = (0.0, 0.0, -1.0)


def polar_images(axial: jax.Array, target: jax.Array) -> jax.Array:
    """Axial vectors w [..., K, 3] -> the polar vectors [..., K, 2, 3] (down x w, target x w).

    Under R in O(3) an axial w turns as det(R) R w and a cross product as
    (R x) x (R y) = det(R) R (x x y), so the cross product of a polar vector
    with an axial one is polar. With the down vector (fixed by O_g(3)) and the
    target direction (a horizontal polar input) the two images keep all of w:
    down x w holds its horizontal part, target x w its vertical part.
    target: [..., 3], broadcast over K.
    """
    down = jnp.broadcast_to(jnp.asarray(DOWN, axial.dtype), axial.shape)
    return jnp.stack([jnp.cross(down, axial), jnp.cross(target[..., None, :], axial)], -2)


def axial_from_images(images: jax.Array, target: jax.Array) -> jax.Array:
    """The inverse of `polar_images`: polar p [..., 2, 3] -> the axial w [..., 3] with
    p = (down x w, target x w) when p are such images, and equivariant for any p.

    -down x p0 is w's horizontal part; the vertical part is ((p1 x target) . down) down,
    a pseudo-scalar (the product of two polar vectors dotted with a polar one) times down.
    target: [..., 3], unit and horizontal (zero at padding drops the vertical part).
    """
    down = jnp.broadcast_to(jnp.asarray(DOWN, images.dtype), target.shape)
    vertical = jnp.sum(jnp.cross(images[..., 1, :], target) * down, -1, keepdims=True)
    return vertical * down - jnp.cross(down, images[..., 0, :])


def vector_scale(fixed: bool, dtype) -> jax.Array:
    """[NUM_VECTORS, 1]: the observation table's per-channel scales (fixed=True: raw
    observations, e.g. velocities in m/s times 0.1) or ones (NetworkConfig.fixed_vector_scales
    false: the observation normaliser has already brought every channel to unit RMS length,
    and scaling it again would hand the networks velocities ten times smaller than the rest)."""
    return jnp.asarray(INPUT_VECTOR_SCALE if fixed else [1.0] * len(INPUT_VECTOR_SCALE), dtype)[:, None]


def polar_vectors(vectors: jax.Array, limb_mask: jax.Array, target: jax.Array, fixed_scale: bool = True) -> jax.Array:
    """Observation vectors [..., L, 8, 3] -> the network's polar inputs [..., L, 3, C], scaled
    and zero at padding: the polar channels as they are and each axial channel (angular
    velocity, hinge axes) as its two `polar_images`, so that every channel turns as
    v -> R v and the network is equivariant to the physical mirror (equirl.observation)."""
    scale = vector_scale(fixed_scale, vectors.dtype)
    return as_polar_channels(jnp.where(limb_mask[..., None, None], vectors * scale, 0.0), target)


def input_scalars(obs: Observation, config) -> jax.Array:
    """The per-limb invariant scalars a network reads [..., L, S]: the observation's, and
    the hinge rates after them when config.hinge_rate_inputs (a NetworkConfig)."""
    if not config.hinge_rate_inputs:
        return obs.scalars
    return jnp.concatenate([obs.scalars, hinge_rates(obs)], -1)


def as_polar_channels(v: jax.Array, target: jax.Array) -> jax.Array:
    """Vector channels [..., L, 8, 3] in the observation's order -> [..., L, 3, C]: the polar
    channels as they are, each axial one as its two `polar_images` (target [..., L, 3])."""
    images = polar_images(v[..., AXIAL_CHANNELS, :], target)  # [..., L, A, 2, 3]
    images = images.reshape(images.shape[:-3] + (2 * len(AXIAL_CHANNELS), 3))
    return jnp.swapaxes(jnp.concatenate([v[..., POLAR_CHANNELS, :], images], -2), -1, -2)


def down_like(z: jax.Array) -> jax.Array:
    """The constant down vector broadcast to z's leading shape: [..., L, 3, 1]."""
    return jnp.broadcast_to(jnp.asarray(DOWN, z.dtype)[:, None], z.shape[:-1] + (1,))


def with_references(z: jax.Array, target: jax.Array) -> jax.Array:
    """Append the down vector and the target direction [..., L, 3] as two more channels."""
    return jnp.concatenate([z, down_like(z), target[..., None]], -1)


def symlog(x: jax.Array) -> jax.Array:
    """asinh: identity near zero, logarithmic for large |x|, smooth everywhere."""
    return jnp.arcsinh(x)


def masked_mean(x: jax.Array, mask: jax.Array, axis: int = -2) -> jax.Array:
    """Mean of x over `axis` where mask (broadcast on x's trailing axes) is True; zero if none."""
    m = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)).astype(x.dtype)
    count = jnp.sum(m, axis=axis)
    return jnp.sum(x * m, axis=axis) / jnp.maximum(count, 1.0)


def gram_upper(m: jax.Array) -> jax.Array:
    """Upper triangle (diagonal included) of M^T M for M = m [..., 3, K]: [..., K(K+1)/2].

    Row i is channel i times channels i..K-1, summed over the three
    coordinates: static slices and elementwise products. (On a CPU this is
    several times faster than tiny batched matmuls, and than a gather, whose
    gradient is a scatter.) The order is that of np.triu_indices.
    """
    k = m.shape[-1]
    return jnp.concatenate([jnp.sum(m[..., i : i + 1] * m[..., i:], axis=-2) for i in range(k)], -1)


def gram_features(m: jax.Array, target: jax.Array) -> jax.Array:
    """asinh of the Gram upper triangle of [m, down, target]: [..., (k+2)(k+3)/2] invariants."""
    return symlog(gram_upper(with_references(m, target)))


class VectorDense(nn.Module):
    """Equivariant linear map on vector channels: Z W (+ down w_g + target w_d).

    The same as a bias-free Dense on [Z, down, target], without building the
    concatenation. A bias would add a constant vector and break equivariance;
    the two reference directions are the only vectors that may be added (down
    is fixed by O_g(3), the target direction is an input).
    """

    features: int
    references: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, z: jax.Array, target: jax.Array | None = None) -> jax.Array:
        out = nn.Dense(self.features, use_bias=False, kernel_init=self.kernel_init, name="mix")(z)
        if not self.references:
            return out
        fan_in = z.shape[-1] + 2
        w = self.param("reference_weights", nn.initializers.normal(fan_in**-0.5), (2, self.features), z.dtype)
        down = jnp.asarray(DOWN, z.dtype)[:, None]
        return out + down * w[0] + target[..., None] * w[1]


class GramInvariants(nn.Module):
    """Invariants of per-limb vectors: the Gram matrix of [Z W, down, target].

    W (learned, C -> `channels`) mixes vector channels; with the two reference
    directions appended, the upper triangle of M^T M gives (k+2)(k+3)/2 numbers
    per limb. Inner products with `down` keep vertical components (heights,
    vertical speeds) available: they are invariant under O_g(3) only, which
    is exactly the subequivariance wanted. Entries are passed through asinh.
    """

    channels: int

    @nn.compact
    def __call__(self, z: jax.Array, target: jax.Array) -> jax.Array:
        return gram_features(nn.Dense(self.channels, use_bias=False, name="mix")(z), target)


class VectorNorm(nn.Module):
    """Equivariant layer norm for vector channels: divide by the RMS length.

    z / sqrt(mean_c |z_c|^2 + eps) times a learned per-channel gain. The scale
    is invariant, so the result stays equivariant; eps keeps zero vectors zero
    and bounds the gain for tiny ones.
    """

    eps: float = 1e-2

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        gain = self.param("gain", nn.initializers.ones, (z.shape[-1],), z.dtype)
        power = jnp.mean(jnp.sum(z * z, axis=-2, keepdims=True), axis=-1, keepdims=True)
        return z * jax.lax.rsqrt(power + self.eps) * gain


def gate(mixed: jax.Array, coefficients: jax.Array) -> jax.Array:
    """Vector channels [..., 3, K] times per-limb invariant coefficients [..., K]."""
    return mixed * coefficients[..., None, :]


class GatedVectorMix(nn.Module):
    """Mix vector channels with coefficients predicted from invariants.

    out = ((Z_ref A) * c(s)) B where Z_ref = [Z, down, target], c(s) [..., L,
    hidden] are per-limb coefficients from invariant features s, and A, B are
    learned channel mixes. Scalars times vectors, summed: equivariant.
    """

    hidden: int
    out_channels: int
    out_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, z: jax.Array, target: jax.Array, invariant_features: jax.Array) -> jax.Array:
        mixed = VectorDense(self.hidden, name="mix_in")(z, target)
        coefficients = nn.Dense(self.hidden, name="coefficients")(invariant_features)
        return VectorDense(self.out_channels, references=False, kernel_init=self.out_init, name="mix_out")(
            gate(mixed, coefficients)
        )


class VectorsToHeads(nn.Module):
    """Vector channels [..., 3, C] -> per-head vectors [..., H, 3 * n], equivariantly.

    A channel mix (C -> H * n, no bias) with the heads moved in front of the
    coordinates, so that a head's vectors flatten into one feature axis next
    to its scalar features. With references=True the down vector and the
    target direction [..., 3] are added with learned per-output weights, as in
    VectorDense.
    """

    heads: int
    per_head: int
    references: bool = True

    @nn.compact
    def __call__(self, z: jax.Array, target: jax.Array | None = None) -> jax.Array:
        c, h, n = z.shape[-1], self.heads, self.per_head
        w = self.param("kernel", nn.initializers.lecun_normal(), (c, h * n), z.dtype).reshape(c, h, n)
        out = jnp.einsum("...xc,chm->...hxm", z, w)
        if self.references:
            r = self.param("reference_weights", nn.initializers.normal((c + 2) ** -0.5), (2, h, n), z.dtype)
            down = jnp.asarray(DOWN, z.dtype)
            out = out + down[:, None] * r[0][:, None, :] + target[..., None, :, None] * r[1][:, None, :]
        return out.reshape(out.shape[:-3] + (h, 3 * n))


class HeadsToVectors(nn.Module):
    """Per-head vectors [..., H, 3 * n] -> vector channels [..., 3, C]: the inverse
    layout move of VectorsToHeads, with a channel mix (H * n -> C, no bias)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, n = x.shape[-2], x.shape[-1] // 3
        w = self.param("kernel", nn.initializers.lecun_normal(), (h * n, self.features), x.dtype)
        return jnp.einsum("...hxm,hmc->...xc", x.reshape(x.shape[:-1] + (3, n)), w.reshape(h, n, self.features))
