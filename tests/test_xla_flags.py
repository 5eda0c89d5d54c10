"""The XLA:CPU flags rlx sets at import: each core a device, reductions left to XLA's own loops on jaxlib 0.10."""

import os
import subprocess
import sys
from importlib import metadata

import pytest

SHOW = "import os, rlx; print(os.environ.get('XLA_FLAGS', ''))"


def _flags_after_import(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RLX_CPU_DEVICES")}
    out = subprocess.run([sys.executable, "-c", SHOW], env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not metadata.version("jaxlib").startswith("0.10."), reason="the YNNPACK flag is set on jaxlib 0.10")
def test_reductions_stay_out_of_ynnpack_unless_the_caller_says_otherwise():
    dots_only = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_DOT"
    assert dots_only in _flags_after_import().split()
    mine = "--xla_cpu_experimental_ynn_fusion_type="
    flags = _flags_after_import(XLA_FLAGS=mine).split()
    assert mine in flags and dots_only not in flags


def test_cores_become_devices_unless_turned_off():
    n = os.cpu_count() or 1
    assert (f"--xla_force_host_platform_device_count={n}" in _flags_after_import().split()) == (n > 1)
    assert "xla_force_host_platform_device_count" not in _flags_after_import(RLX_CPU_DEVICES="1")
