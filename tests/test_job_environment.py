"""What the workflow's jobs run with (vlmsae.job_environment): numpy without its AVX-512 kernels
on AMD CPUs that have them, nothing elsewhere, and never over the user's own setting."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vlmsae.job_environment import (
    MARK_VARIABLE,
    NUMPY_AVX512,
    NUMPY_FEATURES_VARIABLE,
    cpu_vendor_and_flags,
    set_job_environment,
)


def _cpuinfo(vendor: str, flags: str) -> str:
    processor = f"processor\t: {{}}\nvendor_id\t: {vendor}\ncpu family\t: 25\nflags\t\t: {flags}\n"
    return "\n".join(processor.format(n) for n in range(2))


ZEN4 = _cpuinfo("AuthenticAMD", "fpu sse2 avx2 avx512f avx512bw avx512_bf16")
ZEN3 = _cpuinfo("AuthenticAMD", "fpu sse2 avx2 fma")
ICE_LAKE = _cpuinfo("GenuineIntel", "fpu sse2 avx2 avx512f avx512bw")


def test_the_first_processor_gives_vendor_and_flags():
    vendor, flags = cpu_vendor_and_flags(ZEN4)
    assert vendor == "AuthenticAMD" and {"avx512f", "avx2"} <= flags and "avx512" not in flags
    assert cpu_vendor_and_flags("") == ("", frozenset())


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(ZEN4, NUMPY_AVX512), (ZEN3, None), (ICE_LAKE, None), ("", None)],
    ids=["amd-avx512", "amd-avx2", "intel-avx512", "no-cpuinfo"],
)
def test_only_amd_cpus_with_avx512_run_numpy_without_it(cpuinfo, expected):
    environ = {"PATH": "/bin"}
    set_job_environment(environ, cpuinfo)
    assert environ.get(NUMPY_FEATURES_VARIABLE) == expected
    assert environ["PATH"] == "/bin"


def test_the_users_own_setting_stays_whatever_the_cpu():
    for cpuinfo in (ZEN4, ICE_LAKE):
        environ = {NUMPY_FEATURES_VARIABLE: "AVX512_SPR"}
        set_job_environment(environ, cpuinfo)
        assert environ == {NUMPY_FEATURES_VARIABLE: "AVX512_SPR"}


def test_a_cluster_job_decides_again_on_its_own_cpu():
    """A job inherits the submitting machine's environment: set there on an AMD login node, it
    is dropped on an Intel compute node and set again on an AMD one."""
    submitted = {}
    set_job_environment(submitted, ZEN4)
    assert submitted == {NUMPY_FEATURES_VARIABLE: NUMPY_AVX512, MARK_VARIABLE: "1"}
    on_intel = dict(submitted)
    set_job_environment(on_intel, ICE_LAKE)
    assert on_intel == {}
    on_amd = dict(submitted)
    set_job_environment(on_amd, ZEN4)
    assert on_amd == submitted


@pytest.mark.skipif(
    not np._core._multiarray_umath.__cpu_features__.get(NUMPY_AVX512),
    reason=f"this CPU has no {NUMPY_AVX512} kernels to disable",
)
def test_numpy_knows_the_name_and_drops_its_avx512_kernels():
    """The variable names a numpy feature (numpy ignores unknown names without a word)."""
    environ = {**os.environ, NUMPY_FEATURES_VARIABLE: NUMPY_AVX512}
    features = "numpy._core._multiarray_umath.__cpu_features__"
    completed = subprocess.run(
        [sys.executable, "-c", f"import numpy; print({features}['{NUMPY_AVX512}'])"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "False"
