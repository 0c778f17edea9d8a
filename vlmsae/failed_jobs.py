"""One line per failed job, printed when a Snakemake run stops on failed jobs (`onerror` in the
Snakefile): which rule, why, and where its logs are.

Snakemake reports a failed job as a block of its log ("Error in rule <rule>:" and indented
`key: value` lines, followed by the job's log when `show-failed-logs` is set), once per try. The
reason is, in this order: the job's own `vlmsae:` line in its log (bad input, a damaged file:
vlmsae.workflow), the executor's message (a SLURM state such as OUT_OF_MEMORY or TIMEOUT, or
sbatch refusing the job: an unknown partition or account), or the last line of its log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

BLOCK_START = re.compile(r"^Error in rule (?P<rule>\S+):\s*$")
FIELD = re.compile(r"^ {4}(?P<key>[\w-]+): ?(?P<value>.*)$")
LOG_HINT = " (check log file(s) for error details)"
# The executor plugin's wording around a SLURM state or sbatch's own error.
SLURM_STATE = re.compile(r"SLURM-job '(?P<job>\d+)' failed, SLURM status is: '(?P<state>[^']+)'")
SBATCH_ERROR = re.compile(r"sbatch failed\. The error message was '(?P<error>[^']*)")


def _blocks(log_text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, fields) of every "Error in rule" block, in log order; a field's value is its
    first line."""
    blocks: list[tuple[str, dict[str, str]]] = []
    fields: dict[str, str] | None = None
    for line in log_text.splitlines():
        start = BLOCK_START.match(line)
        if start:
            fields = {}
            blocks.append((start.group("rule"), fields))
            continue
        if fields is None:
            continue
        field = FIELD.match(line)
        if field:
            fields.setdefault(field.group("key"), field.group("value"))
        elif not line.startswith(" " * 5):
            fields = None  # the block ended (more-indented lines continue a field)
    return blocks


def _own_line(log_paths: Iterable[Path]) -> str | None:
    """The last `vlmsae:` line of the job's logs, or the last non-empty line of its first log."""
    last = None
    for path in log_paths:
        try:
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        except OSError:
            continue
        own = [line for line in lines if line.startswith("vlmsae:")]
        if own:
            return own[-1].removeprefix("vlmsae:").strip()
        if last is None and any(lines):
            last = [line for line in lines if line][-1]
    return last


def _reason(message: str, log_paths: list[Path]) -> str:
    own = _own_line(log_paths)
    state = SLURM_STATE.search(message)
    if state:
        reason = f"SLURM job {state.group('job')} ended {state.group('state')}"
        return f"{reason}: {own}" if own and state.group("state") == "FAILED" else reason
    sbatch = SBATCH_ERROR.search(message)
    if sbatch:
        # sbatch's lines ("sbatch: error: ..."), the last one being its summary.
        errors = [line.strip() for line in sbatch.group("error").split("\\n") if line.strip()]
        return "sbatch refused the job: " + (errors[-1] if errors else "no reason given")
    return own or message.strip() or "no reason in its log"


def failed_job_lines(log_files: Iterable[str | Path], workdir: str | Path = ".") -> list[str]:
    """`vlmsae: rule <rule> failed (<output>): <reason>; logs: <paths>` for each job that failed
    in the Snakemake run logged to `log_files` (its last try), in log order."""
    workdir = Path(workdir)
    latest: dict[tuple[str, str], dict[str, str]] = {}
    for log_file in log_files:
        try:
            text = Path(log_file).read_text(errors="replace")
        except OSError:
            continue
        for rule, fields in _blocks(text):
            latest.pop((rule, fields.get("output", "")), None)  # keep each job's last try
            latest[(rule, fields.get("output", ""))] = fields
    lines = []
    for (rule, output), fields in latest.items():
        logs = [p.strip() for p in fields.get("log", "").removesuffix(LOG_HINT).split(",")]
        logs = [p for p in logs if p]
        reason = _reason(fields.get("message", ""), [workdir / p for p in logs])
        target = f" ({output.split(', ')[0]})" if output else ""
        where = f"; logs: {', '.join(logs)}" if logs else ""
        lines.append(f"vlmsae: rule {rule} failed{target}: {reason}{where}")
    return lines
