"""The Snakemake report of the tiny config: every figure and paper table in it, captioned."""

import base64
from pathlib import Path

import pytest
from snakemake_runs import snakemake, tiny_config

from vlmsae.config import check_config
from vlmsae.figures import figure_targets
from vlmsae.runs import runs
from vlmsae.tables.papers import PAPER_TABLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tiny_workflow) -> tuple[Path, dict]:
    """The finished tiny workflow and its report (`snakemake --report`, which adds
    results/report.html and changes nothing else)."""
    configfile = tiny_workflow / "config.yaml"
    result = snakemake(tiny_workflow, "--report", "results/report.html", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    return tiny_workflow, tiny_config()


def test_report_holds_every_figure_of_the_config(built):
    workdir, config = built
    html = (workdir / "results/report.html").read_text()
    check_config(config, base_dir=str(workdir))
    figures = figure_targets(config, [run.as_dict() for run in runs(config)])
    assert any("/tiny/generator.png" in path for path in figures)  # store-scope figures too
    for path in figures:
        # The report embeds each file as base64: the figure itself, not only its name, is there.
        png = (workdir / path).read_bytes()
        assert base64.b64encode(png).decode() in html, path
        assert (workdir / path).with_suffix(".svg").stat().st_size > 0, path


def test_report_holds_the_paper_tables_and_the_captions(built):
    workdir, _ = built
    html = (workdir / "results/report.html").read_text()
    for name in PAPER_TABLES:
        table = (workdir / f"results/tables/{name}.csv").read_bytes()
        assert base64.b64encode(table).decode() in html, name
        assert (workdir / f"results/tables/{name}.md").read_text().startswith("| dataset |")
    # Each run's health is a table of the report, beside the runs it flags.
    health = (workdir / "results/tables/health.csv").read_bytes()
    assert base64.b64encode(health).decode() in html and "numbers with care" in html
    # Captions say which paper figure a figure reproduces; the workflow description is there.
    assert "linear-structure Fig. 1" in html
    assert "iso-energy Fig. 3" in html
    assert "Kaushik et al." in html
