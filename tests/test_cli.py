import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from vlmsae import cli, sae
from vlmsae.cli import main, resolve_run
from vlmsae.metrics.evaluate import encode
from vlmsae.runs import Run
from vlmsae.stores.embedding_store import EVAL, TRAIN, write_store
from vlmsae.stores.manifest import write_folder_manifest

REPO = Path(__file__).resolve().parent.parent
RUN = "toy/enc/topk/1-1/seed0"
OTHER_RUN = "toy/enc/topk/1-1/seed1"
N_PAIRS, D, N_ATOMS = 60, 8, 6
SUMMARY = {"n_atoms": N_ATOMS, "eval_pairs": 30, "r2": 0.9, "l0": 2.0, "mms_image_text": 0.4}


def write_toy_store(path: Path, captions: bool) -> Path:
    """N_PAIRS random pairs, every other one in eval; captions `caption <row>` when asked."""
    rng = np.random.default_rng(0)
    split = np.where(np.arange(N_PAIRS) % 2 == 0, EVAL, TRAIN).astype(np.int8)
    extra = {"text_caption": np.array([f"caption {i}" for i in range(N_PAIRS)])} if captions else {}
    return write_store(
        path,
        image=rng.normal(size=(N_PAIRS, D)).astype(np.float32),
        text=rng.normal(size=(N_PAIRS, D)).astype(np.float32),
        pairs=np.stack([np.arange(N_PAIRS)] * 2, axis=1),
        image_split=split,
        text_split=split,
        attrs={"dataset": "toy", "model": "enc"},
        extra=extra,
    )


def write_run(
    root: Path, run: str, permutation: np.ndarray, summary: dict
) -> sae.SparseAutoencoder:
    """An untrained TopK SAE whose decoder rows are a permutation of one fixed dictionary, its
    summary.json and an atoms.parquet whose energy ranks the atoms 5, 4, ..., 0."""
    torch.manual_seed(0)
    model = sae.build("topk", D, N_ATOMS, k=2)
    with torch.no_grad():
        model.W_dec.copy_(model.W_dec[torch.as_tensor(permutation)])
    sae.save(model, root / "sae" / run)
    metrics = root / "metrics" / run
    metrics.mkdir(parents=True)
    (metrics / "summary.json").write_text(json.dumps(summary))
    atoms = pd.DataFrame(
        {
            "atom": np.arange(N_ATOMS),
            "atom_kind": ["bimodal", "image", "text", "bimodal", "dead", "text"],
            "energy": np.arange(N_ATOMS) / 10,
            "frequency_image": [0.5, 0.1, 0.1, 0.1, 0.0, 0.1],
            "frequency_text": [0.5, 0.1, 0.1, 0.1, 0.0, 0.2],
        }
    )
    atoms.to_parquet(metrics / "atoms.parquet")
    return model


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    write_toy_store(root / "embeddings" / "toy" / "enc.zarr", captions=True)
    write_run(root, RUN, np.arange(N_ATOMS), SUMMARY)
    write_run(root, OTHER_RUN, np.arange(N_ATOMS)[::-1].copy(), {**SUMMARY, "r2": 0.8})
    return root


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vlmsae: ") and err.count("\n") == 0
    return err


def test_importing_the_cli_imports_no_heavy_library():
    # `vlmsae --help` stays fast only while building the parser imports none of them.
    code = (
        "import sys; from vlmsae.cli import _parser; _parser().format_help(); "
        "print(' '.join(m for m in ('torch', 'pandas', 'numpy', 'zarr', 'snakemake', 'yaml') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    "given, root",
    [
        (RUN, "results"),
        (f"results/metrics/{RUN}", "results"),
        (f"/data/out/sae/{RUN}", "/data/out"),
        (f"metrics/{RUN}", "."),
    ],
)
def test_a_run_is_resolved_from_each_of_its_forms(given, root):
    folders = resolve_run(given, Path("results"))
    assert folders.run == RUN and folders.root == Path(root)
    assert folders.summary == Path(root, "metrics", RUN, "summary.json")
    assert folders.store == Path(root, "embeddings", "toy", "enc.zarr")


def test_a_file_of_a_run_folder_names_the_run(results):
    folders = resolve_run(str(results / "metrics" / RUN / "summary.json"), Path("elsewhere"))
    assert folders.run == RUN and folders.root == results


def test_run_paths_of_the_config_resolve():
    run = Run("coco", "clip-vit-b-32", "topk", "5-1", 3)
    assert resolve_run(run.path, Path("results")).run == run.path


def test_a_string_that_is_no_run_is_one_line(capsys):
    assert "names no run" in one_line_error(capsys, ["summary", "topk/seed0"])


def test_runs_lists_the_config_runs_done_or_pending_and_their_health(tmp_path, capsys):
    config = REPO / "tests" / "tiny_config.yaml"
    metrics = tmp_path / "metrics" / "tiny/generator"
    flags = "r2_text -2.67 < 0; dead_atoms 160/256 = 62% > 50%"
    for run, summary in (
        ("topk/1-1/seed0", {"health": "ok"}),
        ("topk/5-1/seed0", {"health": flags}),
        ("batchtopk/1-1/seed0", {}),  # metrics written before the health checks
    ):
        (metrics / run).mkdir(parents=True)
        (metrics / run / "summary.json").write_text(json.dumps(summary))
    assert main(["runs", "--configfile", str(config), "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert "tiny/generator/topk/1-1/seed0\tdone\tok" in lines
    assert f"tiny/generator/topk/5-1/seed0\tdone\t{flags}" in lines
    assert "tiny/generator/batchtopk/1-1/seed0\tdone\t-" in lines
    assert "tiny/generator/batchtopk/5-1/seed0\tpending\t-" in lines


def test_missing_config_is_one_line(tmp_path, capsys):
    argv = ["runs", "--configfile", str(tmp_path / "nope.yaml")]
    assert "config file not found" in one_line_error(capsys, argv)


@pytest.mark.parametrize("text", ["datasets: [unclosed", "- a list\n- not a mapping\n"])
def test_a_config_that_is_no_yaml_mapping_is_one_line(tmp_path, capsys, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert str(path) in one_line_error(capsys, ["runs", "--configfile", str(path)])


def test_a_bad_config_key_is_one_line(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    config = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())
    path.write_text(yaml.safe_dump({**config, "seeds": "oops"}))
    assert "config key 'seeds'" in one_line_error(capsys, ["runs", "--configfile", str(path)])


def test_summary_is_grouped_by_metric_family(results, capsys):
    assert main(["summary", RUN, "--results", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [line for line in lines if line.startswith("[")]
    assert headers == ["[settings]", "[reconstruction]", "[sparsity and dead atoms]", "[MMS]"]
    assert lines[lines.index("[reconstruction]") + 1].split() == ["r2", "0.9"]


def test_summary_of_missing_run(tmp_path, capsys):
    err = one_line_error(capsys, ["summary", RUN, "--results", str(tmp_path)])
    assert "summary.json: not found" in err and "snakemake" in err


def test_truncated_summary_is_one_line(results, capsys):
    path = results / "metrics" / RUN / "summary.json"
    path.write_text(path.read_text()[:10])
    assert "not valid JSON" in one_line_error(capsys, ["summary", str(path.parent)])


def test_unexpected_errors_keep_their_traceback(results, monkeypatch):
    def broken(path):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "read_json", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["summary", RUN, "--results", str(results)])


def test_compare_puts_summaries_side_by_side_and_matches_atoms(results, capsys):
    assert main(["compare", RUN, OTHER_RUN, "--results", str(results), "-n", "2"]) == 0
    out = capsys.readouterr().out
    r2 = next(line for line in out.splitlines() if line.split()[:1] == ["r2"])
    assert r2.split() == ["r2", "0.9", "0.8", "-0.1"]
    # The second decoder is the first with its rows reversed: every atom finds itself.
    assert "mean matched cosine 1.0000 over 6 pairs" in out
    pairs = out.split("top 2 matched pairs by cosine:\n")[1].splitlines()
    assert pairs[0].split()[:2] == ["atom_a", "atom_b"] and len(pairs) == 3
    for line in pairs[1:]:
        atom_a, atom_b = map(int, line.split()[:2])
        assert atom_a + atom_b == N_ATOMS - 1


def test_top_atoms_ranks_by_energy_with_captions(results, capsys):
    argv = ["top-atoms", RUN, "--results", str(results), "-n", "2", "--captions", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    ranks = [line for line in out if line.startswith("#")]
    assert ranks[0].startswith("#1 atom 5 (text)  energy 0.5") and ranks[1].startswith("#2 atom 4")
    assert any(line.strip().split()[-2] == "caption" for line in out if "text row" in line)


def test_top_atoms_by_frequency(results, capsys):
    assert main(["top-atoms", RUN, "--results", str(results), "--by", "frequency", "-n", "1"]) == 0
    assert capsys.readouterr().out.startswith("#1 atom 0 (bimodal)  energy 0  frequency 0.5")


def test_top_text_rows_are_the_largest_codes_of_the_eval_captions(tmp_path, monkeypatch):
    store = cli.open_store(write_toy_store(tmp_path / "plain.zarr", captions=False))
    model = write_run(tmp_path, RUN, np.arange(N_ATOMS), SUMMARY)
    monkeypatch.setattr(cli, "ENCODE_ROWS", 7)  # several chunks, so the running top is merged
    atoms = np.array([3, 0, 5])
    rows, values = cli.top_text_rows(model, store, atoms, 4)

    eval_rows = store.split_rows("text", "eval")
    codes = encode(model, store.rows("text", eval_rows), 1000, 1)[0][:, atoms].toarray()
    expected = np.sort(codes, axis=0)[::-1][:4]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    picked = codes[np.searchsorted(eval_rows, rows), np.arange(len(atoms))]
    np.testing.assert_allclose(picked, values, rtol=1e-6)
    assert cli._captions(store, rows) == {}


def test_verify_reports_a_run_folder_without_a_manifest(results, capsys):
    # The fixture's metrics folders have no manifest.json (the metrics job was interrupted, or
    # an older vlmsae wrote them): verify names one instead of skipping it.
    err = one_line_error(capsys, ["verify", str(results)])
    assert f"metrics/{RUN}: no manifest.json" in err and "--forcerun metrics" in err
    for run in (RUN, OTHER_RUN):
        folder = results / "metrics" / run
        write_folder_manifest(folder, sorted(p.name for p in folder.iterdir()))
    assert main(["verify", str(results)]) == 0
    assert capsys.readouterr().out.count(": ok, ") == 5  # the store and four run folders


def test_check_store_describes_it(tiny_store, capsys):
    assert main(["check-store", str(tiny_store.path)]) == 0
    out = capsys.readouterr().out
    assert "image\t2000 rows\t1440 train\t400 eval\t160 val" in out and "truth\tyes" in out
    assert "pairs\t2000\t1440 train\t400 eval\t160 val" in out and "val_fraction\t0.1" in out


def test_missing_store_is_one_line(tmp_path, capsys):
    err = one_line_error(capsys, ["check-store", str(tmp_path / "x.zarr")])
    assert "x.zarr: embedding store not found" in err


def test_a_folder_that_is_no_zarr_store_is_one_line(tmp_path, capsys):
    assert "not a zarr embedding store" in one_line_error(capsys, ["check-store", str(tmp_path)])


def test_export_writes_the_format(results, tmp_path, capsys):
    if importlib.util.find_spec("vlmsae.export") is None:
        pytest.skip("vlmsae/export.py is not there yet")
    out = tmp_path / "export"
    assert (
        main(["export", RUN, "--results", str(results), "--format", "saelens", "--out", str(out)])
        == 0
    )
    assert any(out.iterdir())


def test_export_of_missing_run_is_one_line(tmp_path, capsys):
    argv = ["export", RUN, "--results", str(tmp_path), "--format", "sparsify", "--out", "x"]
    if importlib.util.find_spec("vlmsae.export") is None:
        pytest.skip("vlmsae/export.py is not there yet")
    assert "sae.safetensors: missing" in one_line_error(capsys, argv)


def test_top_atoms_shows_names_when_atoms_have_them(results, capsys):
    path = results / "metrics" / RUN / "atoms.parquet"
    atoms = pd.read_parquet(path)
    atoms.assign(name=[f"concept {atom}" for atom in atoms["atom"]]).to_parquet(path)
    assert main(["top-atoms", RUN, "--results", str(results), "-n", "1", "--captions", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("name: concept 5")
