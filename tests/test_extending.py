"""The README's "Extending" section, run as a user would: its plugin file on the tiny config."""

import dataclasses
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


def test_a_new_topk_hyper_parameter_is_one_settings_field(tmp_path, tiny_store, monkeypatch):
    """A contributor adds a hyper-parameter to TopK by writing one Settings class (and the
    variant that reads it): from a config entry it reaches the model through
    `Variant.from_config`, `sae.build_from_settings` and `train`, and the saved config.json,
    with no edit to any other module."""
    from dataclasses import dataclass

    from vlmsae import sae
    from vlmsae.errors import ConfigError
    from vlmsae.registry_base import setting
    from vlmsae.sae.topk import TopK, TopKSettings
    from vlmsae.training.trainer import TrainSettings, train
    from vlmsae.training.variants import Variant

    # The test's variant is registered on a copy of the registry, gone after the test.
    sae.available()
    monkeypatch.setattr(sae.VARIANTS, "_entries", dict(sae.VARIANTS._entries))

    @dataclass(frozen=True, kw_only=True)
    class ScaledTopKSettings(TopKSettings):
        scale: float = setting(1.0, "factor on every active code", minimum=0)

    @sae.register
    class ScaledTopK(TopK):
        variant = "scaled_topk_test"
        Settings = ScaledTopKSettings

        def encode(self, x, modality=None, atom_mask=None):
            codes = super().encode(x, modality, atom_mask)
            return dataclasses.replace(codes, values=codes.values * self.settings.scale)

    entry = {"type": "scaled_topk_test", "n_atoms": 32, "k": 3, "scale": 0.5}
    variant = Variant.from_config("scaled", entry)
    assert variant.settings.scale == 0.5 and variant.settings.k == 3
    built = sae.build_from_settings(variant.type, tiny_store.dim, variant.settings)
    assert isinstance(built, ScaledTopK) and built.settings.scale == 0.5
    # What TopK's Settings check still holds for the subclass: k ≤ n_atoms.
    with pytest.raises(ConfigError, match=r"variants\.scaled\.k"):
        Variant.from_config("scaled", {**entry, "k": 33})

    settings = TrainSettings(steps=10, batch_size=32, log_every=5, checkpoint_every=10**9)
    model = train(tiny_store, variant, settings, "1-1", 0, tmp_path, progress=False)
    assert model.settings.scale == 0.5
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sae"]["variant"] == "scaled_topk_test" and saved["sae"]["scale"] == 0.5
    assert sae.load(tmp_path).settings == variant.settings


def test_a_new_regulariser_is_one_module(tmp_path, tiny_store, monkeypatch):
    """docs/architecture.md's regulariser module, as written there: from a variant entry it reaches
    the schema, the paired batches, the loss and train_log.csv, and config.json, with no edit to
    any other module; a swept weight is refused since the module brings no sweep."""
    import importlib.util

    from vlmsae.config import full_schema
    from vlmsae.errors import ConfigError
    from vlmsae.training import regularisers
    from vlmsae.training.trainer import TrainSettings, train
    from vlmsae.training.variants import Variant

    # Registered on a copy of the registry, gone after the test.
    regularisers.available()
    monkeypatch.setattr(
        regularisers.REGULARISERS, "_entries", dict(regularisers.REGULARISERS._entries)
    )
    document = (REPO / "docs/architecture.md").read_text()
    module = re.findall(r"```python\n(.*?)```", document, re.S)[0]
    (tmp_path / "code_gap.py").write_text(module)
    spec = importlib.util.spec_from_file_location("code_gap_test", tmp_path / "code_gap.py")
    monkeypatch.setitem(sys.modules, "code_gap_test", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(sys.modules["code_gap_test"])

    variant_schema = full_schema()["properties"]["variants"]["additionalProperties"]
    assert {"code_gap", "code_gap_power"} <= set(variant_schema["properties"])
    entry = {"type": "topk", "n_atoms": 32, "k": 3, "code_gap": 0.5, "code_gap_power": 1.0}
    variant = Variant.from_config("gapped", entry)
    assert variant.regularisers.paired and variant.regularisers.code_gap_power == 1.0
    with pytest.raises(ConfigError, match="code_gap"):
        Variant.from_config("gapped", {**entry, "code_gap": "sweep"})
    settings = TrainSettings(steps=10, batch_size=32, log_every=5, checkpoint_every=10**9)
    train(tiny_store, variant, settings, "1-1", 0, tmp_path / "run", progress=False)
    log = pd.read_csv(tmp_path / "run/train_log.csv")
    # The term is the weighted mean distance between paired codes: positive, and logged.
    assert log["loss_gap"].gt(0).all()
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert saved["training"]["code_gap"] == 0.5 and saved["training"]["code_gap_power"] == 1.0
    assert saved["training"]["paired"] is True
