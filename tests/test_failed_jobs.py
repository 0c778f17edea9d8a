"""The one line per failed job printed after a failed run (vlmsae.workflow.failed_jobs), on
Snakemake log blocks as Snakemake 9 and the SLURM executor plugin write them."""

from pathlib import Path

from vlmsae.workflow.failed_jobs import failed_job_lines

LOCAL = """[Sat Nov 28 20:29:07 2026]
Error in rule embed:
    message: None
    jobid: 1
    output: results/embeddings/tiny/generator.zarr
    log: logs/embed/tiny/generator.log (check log file(s) for error details)
Logfile logs/embed/tiny/generator.log:
===========================================
vlmsae: data/x.csv: broken; fix: replace it
===========================================
Trying to restart job 1.
"""

OOM = """Error in rule train:
    message: SLURM-job '55' failed, SLURM status is: 'OUT_OF_MEMORY'. For further error details see the cluster/cloud log and the log files of the involved rule(s).
    jobid: 4
    input: results/embeddings/tiny/generator.zarr
    output: results/sae/tiny/generator/topk/1-1/seed0/sae.safetensors, results/sae/tiny/generator/topk/1-1/seed0/config.json
    log: logs/train/tiny/generator/topk/1-1/seed0.log, .snakemake/slurm_logs/rule_train/55.log (check log file(s) for error details)
    external_jobid: 55
"""  # noqa: E501

SBATCH = """Error in rule store_metrics:
    message: SLURM sbatch failed. The error message was 'sbatch: error: invalid partition specified: nope
sbatch: error: Batch job submission failed: Invalid partition name specified'.
    sbatch call:
        sbatch --parsable --partition nope --mem 4000 --wrap '...'
    jobid: 2
    output: results/metrics/tiny/generator/store.json
    log: logs/metrics/tiny/generator/store.log (check log file(s) for error details)
"""  # noqa: E501


TRAIN_LOG = "logs/train/tiny/generator/topk/1-1/seed0.log"
OOM_FAILED = OOM.replace("OUT_OF_MEMORY", "FAILED")


def _log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".snakemake" / "log" / "run.snakemake.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _job_log(tmp_path: Path, relative: str, text: str) -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_local_job_is_one_line_with_its_own_reason_once_for_all_tries(tmp_path):
    _job_log(tmp_path, "logs/embed/tiny/generator.log", "reading\nvlmsae: data/x.csv: broken\n")
    log = _log(tmp_path, LOCAL + LOCAL.replace("Trying to restart job 1.", "Shutting down"))
    assert failed_job_lines([log], tmp_path) == [
        "vlmsae: rule embed failed (results/embeddings/tiny/generator.zarr): data/x.csv: "
        "broken; logs: logs/embed/tiny/generator.log"
    ]


def test_a_slurm_state_names_the_job_and_both_logs(tmp_path):
    _job_log(tmp_path, TRAIN_LOG, "step 10\n")
    (line,) = failed_job_lines([_log(tmp_path, OOM)], tmp_path)
    assert line == (
        "vlmsae: rule train failed (results/sae/tiny/generator/topk/1-1/seed0/sae.safetensors): "
        "SLURM job 55 ended OUT_OF_MEMORY; logs: logs/train/tiny/generator/topk/1-1/seed0.log, "
        ".snakemake/slurm_logs/rule_train/55.log"
    )


def test_a_failed_slurm_job_adds_its_own_line(tmp_path):
    _job_log(tmp_path, TRAIN_LOG, "vlmsae: store damaged\n")
    (line,) = failed_job_lines([_log(tmp_path, OOM_FAILED)], tmp_path)
    assert "SLURM job 55 ended FAILED: store damaged; logs: " in line


def test_without_an_own_line_the_last_error_line_of_the_logs(tmp_path):
    _job_log(tmp_path, TRAIN_LOG, "step 10\n")
    _job_log(
        tmp_path,
        ".snakemake/slurm_logs/rule_train/55.log",
        "slurmstepd: error: Job 55 exceeded memory limit (60 > 50), being killed\nKilled\n",
    )
    (line,) = failed_job_lines([_log(tmp_path, OOM_FAILED)], tmp_path)
    assert "ended FAILED: slurmstepd: error: Job 55 exceeded memory limit (60 > 50), being" in line


def test_a_traceback_gives_its_exception(tmp_path):
    _job_log(
        tmp_path,
        "logs/embed/tiny/generator.log",
        "root ERROR: failed\nTraceback (most recent call last):\n  File \"x.py\", line 3\n"
        "ValueError: tau2=0.95 is out of reach\n",
    )
    (line,) = failed_job_lines([_log(tmp_path, LOCAL)], tmp_path)
    assert "generator.zarr): ValueError: tau2=0.95 is out of reach; logs: " in line


def test_sbatch_refusal_is_its_last_error_line(tmp_path):
    (line,) = failed_job_lines([_log(tmp_path, SBATCH)], tmp_path)
    assert line == (
        "vlmsae: rule store_metrics failed (results/metrics/tiny/generator/store.json): sbatch "
        "refused the job: sbatch: error: Batch job submission failed: Invalid partition name "
        "specified; logs: logs/metrics/tiny/generator/store.log"
    )


def test_an_exception_at_submission_is_joined_on_one_line(tmp_path):
    message = (
        "    message: Job submission failed with exception: The given account nobody appears to "
        "be invalid. Available accounts:\nrootFor further error details see the cluster/cloud "
        "log and the log files of the involved rule(s).\n"
    )
    log = _log(tmp_path, LOCAL.replace("    message: None\n", message))
    (line,) = failed_job_lines([log], tmp_path)
    assert line == (
        "vlmsae: rule embed failed (results/embeddings/tiny/generator.zarr): Job submission "
        "failed with exception: The given account nobody appears to be invalid. Available "
        "accounts: root; logs: logs/embed/tiny/generator.log"
    )


def test_several_jobs_in_log_order_and_no_block_no_line(tmp_path):
    lines = failed_job_lines([_log(tmp_path, SBATCH + LOCAL)], tmp_path)
    assert [line.split()[2] for line in lines] == ["store_metrics", "embed"]
    assert lines[1].endswith("(results/embeddings/tiny/generator.zarr): no reason in its log; "
                             "logs: logs/embed/tiny/generator.log")  # fmt: skip
    assert failed_job_lines([_log(tmp_path, "Nothing to be done.\n")], tmp_path) == []
    assert failed_job_lines([tmp_path / "missing.log"], tmp_path) == []
