"""The README's "Extending" section, run as a user would: its plugin file on the tiny config."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from snakemake_runs import REPO, snakemake, tiny_config

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section("Extending"), re.S)


@pytest.mark.slow
def test_readme_plugin_runs_on_the_tiny_config(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(_blocks("python")[0])
    config = tiny_config()
    extension = yaml.safe_load(_blocks("yaml")[0])
    config["plugins"] = extension["plugins"]
    config["variants"] = extension["variants"]
    config["mixtures"] = ["1-1"]
    config["evaluation"]["metrics"].update(extension["evaluation"]["metrics"])
    # The outputs the README names (the run, its summary row, the figure) and what they need:
    # each job that loads the SAE or a metric group imports the plugin (train, metrics).
    targets = ("results/tables/summary.csv", "results/figures/code_norm.png")
    result = snakemake(tmp_path, *targets, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
    assert set(summary["variant"]) == {"floored"}
    assert summary["code_norm_quantile"].gt(0).all()
    saved = yaml.safe_load(
        (tmp_path / "results/sae/tiny/generator/floored/1-1/seed0/config.json").read_text()
    )
    assert saved["sae"]["variant"] == "floored_topk" and saved["sae"]["floor"] == 0.01
    assert (tmp_path / "results/figures/code_norm.png").read_bytes()[:4] == b"\x89PNG"


# Run in a fresh interpreter: a plugin stays registered, and named in VLMSAE_PLUGINS (which every
# Snakemake started later inherits), for the rest of the process that loads it.
SCHEMA_OF_PLUGIN = """
import json, sys
import yaml
from vlmsae.config import check_config, full_schema
from vlmsae.errors import ConfigError

config = yaml.safe_load(open(sys.argv[1]))
checked = check_config(config, base_dir=".")
schema = full_schema()
variant = schema["properties"]["variants"]["additionalProperties"]["properties"]
config["variants"]["floored"]["floor"] = -1
try:
    check_config(config, base_dir=".")
    refused = None
except ConfigError as error:
    refused = str(error)
print(json.dumps({
    "code_norm": checked["evaluation"]["metrics"]["code_norm"],
    "floor_minimum": variant["floor"]["minimum"],
    "figures": sorted(schema["properties"]["figures"]["properties"]),
    "refused": refused,
}))
"""


def test_plugin_settings_reach_the_generated_schema(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(_blocks("python")[0])
    config = tiny_config()
    config.update(yaml.safe_load(_blocks("yaml")[0]))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-c", SCHEMA_OF_PLUGIN, "config.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["code_norm"] == {"quantile": 0.9}
    assert found["floor_minimum"] == 0
    assert "code_norm" in found["figures"]
    assert found["refused"] is not None and "variants.floored.floor" in found["refused"]
