"""rlx: jitted, vmapped deep-RL exploration experiments on JAX."""

__version__ = "0.1.0"
