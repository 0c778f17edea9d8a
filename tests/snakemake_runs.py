"""The one way tests run the workflow: `snakemake` of this checkout in a fresh process.

Every test that starts Snakemake goes through `snakemake` (or `snakemake_command`, for a run
that must be watched while it goes, such as the cluster test's), so the command line a test runs
is the one a user types: the repository's Snakefile, a working directory, a config file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY_CONFIG = REPO / "tests" / "tiny_config.yaml"
# Seconds before a run that hangs fails its test.
TIMEOUT = 1800


def tiny_config() -> dict:
    """A fresh copy of tests/tiny_config.yaml, the smallest config that exercises every rule."""
    return yaml.safe_load(TINY_CONFIG.read_text())


def snakemake_command(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    configfile: Path | None = None,
    cores: int | None = 2,
) -> list[str]:
    """The command line of a run in `workdir`: `config` is written to workdir/config.yaml (as a
    user's own file would be), `configfile` is passed as it is; `cores` None leaves the choice
    to the arguments (a profile, a dry run)."""
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        configfile = Path(workdir) / "config.yaml"
        configfile.write_text(yaml.safe_dump(config))
    if configfile is not None:
        # One `=`-joined word: a separate value list (nargs +) would take the targets after it.
        command.append(f"--configfile={configfile}")
    if cores is not None:
        command += ["--cores", str(cores)]
    return command + list(args)  # last: they may end with `-- targets`


def snakemake(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    configfile: Path | None = None,
    cores: int | None = 2,
    timeout: float = TIMEOUT,
    **options: Any,
) -> subprocess.CompletedProcess:
    """Run `snakemake_command(...)` to its end; its output is captured as text. `options` go to
    subprocess.run (cwd, env, ...)."""
    command = snakemake_command(workdir, *args, config=config, configfile=configfile, cores=cores)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **options)


def dry_run_jobs(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    return re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", result.stdout, re.M)
