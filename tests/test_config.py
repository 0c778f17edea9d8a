import copy
from itertools import product
from pathlib import Path

import pytest
import yaml

from vlmsae.config import check_config
from vlmsae.errors import ConfigError
from vlmsae.runs import runs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults(default_config):
    config = check_config(copy.deepcopy(default_config))
    assert config["evaluation"]["seed"] == 0
    assert config["resources"]["train"]["gpu"] == 1
    # Raw sources embed on a GPU; this config's synthetic stores need none (rules/embed.smk).
    assert config["resources"]["embed"]["gpu"] == 1
    assert config["train"]["grad_clip"] == 1.0
    assert len(runs(config)) == 2 * 2 * 2 * 2


def test_presets_are_valid():
    for preset in sorted((REPO / "presets").glob("*.yaml")):
        check_config(yaml.safe_load(preset.read_text()), base_dir=REPO)


@pytest.mark.parametrize(
    "edit,key,message",
    [
        (lambda c: c.update(lerning_rate=1), "<top level>", "unknown key"),
        (lambda c: c["train"].update(stepz=1), "train", "unknown key"),
        (lambda c: c["variants"]["topk"].update(k=-3), "variants.topk.k", "-3 is less than"),
        (
            lambda c: c["variants"]["topk"].update(type="relux"),
            "variants.topk.type",
            "unknown SAE variant 'relux'",
        ),
        (lambda c: c["variants"]["topk"].update(k=600), "variants.topk.k", "exceeds n_atoms"),
        (lambda c: c.update(seeds="zero"), "seeds", "is not of type"),
        (lambda c: c.update(mixtures=["5:1"]), "mixtures.0", "does not match"),
        (
            lambda c: c["datasets"]["synthetic-iso"].update(source="cocoa"),
            "datasets.synthetic-iso.source",
            "unknown dataset source",
        ),
    ],
)
def test_bad_config_names_the_key(default_config, edit, key, message):
    edit(default_config)
    with pytest.raises(ConfigError) as raised:
        check_config(default_config)
    text = str(raised.value)
    assert text.startswith(f"config key '{key}'") and message in text and "fix:" in text
    assert "\n" not in text


def test_missing_precomputed_file_is_named(default_config, tmp_path):
    default_config["datasets"] = {
        "real": {"source": "precomputed", "precomputed": {"path": "nowhere/f.npy"}}
    }
    with pytest.raises(
        ConfigError, match=r"datasets.real.precomputed.path.*file not found: .*nowhere"
    ):
        check_config(default_config, base_dir=tmp_path)


def test_relative_precomputed_path_is_resolved(default_config, tmp_path):
    (tmp_path / "f.npy").write_bytes(b"")
    default_config["datasets"] = {
        "real": {"source": "precomputed", "precomputed": {"path": "f.npy"}}
    }
    config = check_config(default_config, base_dir=tmp_path)
    assert config["datasets"]["real"]["precomputed"]["path"] == str(tmp_path / "f.npy")
    assert config["datasets"]["real"]["models"] == ["generator"]


def _raw_dataset(source: str, models: list[str]) -> dict:
    return {"source": source, "models": models, source: {"root": "data"}}


@pytest.mark.parametrize(
    "source,models,message",
    [
        ("coco", ["clip-vit-b-99"], "unknown model 'clip-vit-b-99'"),
        ("musicbench", ["clip-vit-b-32"], "'clip-vit-b-32' embeds image but source musicbench"),
        ("coco", ["clap"], "'clap' embeds audio but source coco holds image"),
    ],
)
def test_models_of_raw_datasets_are_checked(default_config, source, models, message):
    default_config["datasets"] = {"real": _raw_dataset(source, models)}
    with pytest.raises(ConfigError) as raised:
        check_config(default_config)
    text = str(raised.value)
    assert message in text and "fix:" in text and "\n" not in text


def test_unknown_model_lists_the_registry(default_config):
    default_config["datasets"] = {"real": _raw_dataset("coco", ["vit"])}
    with pytest.raises(ConfigError, match="clip-vit-b-32.*siglip"):
        check_config(default_config)


def test_config_models_entry_defines_a_new_model(default_config):
    default_config["datasets"] = {"real": _raw_dataset("coco", ["my-clip"])}
    default_config["models"] = {"my-clip": {"base": "clip-vit-b-16", "weights": "random"}}
    config = check_config(default_config)
    assert config["embed"]["batch_size"] == 256 and config["embed"]["precision"] == "auto"


def test_a_variant_listing_several_k_is_one_family_of_runs(default_config):
    default_config["variants"] = {"topk": {"type": "topk", "n_atoms": 64, "k": [4, 8, 16]}}
    config = check_config(default_config)
    assert list(config["variants"]) == ["topk-k4", "topk-k8", "topk-k16"]
    assert {v["family"] for v in config["variants"].values()} == {"topk"}
    assert [v["k"] for v in config["variants"].values()] == [4, 8, 16]
    assert len(runs(config)) == 3 * 2 * 2 * 2


def test_a_variant_listing_n_atoms_and_k_expands_to_their_product(default_config):
    default_config["variants"] = {
        "gsae": {"preset": "gsae", "n_atoms": [256, 512], "k": [16, 32, 64], "group_sparsity": 0.01}
    }
    default_config["mixtures"] = ["1-1"]
    variants = check_config(default_config)["variants"]
    assert list(variants) == [f"gsae-natoms{p}-k{k}" for p, k in product((256, 512), (16, 32, 64))]
    assert {v["family"] for v in variants.values()} == {"gsae"}
    assert [(v["n_atoms"], v["k"]) for v in variants.values()] == list(
        product((256, 512), (16, 32, 64))
    )
    assert {v["group_sparsity"] for v in variants.values()} == {0.01}  # the rest is shared
    assert len(runs(default_config)) == 6 * 2 * 2  # 2 stores, 2 seeds, paired: mixture 1-1


def test_a_list_of_n_atoms_alone_keeps_a_chosen_family(default_config):
    default_config["variants"] = {
        "t": {"type": "topk", "n_atoms": [64, 128], "k": 4, "family": "f"}
    }
    variants = check_config(default_config)["variants"]
    assert list(variants) == ["t-natoms64", "t-natoms128"]
    assert {v["family"] for v in variants.values()} == {"f"}


@pytest.mark.parametrize(
    "variants,key,message",
    [
        (  # one combination breaks the variant's own check: named with its entry
            {"t": {"type": "topk", "n_atoms": [16, 64], "k": [8, 32]}},
            "variants.t.k",
            "k=32 exceeds n_atoms=16 (in the combination t-natoms16-k32)",
        ),
        (
            {"t": {"type": "jumprelu", "k": [8], "target_l0": [4, 8]}},
            "variants.t",
            "lists both k and target_l0",
        ),
        (  # an expanded name that another entry has would silently replace it
            {"t": {"type": "topk", "k": [4, 8]}, "t-k8": {"type": "batchtopk", "k": 8}},
            "variants.t",
            "expand to 't-k8', which is also a variant's name",
        ),
        ({"t": {"type": "topk", "k": 4, "n_atoms": []}}, "variants.t.n_atoms", "non-empty"),
        ({"t": {"type": "topk", "k": 4, "n_atoms": [64, 64]}}, "variants.t.n_atoms", "non-unique"),
        (
            {"t": {"type": "topk", "k": 4, "n_atoms": [64, "a"]}},
            "variants.t.n_atoms.1",
            "'a' is not of type 'integer'",
        ),
    ],
)
def test_a_bad_list_names_the_variant(default_config, variants, key, message):
    default_config["variants"] = variants
    with pytest.raises(ConfigError) as raised:
        check_config(default_config)
    text = str(raised.value)
    assert text.startswith(f"config key '{key}'") and message in text and "fix:" in text


def test_variant_defaults_come_from_the_variant_settings(default_config):
    default_config["variants"] = {"jr": {"type": "jumprelu"}, "m": {"type": "matryoshka", "k": 4}}
    variants = check_config(default_config)["variants"]
    assert variants["jr"]["l0_coefficient"] == 1e-3 and variants["jr"]["n_atoms"] == 512
    assert variants["m"]["prefixes"] is None
    default_config["variants"] = {"m": {"type": "matryoshka", "k": 4, "prefixes": [8, 4, 512]}}
    with pytest.raises(ConfigError, match="variants.m"):
        check_config(default_config)


def test_metric_and_figure_options_are_typed(default_config):
    default_config["evaluation"]["metrics"] = {"gap": {"knn_k": 5}}
    config = check_config(copy.deepcopy(default_config))
    assert config["evaluation"]["metrics"]["gap"] == {
        "gap_test_fraction": 0.3,
        "gap_max_rows": 20000,
        "knn_k": 5,
        "histogram_bins": 50,
        "pca_pairs": 1000,
    }
    assert config["figures"]["modality_scores"] == {"bins": 25}
    default_config["evaluation"]["metrics"] = {"gap": {"knn": 5}}
    with pytest.raises(ConfigError, match="evaluation.metrics.gap"):
        check_config(default_config)


@pytest.mark.parametrize(
    "section,key,suggestion",
    [
        # A key moved into a subsection: found by its name anywhere in the schema.
        (("evaluation",), "energy_top_m", "evaluation.metrics.atom_usage.energy_top_m"),
        # A dataset's source section is under the dataset's own name.
        (
            ("datasets", "synthetic-iso"),
            "labels_path",
            "datasets.synthetic-iso.precomputed.labels_path",
        ),
        # A misspelt key: the closest name of its own section.
        (("evaluation", "metrics", "gap"), "knn", "evaluation.metrics.gap.knn_k"),
    ],
)
def test_an_unknown_key_is_answered_with_the_nearest_existing_path(
    default_config, section, key, suggestion
):
    parent = default_config
    for part in section:
        parent = parent.setdefault(part, {})
    parent[key] = 1
    with pytest.raises(ConfigError) as raised:
        check_config(default_config)
    text = str(raised.value)
    assert text.startswith(f"config key '{'.'.join(section)}': unknown key")
    assert text.endswith(f"fix: did you mean `{suggestion}`?") and "\n" not in text


def test_an_unknown_key_like_no_other_lists_its_sections_keys(default_config):
    default_config["train"]["qqqq"] = 1
    with pytest.raises(ConfigError, match=r"fix: remove it or use one of: .*grad_clip"):
        check_config(default_config)
