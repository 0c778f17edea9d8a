"""The README's "Extending" section, run as a user would: its plugin file on the tiny config."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section("Extending"), re.S)


@pytest.mark.slow
def test_readme_plugin_runs_on_the_tiny_config(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(_blocks("python")[0])
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    extension = yaml.safe_load(_blocks("yaml")[0])
    config["plugins"] = extension["plugins"]
    config["variants"] = extension["variants"]
    config["mixtures"] = ["1-1"]
    config["evaluation"]["metrics"].update(extension["evaluation"]["metrics"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--cores",
            "2",
            "--configfile",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
    assert set(summary["variant"]) == {"floored"}
    assert summary["code_norm_quantile"].gt(0).all()
    saved = yaml.safe_load(
        (tmp_path / "results/sae/tiny/generator/floored/1-1/seed0/config.json").read_text()
    )
    assert saved["sae"]["variant"] == "floored_topk" and saved["sae"]["floor"] == 0.01
    assert (tmp_path / "results/figures/code_norm.png").read_bytes()[:4] == b"\x89PNG"


def test_plugin_settings_reach_the_generated_schema(tmp_path, monkeypatch):
    from vlmsae.config import check_config, full_schema
    from vlmsae.errors import ConfigError

    (tmp_path / "toy_plugin.py").write_text(_blocks("python")[0])
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    config.update(yaml.safe_load(_blocks("yaml")[0]))
    checked = check_config(config, base_dir=tmp_path)
    assert checked["evaluation"]["metrics"]["code_norm"] == {"quantile": 0.9}
    schema = full_schema()
    variant = schema["properties"]["variants"]["additionalProperties"]["properties"]
    assert variant["floor"]["minimum"] == 0
    figures = schema["properties"]["figures"]["properties"]
    assert "code_norm" in figures
    config["variants"]["floored"]["floor"] = -1
    with pytest.raises(ConfigError, match="variants.floored.floor"):
        check_config(config, base_dir=tmp_path)
