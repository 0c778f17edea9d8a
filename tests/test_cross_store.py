"""SAEs trained on one dataset, scored on another's store (`datasets.<name>.sae_from`): the
protocol of group-sparse Table 2, where each SAE is trained once on JamendoMaxCaps and measured
on GTZAN, NSynth and FMACaps."""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest
import yaml
from snakemake_runs import dry_run_jobs, snakemake, tiny_config

from vlmsae import sae
from vlmsae.cli import main
from vlmsae.config import check_config
from vlmsae.errors import ConfigError, InputFileError
from vlmsae.metrics.evaluate import EvalSettings, evaluate_run
from vlmsae.runs import runs
from vlmsae.stores.embedding_store import EmbeddingStore

SOURCE, TARGET = "tiny", "bench"
RUN = "generator/topk/1-1/seed0"


def cross_config() -> dict:
    """The tiny config cut to one run per store, with a second synthetic dataset (other atoms,
    fewer pairs, same d) that scores the first one's SAE."""
    config = tiny_config()
    config["variants"] = {"topk": config["variants"]["topk"]}
    config["mixtures"] = ["1-1"]
    config["train"].update(steps=100, checkpoint_every=1000)
    target = copy.deepcopy(config["datasets"][SOURCE])
    target["synthetic"].update(seed=1, n_pairs=300)
    config["datasets"][TARGET] = {**target, "sae_from": SOURCE}
    return config


def config_error(config: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    return caught.value


def test_the_target_runs_score_the_source_runs_weights():
    config = check_config(cross_config())
    by_dataset = {run.dataset: run for run in runs(config)}
    assert by_dataset[SOURCE].trained_on == SOURCE and by_dataset[SOURCE].trains
    target = by_dataset[TARGET]
    assert target.trained_on == SOURCE and not target.trains
    # Results keep the target's name; the weights are the source's run of the same keys.
    assert target.path == f"{TARGET}/{RUN}" and target.sae_path == f"{SOURCE}/{RUN}"
    assert target.as_dict()["dataset"] == TARGET


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda c: c["datasets"][TARGET].update(sae_from="nope"), f"datasets.{TARGET}.sae_from",
         "'nope' is not a dataset of this config; fix: name one of: tiny"),
        (lambda c: c["datasets"][TARGET].update(sae_from=TARGET), f"datasets.{TARGET}.sae_from",
         "names the dataset itself"),
        (lambda c: c["datasets"][TARGET].update(models=["other"]), f"datasets.{TARGET}.models",
         "'other' is not a model of 'tiny' (its sae_from)"),
        (lambda c: c["datasets"][TARGET]["synthetic"].update(d=8), f"datasets.{TARGET}.sae_from",
         "d=8 here, d=16 in 'tiny'"),
    ],
    ids=["unknown", "itself", "model-not-shared", "other-d"],
)  # fmt: skip
def test_a_bad_source_is_one_line_naming_the_key(edit, key, words):
    config = cross_config()
    edit(config)
    error = config_error(config)
    assert error.key == key and words in str(error) and "\n" not in str(error)


def test_a_chain_of_sources_is_refused():
    """x → bench → tiny: bench trains no SAE, so x must name tiny itself."""
    config = cross_config()
    config["datasets"]["x"] = {**copy.deepcopy(config["datasets"][TARGET]), "sae_from": TARGET}
    error = config_error(config)
    assert error.key == "datasets.x.sae_from"
    assert f"'{TARGET}' trains no SAEs: it scores those of '{SOURCE}'" in str(error)
    assert f"remove datasets.{TARGET}.sae_from" in error.fix


def test_vlmsae_runs_names_the_sae_a_run_scores(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cross_config()))
    assert main(["runs", "--configfile", str(path), "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{SOURCE}/{RUN}\tpending\t-" in lines
    assert f"{TARGET}/{RUN}\tpending\t-\tsae: {SOURCE}/{RUN}" in lines


def test_an_sae_of_another_dimension_is_one_line_naming_the_store(tiny_store):
    model = sae.build("topk", 8, 16, k=2)
    with pytest.raises(InputFileError, match=r"tiny\.zarr: its rows have d=32 but the SAE has d=8"):
        evaluate_run(model, tiny_store, EvalSettings(max_pairs=20))


def metrics_inputs(dry_run: str, dataset: str) -> list[str]:
    """The input files of the metrics job of `dataset` in a dry run's listing."""
    jobs = re.findall(r"^rule metrics:\n    input: (.*)\n(?:    .*\n)*?    wildcards: (.*)$",
                      dry_run, re.M)  # fmt: skip
    [inputs] = [found for found, wildcards in jobs if wildcards.startswith(f"dataset={dataset},")]
    return inputs.split(", ")


WEIGHTS = f"results/sae/{SOURCE}/{RUN}/sae.safetensors"
TARGET_STORE = f"results/embeddings/{TARGET}/generator.zarr"
TRAIN_SOURCE = f"dataset={SOURCE}, model=generator, variant=topk, mixture=1-1, seed=0"


def test_the_dag_trains_the_source_only_and_measures_the_target_with_its_weights(tmp_path):
    planned = snakemake(tmp_path, "-n", "results/tables/summary.csv", config=cross_config())
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert [wildcards for rule, wildcards in dry_run_jobs(planned) if rule == "train"] == [
        TRAIN_SOURCE
    ]
    assert {WEIGHTS, TARGET_STORE} <= set(metrics_inputs(planned.stdout, TARGET))


@pytest.mark.slow
def test_the_target_scores_are_the_source_sae_on_the_target_rows(tmp_path):
    """Run to summary.csv: no SAE of the target is written; its metrics are those of the
    source's SAE on the target's eval rows (recomputed here through the package), the tables
    name the SAE each run scored, and a new source SAE re-runs the target's metrics."""
    done = snakemake(tmp_path, "results/tables/summary.csv", config=cross_config())
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "results/sae" / TARGET).exists()
    for table in ("summary", "runs"):
        rows = pd.read_csv(tmp_path / f"results/tables/{table}.csv").set_index("dataset")
        assert rows["trained_on"].to_dict() == {SOURCE: SOURCE, TARGET: SOURCE}, table

    # As rule metrics measures: the evaluation settings but the across-run ones (common.smk).
    evaluation = check_config(cross_config())["evaluation"]
    settings = EvalSettings(
        **{k: v for k, v in evaluation.items() if k not in ("stability_top_m", "health")}
    )
    store = EmbeddingStore(tmp_path / TARGET_STORE)
    model = sae.load((tmp_path / WEIGHTS).parent)
    _, direct, _ = evaluate_run(model, store, settings)
    written = json.loads((tmp_path / f"results/metrics/{TARGET}/{RUN}/summary.json").read_text())
    # Every eval pair of the target (60, under max_pairs), not the source's 100 of 120.
    assert written["eval_pairs"] == direct["eval_pairs"] == len(store.split_pairs("eval"))
    for key in ("r2", "mse", "r2_image", "r2_text", "energy_top5_share"):
        assert written[key] == pytest.approx(direct[key], rel=1e-5), key
    source = json.loads((tmp_path / f"results/metrics/{SOURCE}/{RUN}/summary.json").read_text())
    assert written["r2"] != pytest.approx(source["r2"], rel=1e-3)

    retrained = cross_config()
    retrained["variants"]["topk"]["k"] = 4
    again = snakemake(tmp_path, "-n", "results/tables/summary.csv", config=retrained)
    jobs = dry_run_jobs(again)
    assert [wildcards for rule, wildcards in jobs if rule == "train"] == [TRAIN_SOURCE]
    measured = {wildcards.split(",")[0] for rule, wildcards in jobs if rule == "metrics"}
    assert measured == {f"dataset={SOURCE}", f"dataset={TARGET}"}
