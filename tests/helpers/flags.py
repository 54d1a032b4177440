"""Set before JAX starts (tests/conftest.py and the subprocess launchers read it; no jax import here)."""

# Tests run tiny programs: XLA compiles every one of them (here and in the
# subprocesses, which inherit the environment) for compile time, not run time
# (about 3x faster to compile here).
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
