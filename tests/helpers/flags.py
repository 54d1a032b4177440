"""Set before JAX starts (tests/conftest.py and the subprocess launchers read it; no jax import here)."""

# Tests run tiny programs: XLA compiles every one of them (here and in the
# subprocesses, which inherit the environment) for compile time, not run time.
# Optimisation level 0 and no expensive LLVM passes: about 3x faster compiles.
# The older elemental emitters instead of the fusion emitters, and no XNNPACK:
# another 45% off the compile of a tiny PPO iteration (24.4 s -> 13.5 s,
# jax 0.9.2, 2026-12-03; the whole suite is mostly compiling).
FAST_XLA_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false --xla_cpu_use_xnnpack=false"
)
