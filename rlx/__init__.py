"""rlx: jitted, vmapped deep-RL exploration experiments on JAX."""

import os
import sys
from importlib import metadata

__version__ = "0.1.0"

# XLA:CPU of jaxlib 0.10 hands dots *and* reductions to the YNNPACK library. A reduction there costs a library
# call each, and a LayerNorm network has a dozen small ones per update: at one seed the LayerNorm update took
# 363 us against 130 us without LayerNorm, and 171 us with reductions left to XLA's own loops (dots stay in
# YNNPACK). Only for the jaxlib minor this was measured on: an XLA flag that a later jaxlib no longer knows
# aborts the process.
_YNN_DOTS_ONLY = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_DOT"
_YNN_MEASURED_ON = "0.10."


def _set_xla_cpu_flags() -> None:
    """Flags for XLA:CPU, set before jax is imported (afterwards they no longer apply); a flag the caller set in
    XLA_FLAGS wins. Each CPU core becomes a device so the seed axis can be sharded across cores: XLA runs one
    program on one core, and 8 CartPole seeds ran 2.7x faster on 2 cores (RLX_CPU_DEVICES=1 turns it off).
    GPU runs are unaffected (jax prefers the GPU devices; the flags only touch the host's programs)."""
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    n = os.environ.get("RLX_CPU_DEVICES") or str(os.cpu_count() or 1)
    if "xla_force_host_platform_device_count" not in flags and n.isdigit() and int(n) > 1:
        flags = f"{flags} --xla_force_host_platform_device_count={n}"
    if "xla_cpu_experimental_ynn_fusion_type" not in flags and _jaxlib_version().startswith(_YNN_MEASURED_ON):
        flags = f"{flags} {_YNN_DOTS_ONLY}"
    os.environ["XLA_FLAGS"] = flags.strip()


def _jaxlib_version() -> str:
    try:
        return metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return ""


_set_xla_cpu_flags()
