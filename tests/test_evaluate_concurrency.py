"""Metric groups run in threads (`run_groups(..., workers=n)`, `evaluate_run(..., workers=n)`)
give exactly what they give one after another: the groups only read the context and seed their
own draws, and their products do not depend on the BLAS thread count that `run_groups` sets.

One context serves both runs: torch's encoding of the same rows can differ in its last bits from
one call to the next, which would hide what the threads do."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from vlmsae import sae
from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.evaluate import (
    EvalSettings,
    encode,
    encode_modalities,
    evaluate_run,
    evaluate_store,
    run_context,
    run_groups,
)

SETTINGS = EvalSettings(max_pairs=300, train_pairs=100)


def _same(first: dict, second: dict) -> bool:
    """Equal dicts, NaN equal to NaN."""

    def equal(a, b) -> bool:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
            return math.isnan(b)
        return a == b

    return first.keys() == second.keys() and all(equal(first[k], second[k]) for k in first)


def test_a_run_scored_in_two_threads_equals_it_scored_in_one(tiny_store):
    torch.manual_seed(0)
    model = sae.build("topk", d=tiny_store.dim, n_atoms=48, k=4).eval()
    context = run_context(model, tiny_store, SETTINGS)
    one = run_groups(RUN_METRICS, context, SETTINGS.metrics, workers=1)
    two = run_groups(RUN_METRICS, context, SETTINGS.metrics, workers=2)
    # Every group ran: recovery, bridge and MMS need the store's truth, which it has.
    assert {"recovery_w", "bridge_odds_undefined", "mms_image_text", "p_acc"} <= one.summary.keys()
    assert _same(one.summary, two.summary)
    assert list(one.atom_columns) == list(two.atom_columns)
    for name, column in one.atom_columns.items():
        np.testing.assert_array_equal(column, two.atom_columns[name])
    assert one.tables.keys() == two.tables.keys()
    for name in one.tables:
        pd.testing.assert_frame_equal(one.tables[name], two.tables[name], check_exact=True)


def test_a_store_scored_in_two_threads_equals_it_scored_in_one(tiny_store):
    summary_one, tables_one = evaluate_store(tiny_store, SETTINGS, workers=1)
    summary_two, tables_two = evaluate_store(tiny_store, SETTINGS, workers=2)
    assert _same(summary_one, summary_two) and "gap_knn_auroc_dense" in summary_one
    for name in tables_one:
        pd.testing.assert_frame_equal(tables_one[name], tables_two[name], check_exact=True)


def test_an_error_in_a_group_reaches_the_caller_from_a_thread(tiny_store):
    torch.manual_seed(0)
    model = sae.build("topk", d=tiny_store.dim, n_atoms=48, k=4).eval()
    bad = EvalSettings(max_pairs=300, train_pairs=100, metrics={"gap": {"knn_k": 10_000}})
    with np.testing.assert_raises_regex(Exception, "knn_k"):
        evaluate_run(model, tiny_store, bad, workers=2)


def test_the_two_modalities_encoded_side_by_side_equal_them_encoded_in_turn(tiny_store):
    torch.manual_seed(0)
    model = sae.build("topk", d=tiny_store.dim, n_atoms=48, k=4).eval()
    rows = {m: tiny_store.rows(m, np.arange(200)) for m in ("image", "text")}
    threads = torch.get_num_threads()
    in_turn = encode_modalities(model, rows, batch_size=64, workers=1)
    side_by_side = encode_modalities(model, rows, batch_size=64, workers=2)
    assert torch.get_num_threads() == threads
    assert list(side_by_side) == ["image", "text"]
    for m in rows:
        (codes, recon), (codes_two, recon_two) = in_turn[m], side_by_side[m]
        # The same atoms fire; values may differ in their last bits from one torch call to the
        # next (module docstring), never more.
        np.testing.assert_array_equal(codes.indptr, codes_two.indptr)
        np.testing.assert_array_equal(codes.indices, codes_two.indices)
        np.testing.assert_allclose(codes.data, codes_two.data, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(recon, recon_two, rtol=1e-6, atol=1e-7)
    # Text rows are encoded as modality 1 (a per-modality bias would read it).
    np.testing.assert_allclose(
        side_by_side["text"][1], encode(model, rows["text"], 64, 1)[1], rtol=1e-6, atol=1e-7
    )
