"""Environment variables of the workflow's job processes: the Snakefile adds them before any job
starts, and bench/metrics_scale.py runs its parts with them, so that it measures what a job does.

numpy's AVX-512 sort and partition kernels (x86-simd-sort) store through AVX-512 compress, which
AMD's Zen 4 runs in microcode. On an EPYC Zen 4 numpy sorts int32 keys at 19 ns a key (40k keys)
against 3.6 ns with its AVX2 kernels, and partitions 4x slower; the atom-as-classifier metric,
one sort per atom, took 13 s of the metric suite against 8 s. On AMD CPUs with AVX-512 the jobs
therefore run numpy without its AVX-512 kernels (NPY_DISABLE_CPU_FEATURES, read when numpy is
imported). Intel's AVX-512 kernels are the fast ones there, so nothing changes elsewhere.

The cost: numpy's AVX2 exp, log and tanh take 2-3.5x the time of its AVX-512 ones. The suite
spends no measurable time there, and it came out bit for bit the same (bench/metrics_scale.py).
A value set by the user is kept as it is.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

NUMPY_FEATURES_VARIABLE = "NPY_DISABLE_CPU_FEATURES"
# numpy's name for its AVX-512 dispatch targets; disabling it disables those above it too.
NUMPY_AVX512 = "X86_V4"
# Marks a NUMPY_FEATURES_VARIABLE this module set, not the user: a cluster job inherits the
# submitting machine's environment, and its own CPU decides again.
MARK_VARIABLE = "VLMSAE_SET_NUMPY_FEATURES"


def cpu_vendor_and_flags(cpuinfo: str) -> tuple[str, frozenset[str]]:
    """(vendor id, flags) of the first processor in the text of /proc/cpuinfo ("" and no flags
    where it says nothing)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields.get("vendor_id", ""), frozenset(fields.get("flags", "").split())


def set_job_environment(environ: MutableMapping[str, str], cpuinfo: str | None = None) -> None:
    """Set in `environ` what a job on this machine runs with (module docstring); a value the
    user set stays, one set here for another machine is decided again.

    cpuinfo: the text of /proc/cpuinfo, read when None (none on a machine without one).
    """
    if environ.pop(MARK_VARIABLE, None) is not None:
        environ.pop(NUMPY_FEATURES_VARIABLE, None)
    if NUMPY_FEATURES_VARIABLE in environ:
        return
    if cpuinfo is None:
        source = Path("/proc/cpuinfo")
        cpuinfo = source.read_text() if source.exists() else ""
    vendor, flags = cpu_vendor_and_flags(cpuinfo)
    if vendor == "AuthenticAMD" and "avx512f" in flags:
        environ[NUMPY_FEATURES_VARIABLE] = NUMPY_AVX512
        environ[MARK_VARIABLE] = "1"
