"""Helpers of the Snakefile and its job scripts: a job's log and exit status (`job_log`) and the
one-line summary of each failed job after a failed run (`failed_jobs`)."""
