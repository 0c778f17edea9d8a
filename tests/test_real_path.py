"""presets/tiny-real-path.yaml run as a user runs it: every raw dataset adapter on a fixture in
its dataset's own layout, and a tiny model of each library loaded from disk like a real
checkpoint, through training, metrics, interventions and tables.

The preset's datasets run in three groups, one class each, which `make test` runs on different
workers (`--dist loadscope`): each group is the preset with only its datasets, a run of its own
(the fixtures are written by each)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake_runs import REPO, snakemake

from vlmsae.config import check_config
from vlmsae.figures import figure_targets
from vlmsae.runs import runs
from vlmsae.stores.embedding_store import EmbeddingStore

pytestmark = pytest.mark.slow

PRESET = yaml.safe_load((REPO / "presets" / "tiny-real-path.yaml").read_text())
# Figures, atom maps and explorers read every store the same way but for its modalities and its
# media: they are drawn for one image store with image files and for the audio store of each
# CLAP library (the tiny config's tests draw them all on synthetic data); figures over every
# run, and those only the real data feed (the probe, the arithmetic), for all.
PRESENTED = {
    ("coco", "tiny-openclip"),
    ("musicbench", "tiny-clap"),
    ("jamendomaxcaps", "tiny-clap-hf"),
}
GENERIC_STORE_FIGURES = (
    "atom_map", "atom_map_energy", "bridge", "classifier_accuracy", "cones", "energy_by_kind",
    "gap_closing", "gap_share", "modality_scores",
)  # fmt: skip
# Every group's tables: its stores, runs, paper tables and gap closing.
TABLES = ("summary", "stores", "linear_structure", "iso_energy", "group_sparse", "gap_closing")


def preset_of(datasets: tuple[str, ...]) -> dict:
    """The preset with only `datasets`."""
    preset = copy.deepcopy(PRESET)
    preset["datasets"] = {name: preset["datasets"][name] for name in datasets}
    return preset


def presentation_targets(preset: dict) -> list[str]:
    config = check_config(copy.deepcopy(preset), base_dir=REPO)
    targets = []
    for path in figure_targets(config, [run.as_dict() for run in runs(config)]):
        name, *store = path.removeprefix("results/figures/").removesuffix(".png").split("/")
        if not store or name not in GENERIC_STORE_FIGURES or tuple(store) in PRESENTED:
            targets.append(path)
    stores = {(d, m) for d, spec in preset["datasets"].items() for m in spec["models"]}
    return targets + [f"results/explorer/{d}/{m}" for d, m in sorted(PRESENTED & stores)]


def run_group(workdir: Path, datasets: tuple[str, ...], tables: tuple[str, ...] = ()) -> dict:
    """Run the group's preset to its tables and presentation targets (each checked to exist),
    check that every store has its run in the summary and that a second run has nothing to do;
    return the preset."""
    preset = preset_of(datasets)
    table_paths = [f"results/tables/{name}.csv" for name in (*TABLES, *tables)]
    targets = [*table_paths, *presentation_targets(preset)]
    result = snakemake(workdir, *targets, config=preset)
    assert result.returncode == 0, result.stderr[-3000:]
    for target in targets:
        assert (workdir / target).exists(), target
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    expected = {(d, m) for d, spec in preset["datasets"].items() for m in spec["models"]}
    assert set(zip(summary["dataset"], summary["model"], strict=True)) == expected
    assert summary["r2"].notna().all() and (summary["l0"] > 0).all()
    again = snakemake(workdir, "-n", *targets, config=preset)
    assert "Nothing to be done" in again.stdout + again.stderr
    return preset


class TestCaptionedImages:
    def test_coco_cc3m_laion_through_every_image_model_family(self, tmp_path):
        """COCO with the four image model families (open_clip, SigLIP, SigLIP2, AIMv2), CC3M's
        webdataset shards and LAION's parquet files."""
        run_group(tmp_path, ("coco", "cc3m", "laion"))
        summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
        assert summary.loc[summary["dataset"] == "coco", "mms_image_text"].notna().any()
        coco = EmbeddingStore(tmp_path / "results/embeddings/coco/tiny-siglip2.zarr")
        assert coco.attrs["provenance"]["root"].endswith("results/fixtures/data/coco")
        assert len(coco.optional("text_caption")) == coco.array("text").shape[0]
        # The fixture's missing image (adapter) and undecodable image (embedding) are both
        # reported. Each image took its 5 captions with it.
        counts = {reason: entry["count"] for reason, entry in coco.attrs["skipped"].items()}
        assert counts == {
            "image file missing": 1,
            "caption of a missing image": 5,
            "truncated": 1,
            "caption of an undecodable image": 5,
        }
        assert coco.attrs["skipped_total"] == 12 and coco.array("image").shape[0] == 11
        log = (tmp_path / "logs/embed/coco/tiny-openclip.log").read_text()
        assert re.search(r"embedded \d+ image items in .* items/s", log)


class TestLabelledImages:
    def test_classes_attributes_and_triplets(self, tmp_path):
        """CIFAR-10/100 and ImageNet (class labels: zero-shot), CelebA (attributes: the probe)
        and FashionIQ (triplets: vector arithmetic)."""
        datasets = ("cifar10", "cifar100", "imagenet", "celeba", "fashioniq")
        run_group(tmp_path, datasets, tables=("probe_concepts", "vector_arithmetic"))
        summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
        labelled = summary[summary["dataset"].isin(["cifar10", "cifar100", "imagenet"])]
        # The dense baseline is store-level (stores.csv); the codes' accuracy is per run.
        stores = pd.read_csv(tmp_path / "results/tables/stores.csv")
        labelled_stores = stores[stores["dataset"].isin(["cifar10", "cifar100", "imagenet"])]
        assert len(labelled_stores) and labelled_stores["zero_shot_top1_dense"].notna().all()
        assert labelled["zero_shot_top1_codes"].notna().all()
        probe = pd.read_csv(tmp_path / "results/tables/probe_concepts.csv")
        assert "celeba" in set(probe["dataset"])
        arithmetic = pd.read_csv(tmp_path / "results/tables/vector_arithmetic.csv")
        assert set(arithmetic["dataset"]) == {"fashioniq"}


class TestAudioAndEmbeddings:
    def test_audio_captions_with_both_clap_libraries_and_precomputed_embeddings(self, tmp_path):
        """MusicBench with laion-clap and transformers' CLAP, JamendoMaxCaps, the audio
        benchmarks of group-sparse Table 2 (GTZAN and NSynth with class prompts, FMACaps
        captions) into its table, and embeddings written by clip-retrieval."""
        benchmarks = ("gtzan", "nsynth", "fmacaps")
        datasets = ("musicbench", "jamendomaxcaps", *benchmarks, "laion-embeddings")
        run_group(tmp_path, datasets, tables=("group_sparse_audio",))
        audio = EmbeddingStore(tmp_path / "results/embeddings/musicbench/tiny-clap.zarr")
        assert audio.modalities == ("audio", "text") and "audio" in audio.root
        assert audio.attrs["model_family"] == "laion_clap" and audio.attrs["normalised"]
        # Audio stores with class prompts: zero-shot from codes, as for images.
        gtzan = EmbeddingStore(tmp_path / "results/embeddings/gtzan/tiny-clap-hf.zarr")
        assert gtzan.modalities == ("audio", "text") and len(gtzan.attrs["class_names"]) == 10
        assert gtzan.optional("class_prompts").shape == (10, 1, 32)
        summary = pd.read_csv(tmp_path / "results/tables/summary.csv").set_index("dataset")
        assert summary.loc[["gtzan", "nsynth"], "zero_shot_top1_codes"].notna().all()
        assert summary.loc[list(benchmarks), "mrr_t2i_codes"].between(0, 1).all()
        table = pd.read_csv(tmp_path / "results/tables/group_sparse_audio.csv")
        assert table["variant"].tolist() == ["dense", "topk"]
        columns = ["GTZAN genres (acc.)", "NSynth instruments (acc.)", "FMACaps retrieval (MRR)"]
        assert table[columns].notna().all().all()
