"""Bad inputs, one table per family: each stops with one line naming the config key or the file,
a non-zero exit, and no output left that looks complete. Damaged outputs (the files family's
other half): tests/test_manifest.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vlmsae.cli import main
from vlmsae.datasets.raw import FileMedia, RawDataset
from vlmsae.embedding import embed_dataset
from vlmsae.errors import InputFileError, VlmsaeError
from vlmsae.stores.build import build_store
from vlmsae.training.trainer import TrainingDiverged, TrainSettings, train
from vlmsae.training.variants import Variant

REPO = Path(__file__).resolve().parent.parent
N, D = 40, 8


def _one_line_exit(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlmsae: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---- config: each edit of config.yaml, the key its message must name --------------------------


def _variant(**variant):
    return lambda c: c.update(variants={"v": variant})


def _dataset(**spec):
    return lambda c: c.update(datasets={"d": {"models": ["m"], **spec}})


def _set(path: str, value):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return edit


CONFIG_CASES = {
    "unknown top-level key": (_set("lerning_rate", 1), "<top level>"),
    "unknown train key": (_set("train.stepz", 1), "train"),
    "negative k": (_variant(type="topk", n_atoms=64, k=-1), "variants.v.k"),
    "unknown variant type": (_variant(type="topkk", n_atoms=64, k=4), "variants.v.type"),
    "k above n_atoms": (_variant(type="topk", n_atoms=64, k=65), "variants.v.k"),
    "no type or preset": (_variant(n_atoms=64, k=4), "variants.v"),
    "unknown preset": (_variant(preset="sae-b", n_atoms=64, k=4), "variants.v"),
    "n_atoms zero": (_variant(type="topk", n_atoms=0, k=4), "variants.v"),
    "matryoshka prefixes past n_atoms": (
        _variant(type="matryoshka", n_atoms=64, k=4, prefixes=[8, 100]),
        "variants.v",
    ),
    "matryoshka prefixes decreasing": (
        _variant(type="matryoshka", n_atoms=64, k=4, prefixes=[32, 8, 64]),
        "variants.v",
    ),
    "mp k above d": (_variant(type="mp", n_atoms=512, k=300), "variants.v.k"),
    "energy_top_m above n_atoms": (
        _set("evaluation.metrics.atom_usage.energy_top_m", [10, 1000]),
        "evaluation.metrics.atom_usage.energy_top_m",
    ),
    "paired variant without mixture 1-1": (
        lambda c: c.update(
            mixtures=["5-1"],
            variants={"v": {"type": "topk", "n_atoms": 64, "k": 4, "alignment": 0.1}},
        ),
        "variants.v",
    ),
    "alignment sweep with another sweep": (
        _variant(type="mp", n_atoms=64, k=4, alignment="sweep", group_sparsity="sweep"),
        "variants.v",
    ),
    "mask sweep without group sparsity": (
        _variant(type="topk", n_atoms=64, k=4, mask_probability="sweep"),
        "variants.v.mask_probability",
    ),
    "frontier over two of k and target_l0": (
        _variant(type="topk", n_atoms=64, k=[4, 8], target_l0=[2, 3]),
        "variants.v",
    ),
    "train.device cuda with no GPU asked": (
        lambda c: (_set("train.device", "cuda")(c), _set("resources.train.gpu", 0)(c)),
        "train.device",
    ),
    "embed.device cuda with no GPU asked": (
        lambda c: (_set("embed.device", "cuda")(c), _set("resources.embed.gpu", 0)(c)),
        "embed.device",
    ),
    "bf16 on the CPU": (
        lambda c: (_set("embed.precision", "bf16")(c), _set("embed.device", "cpu")(c)),
        "embed.precision",
    ),
    "unknown precision": (_set("embed.precision", "fp8"), "embed.precision"),
    "mixture with a colon": (_set("mixtures", ["5:1"]), "mixtures"),
    "mixture zero": (_set("mixtures", ["0-1"]), "mixtures"),
    "negative lr": (_set("train.lr", -1.0), "train.lr"),
    "steps zero": (_set("train.steps", 0), "train.steps"),
    "batch size a string": (_set("train.batch_size", "big"), "train.batch_size"),
    "seeds not a list": (_set("seeds", 3), "seeds"),
    "plugins not a list": (_set("plugins", "myplugin"), "plugins"),
    "unknown source": (_dataset(source="imagenett", imagenett={}), "datasets.d"),
    "source without its section": (_dataset(source="synthetic"), "datasets.d"),
    "synthetic d one": (
        _dataset(source="synthetic", synthetic={"d": 1}),
        "datasets.d.synthetic",
    ),
    "mms_reference not a model": (
        _dataset(source="synthetic", synthetic={}, mms_reference="other"),
        "datasets.d.mms_reference",
    ),
    "val_fraction one": (
        _dataset(source="synthetic", synthetic={}, val_fraction=1.0),
        "datasets.d.val_fraction",
    ),
    "precomputed file missing": (
        _dataset(source="precomputed", precomputed={"path": "/nonexistent/f.npy"}),
        "datasets.d.precomputed.path",
    ),
    "precomputed without files": (
        _dataset(source="precomputed", precomputed={}),
        "datasets.d.precomputed",
    ),
    "class prompts without labels": (
        _dataset(
            source="precomputed",
            precomputed={"path": str(REPO / "config.yaml"), "class_prompts_path": str(REPO)},
        ),
        "datasets.d.precomputed",
    ),
    "eval_fraction zero": (
        _dataset(source="synthetic", synthetic={"eval_fraction": 0.0}),
        "datasets.d.synthetic",
    ),
    "image model for audio data": (
        _dataset(source="musicbench", musicbench={"root": str(REPO)}, models=["clip-vit-b-32"]),
        "datasets.d.models",
    ),
}


@pytest.fixture(scope="module")
def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_is_one_line_naming_the_key(tmp_path, capsys, default_config, case):
    edit, key = CONFIG_CASES[case]
    config = copy.deepcopy(default_config)
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    err = _one_line_exit(capsys, ["runs", "--configfile", str(path)])
    assert f"config key '{key}" in err and "fix:" in err, err


# ---- data: precomputed inputs that must not become a store ------------------------------------


def _rows(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _with(rows: np.ndarray, row: int, value) -> np.ndarray:
    rows = rows.copy()
    rows[row] = value
    return rows


def _pair_files(folder: Path, image, text) -> dict:
    np.save(folder / "image.npy", image)
    np.save(folder / "text.npy", text)
    return {"image_path": str(folder / "image.npy"), "text_path": str(folder / "text.npy")}


def _labelled(folder: Path, labels, prompts=None) -> dict:
    section = {**_pair_files(folder, _rows(0), _rows(1)), "labels_path": str(folder / "l.npy")}
    np.save(folder / "l.npy", labels)
    if prompts is not None:
        np.save(folder / "p.npy", prompts)
        section["class_prompts_path"] = str(folder / "p.npy")
    return section


def _pt_file(folder: Path) -> dict:
    torch.save(torch.from_numpy(_rows(0)), folder / "image.pt")
    return {**_pair_files(folder, _rows(0), _rows(1)), "image_path": str(folder / "image.pt")}


def _npz_as_array(folder: Path) -> dict:
    np.savez(folder / "image.npz", image=_rows(0))
    return {**_pair_files(folder, _rows(0), _rows(1)), "image_path": str(folder / "image.npz")}


def _truncated_npy(folder: Path) -> dict:
    section = _pair_files(folder, _rows(0), _rows(1))
    data = Path(section["image_path"]).read_bytes()
    Path(section["image_path"]).write_bytes(data[: len(data) // 2])
    return section


def _not_numpy(folder: Path) -> dict:
    section = _pair_files(folder, _rows(0), _rows(1))
    Path(section["text_path"]).write_text("image,text\n1,2\n")
    return section


def _stacked(folder: Path, array) -> dict:
    np.save(folder / "f.npy", array)
    return {"path": str(folder / "f.npy")}


def _npz_without_key(folder: Path) -> dict:
    np.savez(folder / "f.npz", image=_rows(0), txt=_rows(1))
    return {"path": str(folder / "f.npz")}


# name → (writes the files, returns the precomputed section; what the message must name)
DATA_CASES = {
    "NaN in an image row": (lambda f: _pair_files(f, _with(_rows(0), 3, np.nan), _rows(1)), "npy"),
    "Inf in a text row": (lambda f: _pair_files(f, _rows(0), _with(_rows(1), 5, np.inf)), "npy"),
    "zero image row": (lambda f: _pair_files(f, _with(_rows(0), 7, 0.0), _rows(1)), "npy"),
    "zero text row": (lambda f: _pair_files(f, _rows(0), _with(_rows(1), 0, 0.0)), "npy"),
    "duplicate pairs": (
        lambda f: _pair_files(f, _with(_rows(0), 9, _rows(0)[2]), _with(_rows(1), 9, _rows(1)[2])),
        "npy",
    ),
    "complex rows": (lambda f: _pair_files(f, _rows(0) + 1j, _rows(1) + 1j), "image.npy"),
    "string rows": (lambda f: _pair_files(f, _rows(0).astype(str), _rows(1)), "image.npy"),
    "1-D rows": (lambda f: _pair_files(f, _rows(0)[:, 0], _rows(1)[:, 0]), "image.npy"),
    "d = 1": (lambda f: _pair_files(f, _rows(0, d=1), _rows(1, d=1)), "image.npy"),
    "no rows": (lambda f: _pair_files(f, _rows(0, n=0), _rows(1, n=0)), "image.npy"),
    "a single pair (empty split)": (lambda f: _pair_files(f, _rows(0, n=1), _rows(1, n=1)), "npy"),
    # 3 pairs: an eval split of one pair, on which R² would be "undefined" rather than refused.
    "three pairs (one eval pair)": (
        lambda f: _pair_files(f, _rows(0, n=3), _rows(1, n=3)),
        "split has 1 pair",
    ),
    "row counts differ": (lambda f: _pair_files(f, _rows(0), _rows(1, n=N - 1)), "npy"),
    "dimensions differ": (lambda f: _pair_files(f, _rows(0), _rows(1, d=D + 1)), "npy"),
    ".pt file as image_path": (_pt_file, "image.pt"),
    ".npz file as image_path": (_npz_as_array, "image.npz"),
    "truncated .npy": (_truncated_npy, "image.npy"),
    "a CSV named .npy": (_not_numpy, "text.npy"),
    "stacked array of three": (lambda f: _stacked(f, np.stack([_rows(0)] * 3)), "f.npy"),
    "stacked complex array": (lambda f: _stacked(f, np.stack([_rows(0), _rows(1)]) * 1j), "f.npy"),
    ".npz without the text key": (_npz_without_key, "f.npz"),
    "float labels": (lambda f: _labelled(f, np.arange(N) % 3 + 0.5), "l.npy"),
    "negative label": (lambda f: _labelled(f, np.arange(N) - 1), "l.npy"),
    "label past the class prompts": (
        lambda f: _labelled(f, np.arange(N) % 4, _rows(2, n=3 * 2).reshape(3, 2, D)),
        "l.npy",
    ),
    "labels of the wrong length": (lambda f: _labelled(f, np.arange(N + 1) % 3), "l.npy"),
    "class prompts of the wrong shape": (
        lambda f: _labelled(f, np.arange(N) % 3, _rows(2, n=3)),
        "p.npy",
    ),
    "class prompts with NaN": (
        lambda f: _labelled(f, np.arange(N) % 3, np.full((3, 2, D), np.nan, np.float32)),
        "p.npy",
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_one_line_naming_the_file_and_leaves_no_store(tmp_path, case):
    write, named = DATA_CASES[case]
    section = write(tmp_path)
    spec = {"source": "precomputed", "precomputed": section}
    path = tmp_path / "store.zarr"
    with pytest.raises(VlmsaeError) as error:
        build_store("d", "m", spec, path)
    message = str(error.value)
    assert "\n" not in message and named in message and "fix:" in message, message
    assert not path.exists() and not (tmp_path / "store.zarr.partial").exists()


def test_bad_pairs_are_dropped_and_counted_when_asked(tmp_path):
    image, text = _with(_rows(0), 3, np.nan), _with(_rows(1), 8, 0.0)
    image[9], text[9] = image[2], text[2]
    section = {**_pair_files(tmp_path, image, text), "drop_bad_pairs": True}
    path = build_store("d", "m", {"source": "precomputed", "precomputed": section}, tmp_path / "s")
    from vlmsae.stores.embedding_store import EmbeddingStore

    store = EmbeddingStore(path, verify=True)
    assert len(store.rows("image")) == N - 3 and store.attrs["skipped_total"] == 3
    assert store.attrs["skipped"]["repeat of an earlier pair"]["examples"] == ["row 9"]


def _raw(folder: Path, **fields) -> RawDataset:
    n = 6
    return RawDataset(
        modality="image",
        media=FileMedia([str(folder / f"{i}.jpg") for i in range(n)]),
        texts=[f"caption {i}" for i in range(n)],
        pairs=np.stack([np.arange(n)] * 2, axis=1),
        media_split=np.zeros(n, np.int8),
        attrs={"root": str(folder)},
        **fields,
    )


RAW_CASES = {
    "label past the class names": {"label": np.arange(6), "class_names": ["a", "b"]},
    "float labels": {"label": np.arange(6) * 0.5},
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_bad_labels_of_a_raw_dataset_stop_before_embedding(tmp_path, case):
    with pytest.raises(InputFileError, match=str(tmp_path)) as error:
        embed_dataset(_raw(tmp_path, **RAW_CASES[case]), None, tmp_path / "s.zarr", None, {})
    assert "\n" not in str(error.value) and not (tmp_path / "s.zarr.partial").exists()


def test_duplicate_coco_image_ids_are_refused(tmp_path):
    from vlmsae.datasets import read_raw, source_settings
    from vlmsae.fixtures.image_datasets import write_coco

    section = write_coco(tmp_path / "coco", n_train=3, n_val=2, captions_per_image=1)
    annotations = tmp_path / "coco" / "annotations" / "captions_train2017.json"
    data = json.loads(annotations.read_text())
    data["images"][1]["id"] = data["images"][0]["id"]
    annotations.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match=r"captions_train2017.json: image id \d+ is listed 2"):
        read_raw("coco", source_settings("coco", section, "datasets.d.coco"))


def test_a_word_file_that_is_not_utf8_is_one_line(tmp_path):
    from vlmsae.interventions.vocabulary import read_word_list

    path = tmp_path / "words.txt"
    path.write_bytes(b"red\nblue\n" + "bleu\nvert\n".encode("latin-1") + b"gr\xfcn\n")
    with pytest.raises(InputFileError, match=r"words\.txt: line 5 is not UTF-8") as error:
        read_word_list(path)
    assert "\n" not in str(error.value) and "fix: save it as UTF-8" in str(error.value)


def test_a_file_where_the_results_folders_go_is_one_line(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "embeddings").write_text("")
    store = tmp_path / "results" / "embeddings" / "d" / "m.zarr"
    section = _pair_files(tmp_path, _rows(0), _rows(1))
    with pytest.raises(InputFileError, match=r"results/embeddings: a file where a folder") as error:
        build_store("d", "m", {"source": "precomputed", "precomputed": section}, store)
    assert "\n" not in str(error.value) and "fix: move or delete it" in str(error.value)
    # What the Snakefile checks before any job runs (Snakemake itself would stop with a
    # traceback while creating the job's output folder).
    from vlmsae.errors import check_output_folders

    with pytest.raises(InputFileError, match=r"results/embeddings: a file where a folder"):
        check_output_folders([str(store), str(tmp_path / "logs" / "embed" / "d" / "m.log")])
    check_output_folders([str(tmp_path / "results" / "sae" / "d" / "m" / "sae.safetensors")])


# ---- training: divergence stops the run and writes no weights -------------------------------


def test_a_diverging_run_stops_in_one_line_and_writes_no_weights(tmp_path, tiny_store):
    settings = TrainSettings(steps=200, batch_size=64, lr=1e6, log_every=20, warmup_steps=1)
    with pytest.raises(TrainingDiverged) as error:
        train(
            tiny_store,
            Variant.from_config("v", {"type": "topk", "n_atoms": 32, "k": 4}),
            settings,
            "1-1",
            0,
            tmp_path,
        )
    assert "\n" not in str(error.value) and "train.lr" in str(error.value)
    assert not (tmp_path / "sae.safetensors").exists()
    assert not (tmp_path / "manifest.json").exists()


def test_training_on_a_damaged_store_writes_no_weights(tmp_path):
    from vlmsae.errors import DamagedOutputError
    from vlmsae.stores.embedding_store import EmbeddingStore

    section = _pair_files(tmp_path, _rows(0, n=200), _rows(1, n=200))
    path = build_store("d", "m", {"source": "precomputed", "precomputed": section}, tmp_path / "s")
    (path / "text" / "c" / "0" / "0").unlink()  # reads back as zeros
    settings = TrainSettings(steps=20, batch_size=32, log_every=10, checkpoint_every=10)
    with pytest.raises(DamagedOutputError, match=r"s/text: chunk 0 .*--forcerun embed"):
        train(
            EmbeddingStore(path),
            Variant.from_config("v", {"type": "topk", "n_atoms": 16, "k": 2}),
            settings,
            "1-1",
            0,
            tmp_path / "run",
            verify_store=True,
        )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # no weights, no checkpoint


# ---- CLI: files and arguments ---------------------------------------------------------------


def _results(tmp_path: Path) -> Path:
    """A results root holding one run whose summary.json and atoms.parquet are truncated and
    whose SAE folder has no weights."""
    run = "d/m/topk/1-1/seed0"
    metrics = tmp_path / "results" / "metrics" / run
    metrics.mkdir(parents=True)
    (metrics / "summary.json").write_text('{"r2": 0.')
    (metrics / "atoms.parquet").write_bytes(b"PAR1\x00\x00")
    (tmp_path / "results" / "sae" / run).mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "blank.yaml").write_text("")
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "results"


RUN = "d/m/topk/1-1/seed0"
CLI_CASES = {
    "missing config": (["runs", "--configfile", "{tmp}/nope.yaml"], "nope.yaml"),
    "config not YAML": (["runs", "--configfile", "{tmp}/bad.yaml"], "bad.yaml"),
    "config a list": (["runs", "--configfile", "{tmp}/list.yaml"], "list.yaml"),
    "config empty": (["runs", "--configfile", "{tmp}/blank.yaml"], "blank.yaml"),
    "check-store: a folder that is no store": (["check-store", "{tmp}/empty"], "empty"),
    "check-store: missing path": (["check-store", "{tmp}/none.zarr"], "none.zarr"),
    "check-store: a file": (["check-store", "{tmp}/file.txt"], "file.txt"),
    "verify: missing path": (["verify", "{tmp}/none.zarr"], "none.zarr"),
    "verify: a folder without manifest": (["verify", "{tmp}/empty"], "empty"),
    "calibrate-synthetic: no store": (["calibrate-synthetic", "{tmp}/empty"], "empty"),
    "summary: truncated summary.json": (["summary", RUN, "--results", "{res}"], "summary.json"),
    "summary: missing run": (["summary", "d/m/relu/1-1/seed0", "--results", "{res}"], "summary"),
    "summary: not a run name": (["summary", "d/m/topk", "--results", "{res}"], "d/m/topk"),
    "compare: no weights": (["compare", RUN, RUN, "--results", "{res}"], "summary.json"),
    "top-atoms: truncated atoms.parquet": (["top-atoms", RUN, "--results", "{res}"], "atoms"),
    "export: no weights": (
        ["export", RUN, "--format", "saelens", "--out", "{tmp}/x", "--results", "{res}"],
        "seed0",
    ),
    "verify: a run without manifest": (["verify", RUN, "--results", "{res}"], "seed0"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_cli_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    results = _results(tmp_path)
    argv, named = CLI_CASES[case]
    argv = [arg.format(tmp=tmp_path, res=results) for arg in argv]
    err = _one_line_exit(capsys, argv)
    assert named in err and "fix:" in err, err
