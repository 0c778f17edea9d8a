import json

import numpy as np
import pytest
import torch
from oracles import oracle_topk
from scipy import sparse

from vlmsae import sae
from vlmsae.metrics import energy, modality, reconstruction
from vlmsae.metrics.evaluate import EvalSettings, evaluate
from vlmsae.registry_base import Settings
from vlmsae.stores.build import build_store
from vlmsae.stores.embedding_store import EmbeddingStore

TOP2 = EvalSettings(metrics={"atom_usage": {"energy_top_m": [2]}})


def test_r_squared_and_mse_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Σ‖x − x̄‖² = 4 · 0.25 = 1.
    assert reconstruction.r_squared(x, np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(0.0)
    assert reconstruction.r_squared(x, np.array([[1.0, 0.0], [0.0, 0.5]])) == pytest.approx(0.75)
    assert reconstruction.r_squared(x, x) == 1.0
    assert reconstruction.mean_squared_error(
        x, np.array([[1.0, 0.0], [0.0, 0.5]])
    ) == pytest.approx(0.0625)


def test_r_squared_overall_and_summed_error_by_hand():
    # One overall mean m = 1.5 of the entries (1, 2, 1, 2): Σ(x − m)² = 1; the per-dimension
    # means (1, 2) leave no variance at all, so only the overall R² is defined.
    x = np.array([[1.0, 2.0], [1.0, 2.0]])
    x_hat = np.array([[1.0, 2.0], [1.0, 1.5]])
    assert reconstruction.r_squared_overall(x, x_hat) == pytest.approx(1 - 0.25)
    # Σ_d (x − x̂)² per row: 0 and .25, mean .125 (= d · mse).
    assert reconstruction.summed_squared_error(x, x_hat) == pytest.approx(0.125)
    assert reconstruction.mean_squared_error(x, x_hat) == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="undefined"):
        reconstruction.r_squared(x, x_hat)
    # The overall mean is never a better fit than the per-dimension ones: r2_overall ≥ r2.
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    y_hat = np.array([[1.0, 0.0], [0.0, 0.5]])
    assert reconstruction.r_squared(y, y_hat) == pytest.approx(0.75)
    assert reconstruction.r_squared_overall(y, y_hat) == pytest.approx(0.75)
    z = y + np.array([0.0, 3.0])
    assert reconstruction.r_squared_overall(z, y_hat + np.array([0.0, 3.0])) > 0.75


def test_reconstruction_summary_keys_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    codes = sparse.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    x_hat = np.array([[1.0, 0.0], [0.0, 0.5]])
    summary = reconstruction.reconstruction_summary(x, x_hat, codes, "_image")
    assert summary == pytest.approx(
        {
            "mse_image": 0.0625,
            "mse_sum_image": 0.125,
            "r2_image": 0.75,
            # Overall mean .5: Σ(x − .5)² = 1, the same as around the per-dimension means here.
            "r2_overall_image": 0.75,
            "l0_image": 1.0,
        }
    )


def test_reconstruction_group_reports_eval_and_train_rows():
    import pandas as pd

    from vlmsae.metrics.context import EvalContext, TrainRows

    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    x_hat = np.array([[1.0, 0.0], [0.0, 0.5]])
    codes = sparse.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    train = TrainRows(
        image=x, text=x, recon_image=x, recon_text=x_hat, codes_image=codes, codes_text=codes
    )
    context = EvalContext(
        image=x,
        text=x,
        recon_image=x_hat,
        recon_text=x_hat,
        codes_image=codes,
        codes_text=codes,
        dictionary=np.eye(2),
        energy=np.ones(2),
        energy_sq=np.ones(2),
        atom_kind=np.array(["bimodal"] * 2, dtype=object),
        atom_kind_sq=np.array(["bimodal"] * 2, dtype=object),
        atoms=pd.DataFrame({"atom": [0, 1]}),
        seed=0,
        train=train,
    )
    summary = reconstruction.summarise(context, Settings()).summary
    assert summary["mse_sum"] == pytest.approx(0.125) and summary["r2_overall_text"] == 0.75
    assert summary["r2_image_train"] == 1.0 and summary["r2_text_train"] == pytest.approx(0.75)
    # Pooled train rows: error .25 over Σ(x − x̄)² = 2.
    assert summary["r2_train"] == pytest.approx(1 - 0.25 / 2)
    assert summary["l0_train"] == 1.0
    assert "mse_sum_train" not in summary


def test_r_squared_of_constant_data_is_an_error():
    with pytest.raises(ValueError, match="undefined"):
        reconstruction.r_squared(np.ones((3, 2)), np.zeros((3, 2)))


def test_l0_by_hand():
    codes = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    assert reconstruction.l0(codes) == 1.0 == reconstruction.l0(sparse.csr_matrix(codes))


def test_energy_moments_by_hand():
    codes = np.array([[1.0, 0.0], [3.0, -2.0]])
    for form in (codes, sparse.csr_matrix(codes)):
        np.testing.assert_allclose(energy.energy(form, 1), [2.0, 1.0])
        np.testing.assert_allclose(energy.energy(form, 2), [5.0, 2.0])
    assert energy.top_share(np.array([3.0, 1.0, 0.0, 1.0]), 1) == pytest.approx(0.6)
    assert energy.top_share(np.array([3.0, 1.0]), 10) == 1.0


def test_modality_score_and_kind_by_hand():
    score = modality.modality_score(
        np.array([1.0, 0.0, 0.0, 3.0, 0.97]), np.array([1.0, 2.0, 0.0, 1.0, 0.03])
    )
    np.testing.assert_allclose(score, [0.5, 0.0, np.nan, 0.75, 0.97])
    assert list(modality.atom_kind(score, 0.05)) == ["bimodal", "text", "dead", "bimodal", "image"]


def test_activity_by_hand():
    on_image = np.array([True, False, False, True])
    on_text = np.array([True, True, False, False])
    assert list(modality.activity(on_image, on_text)) == [
        "both",
        "text_only",
        "dead",
        "image_only",
    ]


@pytest.fixture(scope="module")
def nonnegative_store(tmp_path_factory):
    """Pairs with non-negative coordinates, so an identity TopK SAE reconstructs them exactly."""
    folder = tmp_path_factory.mktemp("nonneg")
    rng = np.random.default_rng(0)
    np.save(folder / "f.npy", np.abs(rng.standard_normal((2, 200, 6))))
    spec = {
        "source": "precomputed",
        "precomputed": {"path": str(folder / "f.npy"), "eval_fraction": 0.5, "split_seed": 0},
    }
    build_store("d", "m", spec, folder / "s.zarr")
    return EmbeddingStore(folder / "s.zarr")


def _identity_topk(d):
    return oracle_topk(np.eye(d), k=d)


def test_perfect_reconstruction_gives_r2_one(nonnegative_store):
    _, summary = evaluate(_identity_topk(6), nonnegative_store, TOP2)
    assert summary["r2"] == pytest.approx(1.0, abs=1e-6)
    assert summary["r2_image"] == pytest.approx(1.0, abs=1e-6)
    assert summary["l0"] == pytest.approx(6.0)
    assert summary["eval_pairs"] == 100


def test_dead_atoms_are_counted_not_dropped(tiny_store):
    model = sae.build("topk", d=tiny_store.dim, n_atoms=20, k=3)
    with torch.no_grad():
        model.b_enc[:2] = -1e3  # atoms 0 and 1 can never win a positive slot
    atoms, summary = evaluate(model.eval(), tiny_store, EvalSettings(max_pairs=300))
    assert len(atoms) == 20
    assert summary["dead_atoms"] >= 2
    assert summary["modality_atoms_dead"] == summary["dead_atoms"]
    assert list(atoms.loc[:1, "atom_kind"]) == ["dead", "dead"]
    assert sum(summary[f"modality_atoms_{k}"] for k in ("image", "text", "bimodal", "dead")) == 20
    assert (
        summary["atoms_active_both"]
        + summary["atoms_active_image_only"]
        + summary["atoms_active_text_only"]
        + summary["dead_atoms"]
        == 20
    )
    # No NaN anywhere in the summary: it serialises as strict JSON.
    json.dumps(summary, allow_nan=False)
    live = atoms["modality_score"].dropna()
    assert live.between(0, 1).all() and len(live) == 20 - summary["dead_atoms"]


def test_permuting_atoms_permutes_rows_and_keeps_the_summary(tiny_store):
    torch.manual_seed(0)
    model = sae.build("topk", d=tiny_store.dim, n_atoms=16, k=3).eval()
    permutation = torch.randperm(16)
    permuted = sae.build("topk", d=tiny_store.dim, n_atoms=16, k=3).eval()
    with torch.no_grad():
        permuted.W_enc.copy_(model.W_enc[permutation])
        permuted.b_enc.copy_(model.b_enc[permutation])
        permuted.W_dec.copy_(model.W_dec[permutation])
        permuted.b_dec.copy_(model.b_dec)
    settings = EvalSettings(max_pairs=300)
    atoms, summary = evaluate(model, tiny_store, settings)
    atoms_p, summary_p = evaluate(permuted, tiny_store, settings)
    for column in ("energy", "energy_sq_text", "modality_score", "frequency_image"):
        np.testing.assert_allclose(
            atoms_p[column].to_numpy(), atoms[column].to_numpy()[permutation.numpy()], rtol=1e-5
        )
    for key, value in summary.items():
        # A few keys are words (retrieval_grouping, *_undefined reasons): equal, not close.
        expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-5, abs=1e-9)
        assert summary_p[key] == expected, key


def test_eval_subsample_is_seeded(tiny_store):
    model = sae.build("topk", d=tiny_store.dim, n_atoms=8, k=2).eval()
    a = evaluate(model, tiny_store, EvalSettings(max_pairs=50, seed=1))[1]
    b = evaluate(model, tiny_store, EvalSettings(max_pairs=50, seed=1))[1]
    c = evaluate(model, tiny_store, EvalSettings(max_pairs=50, seed=2))[1]
    # Same seed, same subsample: equal up to float summation order in CPU kernels (the few
    # keys that are words, such as retrieval_grouping, equal).
    words = {key for key, value in a.items() if isinstance(value, str)}
    assert {key: a[key] for key in words} == {key: b[key] for key in words}
    assert {key: a[key] for key in a.keys() - words} == pytest.approx(
        {key: b[key] for key in b.keys() - words}, rel=1e-7
    )
    assert a["eval_seed"] == 1
    assert abs(a["mse"] - c["mse"]) > 1e-6


def test_recovery_against_the_true_dictionary(tiny_store):
    truth = tiny_store.truth()
    n_true = len(truth.dictionary)
    model = oracle_topk(truth.dictionary, k=6)
    _, summary = evaluate(model, tiny_store, EvalSettings(max_pairs=300))
    assert summary["recovery_w_matched"] == pytest.approx(0.0, abs=1e-6)
    assert 0.5 < summary["recovery_mma_merged"] <= 1.0
    # τ1 = 1: the authors' truth splits each bimodal atom in two, and an atom firing on both
    # modalities matches one copy only.
    assert summary["recovery_mma"] < summary["recovery_mma_merged"]
    random_model = sae.build("topk", d=tiny_store.dim, n_atoms=n_true, k=6).eval()
    _, random_summary = evaluate(random_model, tiny_store, EvalSettings(max_pairs=300))
    assert random_summary["recovery_w_matched"] > 0.5
    for key in ("recovery_w", "recovery_w_uniform"):
        # Energy marginals of the true dictionary's codes differ from the true codes' (the
        # encoder is not the generator), so W is small rather than 0.
        assert 0 <= summary[key] < random_summary[key]
    for key in ("recovery_mma", "recovery_mma_merged", "recovery_mma_energy"):
        assert random_summary[key] < summary[key]


def test_zero_shot_and_mms_against_another_store(tmp_path):
    """A labelled store with class prompts gets zero-shot scores; a reference store gets MMS."""
    from vlmsae.metrics.evaluate import evaluate_run, evaluate_store

    rng = np.random.default_rng(0)
    centres = np.abs(rng.standard_normal((3, 8)))
    labels = rng.integers(0, 3, 300)
    np.save(
        tmp_path / "pairs.npy",
        np.stack(
            [
                centres[labels] + 0.1 * np.abs(rng.standard_normal((300, 8))),
                centres[labels] + 0.1 * np.abs(rng.standard_normal((300, 8))),
            ]
        ),
    )
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "prompts.npy", centres[:, None, :] + 0.05 * rng.random((3, 4, 8)))
    section = {
        "path": str(tmp_path / "pairs.npy"),
        "labels_path": str(tmp_path / "labels.npy"),
        "class_prompts_path": str(tmp_path / "prompts.npy"),
        "eval_fraction": 0.5,
        "split_seed": 0,
    }
    for name in ("model", "reference"):
        build_store(
            "d", name, {"source": "precomputed", "precomputed": section}, tmp_path / f"{name}.zarr"
        )
    store, reference = (
        EmbeddingStore(tmp_path / "model.zarr"),
        EmbeddingStore(tmp_path / "reference.zarr"),
    )
    _, summary, tables = evaluate_run(_identity_topk(8), store, TOP2, reference_store=reference)
    store_summary, _ = evaluate_store(store, TOP2, reference_store=reference)
    assert store_summary["zero_shot_top1_dense"] > 0.95
    assert summary["zero_shot_top1_codes"] > 0.95
    assert "zero_shot_top5_dense" not in store_summary  # fewer than 5 classes
    assert "zero_shot_top1_dense" not in summary  # the store's, not repeated per run
    assert summary["mms_image_text_atoms"] == 8 and -1 <= summary["mms_image_text"] <= 1
    assert -1 <= store_summary["mms_baseline_image_text"] <= 1
    assert {"coactivation", "transport"} == set(tables["bridge_top"]["form"])


def test_an_undefined_r2_is_left_out_with_its_reason_not_fatal():
    """A store whose text rows are all one vector (a single class with one prompt): R²_text has
    no variance to explain. The run's other reconstruction numbers stand; r2_text is absent
    with `r2_text_undefined` saying why, never a finite number."""
    x = {"image": np.array([[1.0, 0.0], [0.0, 1.0]]), "text": np.array([[0.6, 0.8], [0.6, 0.8]])}
    recon = {"image": x["image"] * 0.5, "text": np.array([[0.6, 0.8], [0.5, 0.8]])}
    codes = {m: sparse.csr_matrix(np.eye(2)) for m in x}
    summary = reconstruction._summaries(x, recon, codes)
    assert "r2_text" not in summary
    assert summary["r2_text_undefined"] == "every text row is the same"
    # The one-mean R² still has entries 0.6 and 0.8 around 0.7: mean (x − m)² 0.01, mean
    # (x − x̂)² 0.0025.
    assert summary["r2_overall_text"] == pytest.approx(0.75)
    assert "r2_overall_text_undefined" not in summary
    assert summary["mse_text"] == pytest.approx(0.01 / 4)
    assert summary["r2_image"] == pytest.approx(1 - 0.5 / 1.0)  # Σ‖x − x̂‖² 0.5, Σ‖x − x̄‖² 1
    assert "r2_image_undefined" not in summary


def test_unit_rows_in_blocks_equal_the_whole_matrix_pass(monkeypatch):
    from vlmsae.metrics import rows

    x = np.random.default_rng(0).standard_normal((50, 7)).astype(np.float32)
    x[3] = 0
    x[8, 2] = np.inf
    monkeypatch.setattr(rows, "UNIT_BLOCK_ENTRIES", 20)  # blocks of 2 rows
    for data, dtype in ((x, np.float32), (np.asfortranarray(x), np.float64), (x[::3], np.float32)):
        values = np.asarray(data, dtype=dtype)
        norms = np.linalg.norm(values, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            expected = np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)
            unit = rows.unit_rows(data, dtype)
        assert unit.dtype == expected.dtype
        np.testing.assert_array_equal(unit, expected)


def test_encode_fills_the_batches_reconstructions_in_order(tiny_store):
    from vlmsae.metrics.evaluate import encode

    torch.manual_seed(0)
    model = sae.build("topk", d=tiny_store.dim, n_atoms=48, k=4).eval()
    x = tiny_store.rows("text", np.arange(70))
    codes, recon = encode(model, x, 16, 1)
    with torch.no_grad():
        blocks = [model(torch.from_numpy(x[start : start + 16]), 1) for start in range(0, 70, 16)]
    np.testing.assert_array_equal(recon, np.concatenate([x_hat.numpy() for _, x_hat in blocks]))
    assert recon.dtype == np.float32 and codes.shape == (70, 48)
