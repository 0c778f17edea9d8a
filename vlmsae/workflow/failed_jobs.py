"""One line per failed job, printed when a Snakemake run stops on failed jobs (`onerror` in the
Snakefile): which rule, why, and where its logs are.

Snakemake reports a failed job as a block of its log ("Error in rule <rule>:" and indented
`key: value` lines, followed by the job's log when `show-failed-logs` is set), once per try. The
reason is the executor's message where it has one (a SLURM state such as OUT_OF_MEMORY or
TIMEOUT, or sbatch refusing the job: an unknown partition), with what the job's logs say of its
end when SLURM only says FAILED; otherwise what the logs say: the job's own `vlmsae:` line (bad
input, a damaged file: vlmsae.workflow.job_log), else their last error line, else their last line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

BLOCK_START = re.compile(r"^Error in rule (?P<rule>\S+):[ \t]*$", re.MULTILINE)
# A field of the block, its value up to the end of its line. The block's fields come before the
# job's own log (show-failed-logs), so the first match of each is the block's.
FIELD = r"^ {{4}}{key}: (?P<value>.*)$"
# The message may span lines (sbatch's errors); it ends where the next field starts.
MESSAGE = re.compile(r"^ {4}message: (?P<value>.*?)(?=^ {4}[\w -]+:)", re.MULTILINE | re.DOTALL)
LOG_HINT = " (check log file(s) for error details)"
# The executor plugin's wording around a SLURM state or sbatch's own error.
SLURM_STATE = re.compile(r"SLURM-job '(?P<job>\d+)' failed, SLURM status is: '(?P<state>[^']+)'")
EXCEPTION_LINE = re.compile(r"[\w.]*(Error|Exception|Interrupt): ")
ERROR_LINE = re.compile(r"\berror\b", re.IGNORECASE)
# What the plugin appends to every message of a failed job.
BOILERPLATE = re.compile(
    r"\s*For further error details see the cluster/cloud log and the log files of the "
    r"involved rule\(s\)\."
)
SBATCH_ERROR = re.compile(r"sbatch failed\. The error message was '(?P<error>[^']*)'")


def _field(block: str, key: str) -> str:
    found = re.search(FIELD.format(key=key), block, re.MULTILINE)
    return found.group("value").strip() if found else ""


def _blocks(log_text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, {message, output, log}) of every "Error in rule" block, in log order."""
    starts = list(BLOCK_START.finditer(log_text))
    ends = [start.start() for start in starts[1:]] + [len(log_text)]
    blocks = []
    for start, end in zip(starts, ends, strict=False):  # no block: no end either
        block = log_text[start.end() : end] + "\n"
        message = MESSAGE.search(block)
        fields = {key: _field(block, key) for key in ("output", "log")}
        fields["message"] = message.group("value").strip() if message else ""
        blocks.append((start.group("rule"), fields))
    return blocks


def _own_line(log_paths: Iterable[Path]) -> str | None:
    """What the job's logs say of its end: their last `vlmsae:` line, else the last exception a
    traceback ended with, else their last line that reports an error (e.g. slurmstepd's
    "exceeded memory limit"), else their last line."""
    lines = []
    for path in log_paths:
        try:
            lines += [line.strip() for line in path.read_text(errors="replace").splitlines()]
        except OSError:
            continue
    own = (lambda line: line.startswith("vlmsae:"), EXCEPTION_LINE.match, ERROR_LINE.search, bool)
    for wanted in own:
        chosen = [line for line in lines if wanted(line)]
        if chosen:
            return chosen[-1].removeprefix("vlmsae:").strip()
    return None


def _reason(message: str, log_paths: list[Path]) -> str:
    own = _own_line(log_paths)
    state = SLURM_STATE.search(message)
    if state:
        reason = f"SLURM job {state.group('job')} ended {state.group('state')}"
        return f"{reason}: {own}" if own and state.group("state") == "FAILED" else reason
    sbatch = SBATCH_ERROR.search(message)
    if sbatch:
        # sbatch's lines ("sbatch: error: ..."), the last one being its summary.
        errors = [line.strip() for line in sbatch.group("error").splitlines() if line.strip()]
        return "sbatch refused the job: " + (errors[-1] if errors else "no reason given")
    if own:
        return own
    # An exception at submission (e.g. an account the cluster does not know), on one line.
    message = " ".join(BOILERPLATE.sub(" ", message).split())
    return message if message not in ("", "None") else "no reason in its log"


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
