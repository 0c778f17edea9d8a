"""bench/iso_energy_authors.py (issue 26, item 9): its pieces on a tiny case.

What needs no authors' code runs everywhere: reading their function out of a file this Python
cannot parse whole, the one-line refusal of a folder that is not their checkout, the preset's
datasets, our trainer and our scores on a tiny store, the seed statistics and the table. The
authors' trainer runs only where their checkout is (ISOENERGY_CHECKOUT, a clone of
github.com/Parabrele/IsoEnergy) and overcomplete is installed (`make bench`): CI has neither.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "iso_energy_authors.py"
CHECKOUT = os.environ.get("ISOENERGY_CHECKOUT")
TINY = {"d": 32, "n_bimodal": 6, "n_unimodal": 2, "L": 3, "tau2": 0.4, "n_pairs": 400, "seed": 0}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("iso_energy_authors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(bench, tmp_path_factory):
    """A preset like the recovery table's at toy sizes, and its τ1 = 1 store."""
    preset = bench.read_preset()
    preset["datasets"] = {
        "tiny": {
            "source": "synthetic",
            "models": ["generator"],
            "synthetic": {
                "geometry": "clip-like",
                **TINY,
                "tau1": 1.0,
            },
        },
    }
    preset["variants"] = {
        name: {**preset["variants"][name], "n_atoms": 16, "k": 3} for name in bench.VARIANTS
    }
    preset["train"] = {"steps": 4, "batch_size": 32, "lr": 1e-3, "warmup_steps": 1}
    preset["evaluation"] = {"max_pairs": 80}
    spec = bench.synthetic_specs(preset, (1.0,))[1.0]
    return preset, bench.build(spec, tmp_path_factory.mktemp("stores"))


def test_a_function_is_read_alone_from_a_file_python_cannot_parse_whole(bench, tmp_path):
    source = tmp_path / "utils.py"
    source.write_text(
        "import not_installed_anywhere\n\n"
        "def wanted(x):\n    # a comment at depth\n\n    return scale * x\n"
        "# a comment at column 0 inside the file\n"
        "broken = f'{\"nested\"}' if (\n"  # unparsable here: the rest must never be parsed
    )
    wanted = bench.function_from_source(source, "wanted", {"scale": 3})
    assert wanted(2) == 6
    # Its code keeps the file's line numbers (tracebacks point into the authors' file).
    assert wanted.__code__.co_firstlineno == 3 and wanted.__code__.co_filename == str(source)
    with pytest.raises(SystemExit, match="defines no function 'missing'"):
        bench.function_from_source(source, "missing", {})


def test_a_folder_that_is_not_the_authors_checkout_is_refused_in_one_line(bench, tmp_path):
    with pytest.raises(SystemExit) as refused:
        bench.load_authors(tmp_path)
    message = str(refused.value.code)
    assert "\n" not in message and str(tmp_path) in message
    assert "src/train.py, src/losses.py, src/utils.py" in message


def test_the_main_entry_refuses_a_missing_checkout_before_any_work(bench, tmp_path):
    with pytest.raises(SystemExit, match="is not a checkout of github.com/Parabrele/IsoEnergy"):
        bench.main([str(tmp_path / "absent"), "--out", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()


def test_the_recovery_presets_datasets_are_found_by_tau1(bench):
    preset = bench.read_preset()
    specs = bench.synthetic_specs(preset, (1.0, 0.5))
    assert {tau1: spec[1]["synthetic"]["tau1"] for tau1, spec in specs.items()} == {
        1.0: 1.0,
        0.5: 0.5,
    }
    assert bench.stores_dim(specs) == 512
    with pytest.raises(SystemExit, match=r"no synthetic dataset at tau1 \[0.3\]"):
        bench.synthetic_specs(preset, (0.3,))


def test_every_case_is_listed_once(bench):
    cases = bench.cases([1.0, 0.5], [0, 1], ["no-decoder-bias"], 4000)
    # (2 variants × 3 trainers + 1 ablation) × 2 τ1 × 2 seeds.
    assert len(cases) == len(set(cases)) == 28
    assert {c.trainer for c in cases if c.variant == "sae-a"} == {
        "ours",
        "authors",
        "authors:steps=4000",
    }
    assert len(bench.cases([1.0], [0], [], 0)) == 4


def test_our_trainer_and_scores_on_a_tiny_store(bench, tiny, tmp_path):
    preset, store = tiny
    rows = {}
    for trainer in ("ours", "ours:no-decoder-bias"):
        case = bench.Case(1.0, "sae", trainer, 0)
        (tmp_path / trainer).mkdir()
        rows[trainer] = bench.run_case(case, store, preset, None, 0.1, tmp_path / trainer)
    for row in rows.values():
        assert 0.0 <= row["recovery_w"] <= 2.0 and 0.0 <= row["recovery_mma"] <= 1.0
        assert 0 < row["l0"] <= 3 and np.isfinite(row["r2_overall"])
    # The ablation trains a different SAE (no decoder bias): its scores differ.
    assert rows["ours"] != rows["ours:no-decoder-bias"]
    case = bench.Case(1.0, "sae-a", "ours", 0)
    (tmp_path / "a").mkdir()
    aligned = bench.run_case(case, store, preset, None, 0.1, tmp_path / "a")
    assert 0.0 <= aligned["recovery_mma"] <= 1.0


def test_a_perfect_fit_scores_w_0_and_mma_1(bench, tiny):
    """The true dictionary and true codes, as a Fitted, score W 0, mma 1, R² 1."""
    preset, store = tiny
    truth = store.truth()
    pairs = bench._eval_rows(store, 80)["pairs"]
    codes = {
        m: truth.codes[m].to_csr(len(truth.dictionary))[pairs[:, i]]
        for i, m in enumerate(("image", "text"))
    }
    reconstruction = {m: np.asarray(codes[m] @ truth.dictionary) for m in codes}
    fitted = bench.Fitted(truth.dictionary, codes, reconstruction, 0.0)
    scores = bench.score(fitted, store, 80)
    assert scores["recovery_w"] == pytest.approx(0.0, abs=1e-6)
    assert scores["r2_overall"] == pytest.approx(1.0, abs=1e-5)
    # τ1 = 1: the authors' truth splits each bimodal atom k into an image copy (its usage on
    # image rows, a_k) and a text copy (b_k); the stored row's usage column is (a_k; b_k), whose
    # cosine with the closer copy is max(|a_k|, |b_k|) / √(|a_k|² + |b_k|²). Unimodal columns
    # match themselves (cosine 1); mma is the mean over the stored atoms.
    bimodal = np.flatnonzero(truth.atom_kind == "bimodal")
    a, b = (
        np.sqrt(np.asarray(codes[m].multiply(codes[m]).sum(axis=0)).ravel()[bimodal])
        for m in ("image", "text")
    )
    expected = len(truth.atom_kind) - len(bimodal) + np.sum(np.maximum(a, b) / np.hypot(a, b))
    assert scores["recovery_mma"] == pytest.approx(expected / len(truth.atom_kind))
    assert scores["l0"] == pytest.approx(TINY["L"])


def test_seed_statistics_and_the_table(bench):
    rows = [
        {
            "tau1": 1.0,
            "variant": "sae",
            "trainer": "ours",
            "seed": s,
            "recovery_w": w,
            "recovery_mma": m,
            "r2_overall": 0.9,
            "l0": 10.0,
        }
        for s, w, m in ((0, 0.2, 0.5), (1, 0.4, 0.7))
    ]
    rows.append(
        {
            "tau1": 1.0,
            "variant": "sae",
            "trainer": "authors",
            "seed": 0,
            "recovery_w": 0.3,
            "recovery_mma": 0.6,
            "r2_overall": 0.8,
            "l0": 10.0,
        }
    )
    summary = bench.summarise(rows)
    ours = next(e for e in summary if e["trainer"] == "ours")
    # mean 0.3, sample std |0.2 − 0.4| / √2 = 0.1414.
    assert ours["recovery_w"] == pytest.approx(0.3)
    assert ours["recovery_w_std"] == pytest.approx(0.2 / np.sqrt(2))
    assert ours["n"] == 2
    authors = next(e for e in summary if e["trainer"] == "authors")
    assert authors["recovery_w_std"] is None
    table = bench.markdown(summary)
    assert "| 1 | sae | 0.300 ± 0.141 / 0.600 ± 0.141 | 0.300 / 0.600 | 0.396 / 0.29 |" in table
    assert "| 1 | sae | 0.900 | 0.800 |" in table


@pytest.mark.skipif(not CHECKOUT, reason="ISOENERGY_CHECKOUT (the authors' checkout) is not set")
def test_the_authors_trainer_on_a_tiny_store(bench, tiny, tmp_path):
    pytest.importorskip("cv2", reason="overcomplete's imports are installed by `make bench`")
    authors = bench.load_authors(Path(CHECKOUT))
    preset, store = tiny
    for variant in bench.VARIANTS:
        (tmp_path / variant).mkdir()
        row = bench.run_case(
            bench.Case(1.0, variant, "authors", 0), store, preset, authors, 0.1, tmp_path / variant
        )
        assert 0.0 <= row["recovery_mma"] <= 1.0 and np.isfinite(row["recovery_w"])
        assert 0 < row["l0"] <= 3


@pytest.mark.skipif(not CHECKOUT, reason="ISOENERGY_CHECKOUT (the authors' checkout) is not set")
def test_the_whole_bench_on_a_tiny_preset(bench, tiny, tmp_path, capsys, monkeypatch):
    pytest.importorskip("cv2", reason="overcomplete's imports are installed by `make bench`")
    import json

    import yaml

    preset, _ = tiny
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(preset))
    # The workers are spawned: they import the script by name from its folder.
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    out = tmp_path / "bench.json"
    arguments = [CHECKOUT, "--preset", str(tmp_path / "tiny.yaml"), "--tau1", "1.0"]
    assert bench.main([*arguments, "--out", str(out), "--authors-steps", "8", "--jobs", "1"]) == 0
    report = json.loads(out.read_text())
    trainers = {row["trainer"] for row in report["results"]}
    assert trainers == {"ours", "authors", "authors:steps=8", "ours:no-decoder-bias"}
    assert report["settings"]["beta_authors"] == pytest.approx(0.1 / TINY["d"])
    assert len(report["summary"]) == len(report["results"]) == 7
    assert "| 1 | sae-a |" in capsys.readouterr().out
