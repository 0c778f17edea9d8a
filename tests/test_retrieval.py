import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.stats import ortho_group

from vlmsae.metrics import retrieval
from vlmsae.metrics.context import EvalContext


def summarise(run, **options) -> dict:
    """The store's dense recalls and the run's, as one summary (what a reader of both sees)."""
    settings = retrieval.RetrievalSettings(**options)
    return {
        **retrieval.summarise_store(run, settings).summary,
        **retrieval.summarise(run, settings).summary,
    }


def brute_force_ranks(image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference ranks from the whole cosine matrix: others at least as similar as the partner."""
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    similarity = image @ text.T
    threshold = np.diag(similarity) - retrieval.TIE_TOLERANCE
    off = ~np.eye(len(image), dtype=bool)
    return (
        ((similarity >= threshold[:, None]) & off).sum(axis=1),
        ((similarity >= threshold[None, :]) & off).sum(axis=0),
    )


def random_run(seed: int, n: int = 300, p: int = 36, d: int = 32) -> EvalContext:
    """Paired rows from codes sharing 3 of the 12 bimodal atoms (0..11) and adding 2 weaker
    unimodal atoms of their modality (image 12..23, text 24..35), with noise on the dense rows."""
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((p, d)).astype(np.float32)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    kinds = np.repeat(np.array(["bimodal", "image", "text"], dtype=object), p // 3)
    shared = np.zeros((n, p), dtype=np.float32)
    codes = {m: np.zeros((n, p), dtype=np.float32) for m in ("image", "text")}
    for i in range(n):
        atoms = rng.choice(np.flatnonzero(kinds == "bimodal"), 3, replace=False)
        shared[i, atoms] = rng.uniform(0.5, 1.0, 3)
        for m in codes:
            atoms = rng.choice(np.flatnonzero(kinds == m), 2, replace=False)
            codes[m][i, atoms] = rng.uniform(0.1, 0.5, 2)
    codes = {m: sparse.csr_matrix(shared + codes[m]) for m in codes}
    recon = {m: np.asarray(codes[m] @ dictionary) for m in codes}
    noise = {m: 0.05 * rng.standard_normal((n, d)).astype(np.float32) for m in codes}
    return EvalContext(
        image=recon["image"] + noise["image"],
        text=recon["text"] + noise["text"],
        codes_image=codes["image"],
        codes_text=codes["text"],
        recon_image=recon["image"],
        recon_text=recon["text"],
        dictionary=dictionary,
        energy=np.ones(p),
        energy_sq=np.ones(p),
        atom_kind=kinds,
        atom_kind_sq=kinds,
        atoms=pd.DataFrame({"atom": np.arange(p)}),
        seed=seed,
    )


def test_identical_rows_are_all_retrieved_first():
    rows = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    image_to_text, text_to_image = retrieval.partner_ranks(rows, rows)
    assert not image_to_text.any() and not text_to_image.any()
    assert retrieval.recall_at(image_to_text, 1) == 1.0


def test_ranks_by_hand():
    image = np.eye(3, dtype=np.float32)
    # Image 1 is closer to caption 0 (cos .89) than image 0 is (cos .45); every image still
    # finds its own caption first.
    text = np.array([[1, 2, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    image_to_text, text_to_image = retrieval.partner_ranks(image, text)
    np.testing.assert_array_equal(image_to_text, [0, 0, 0])
    np.testing.assert_array_equal(text_to_image, [1, 0, 0])
    assert retrieval.recall_at(text_to_image, 1) == pytest.approx(2 / 3)
    assert retrieval.recall_at(text_to_image, 2) == 1.0


def test_a_known_permutation_gives_its_fixed_points_as_recall():
    # Orthonormal images, captions permuted: image i has cosine 1 with the caption that is its
    # image and 0 with all others, its own included unless i is a fixed point. Without tie
    # information (recall_at's default) ties count against the query, so only the fixed points
    # are hits, at any k < N (the summary's R@k credits ties: test_recall_at_k_credits_ties_...).
    n = 10
    permutation = np.array([0, 1, 2, 4, 3, 6, 7, 5, 9, 8])
    image = np.eye(n, dtype=np.float32)
    image_to_text, text_to_image = retrieval.partner_ranks(image, image[permutation])
    for k in (1, 5, n - 1):
        assert retrieval.recall_at(image_to_text, k) == pytest.approx(0.3)
        assert retrieval.recall_at(text_to_image, k) == pytest.approx(0.3)


def test_zero_and_non_finite_rows_retrieve_nothing():
    # Pair 2's text is zero and pair 3's image holds a NaN: neither pair can be ranked (rank
    # inf, no credit at any k); the others still find their partners.
    image = np.eye(5, dtype=np.float32)
    text = image.copy()
    text[2] = 0
    image[3, 1] = np.nan
    image_to_text, text_to_image = retrieval.partner_ranks(image, text)
    np.testing.assert_array_equal(image_to_text, [0, 0, np.inf, np.inf, 0])
    np.testing.assert_array_equal(text_to_image, [0, 0, np.inf, np.inf, 0])
    (above, tied), _ = retrieval.rank_counts(image, text)
    for k in (1, 5):
        assert retrieval.recall_at(above + tied, k, tied) == pytest.approx(3 / 5)


def test_rank_counts_and_recall_at_by_hand():
    # Image 0 against texts: its partner (cos 1/√2), text 1 (cos 1/√2, a tie), text 2 (cos 1,
    # above), text 3 (cos 0, below): above 1, tied 1. R@1 0; R@2 = P(partner first of the tied
    # two) = 1/2; R@3 = 1.
    image = np.tile(np.array([[1, 1, 0, 0]], dtype=np.float32), (4, 1))
    text = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32)
    (above, tied), _ = retrieval.rank_counts(image, text)
    assert (above[0], tied[0]) == (1, 1)
    ranks = above[:1] + tied[:1]
    assert retrieval.recall_at(ranks, 1, tied[:1]) == 0.0
    assert retrieval.recall_at(ranks, 2, tied[:1]) == 0.5
    assert retrieval.recall_at(ranks, 3, tied[:1]) == 1.0
    # Without tie information a tie counts against the query at every k.
    assert retrieval.recall_at(ranks, 2) == 0.0
    assert np.isnan(retrieval.recall_at(np.array([]), 1))


def test_blocked_ranks_match_the_whole_matrix():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((57, 5)).astype(np.float32)
    text = image + rng.standard_normal((57, 5)).astype(np.float32)
    expected = brute_force_ranks(image, text)
    for block_entries in (1, 57 * 4, 10**6):
        ranks = retrieval.partner_ranks(image, text, block_entries)
        np.testing.assert_array_equal(ranks[0], expected[0])
        np.testing.assert_array_equal(ranks[1], expected[1])


def test_ranks_reject_unpaired_rows():
    with pytest.raises(ValueError, match="one shape"):
        retrieval.partner_ranks(np.ones((3, 2)), np.ones((4, 2)))


def test_batches_are_seeded_full_and_disjoint():
    groups = retrieval.batches(10, 4, seed=3)
    assert groups.shape == (2, 4)
    assert len(np.unique(groups)) == 8
    np.testing.assert_array_equal(groups, retrieval.batches(10, 4, seed=3))
    assert not np.array_equal(groups, retrieval.batches(10, 4, seed=4))
    # Fewer pairs than a batch: one batch of all of them.
    assert sorted(retrieval.batches(3, 256, seed=0).ravel()) == [0, 1, 2]
    with pytest.raises(ValueError, match="at least 2"):
        retrieval.batches(10, 1, seed=0)


def test_inbatch_recall_by_hand_and_with_one_batch_equals_the_whole_split():
    n = 10
    permutation = np.array([0, 1, 2, 4, 3, 6, 7, 5, 9, 8])
    image = np.eye(n, dtype=np.float32)
    # Batches {0..4} and {5..9}: the fixed points 0, 1, 2 are the only hits.
    groups = np.arange(n).reshape(2, 5)
    assert retrieval.inbatch_recall(image, image[permutation], groups) == (0.3, 0.3)
    run = random_run(0, n=64)
    whole = retrieval.partner_ranks(run.image, run.text)
    assert retrieval.inbatch_recall(run.image, run.text, np.arange(64)[None]) == (
        retrieval.recall_at(whole[0], 1),
        retrieval.recall_at(whole[1], 1),
    )


def test_summary_keys_delta_r_and_versions():
    run = random_run(2)
    summary = summarise(run, retrieval_batch=32)
    for version in retrieval.VERSIONS:
        for direction in ("i2t", "t2i"):
            assert 0 <= summary[f"recall_inbatch_{direction}_{version}"] <= 1
            recalls = [summary[f"recall_at{k}_{direction}_{version}"] for k in retrieval.KS]
            assert recalls == sorted(recalls)
        assert summary[f"recall_inbatch_{version}"] == pytest.approx(
            (summary[f"recall_inbatch_i2t_{version}"] + summary[f"recall_inbatch_t2i_{version}"])
            / 2
        )
    assert summary["delta_r"] == pytest.approx(
        summary["recall_inbatch_decoded"] - summary["recall_inbatch_bimodal_only"]
    )
    assert summary["delta_r_with_bias_i2t"] == pytest.approx(
        summary["recall_inbatch_i2t_reconstructed"] - summary["recall_inbatch_i2t_bimodal_only"]
    )
    # δ_r is `delta_r` on the summary's own batches.
    groups = retrieval.batches(300, 32, seed=2)
    keep = run.atom_kind_sq == "bimodal"
    assert retrieval.delta_r(run.codes_image, run.codes_text, run.dictionary, keep, groups) == (
        summary["recall_inbatch_decoded"],
        summary["recall_inbatch_bimodal_only"],
        summary["delta_r"],
    )
    assert summary["retrieval_seed"] == 2
    assert summary["retrieval_batch"] == 32
    assert summary["retrieval_pairs"] == 300
    # The pairs share their bimodal codes: far better than chance (1/300), and best without the
    # unimodal atoms, which differ between the two sides of a pair.
    assert 0.2 < summary["recall_at1_i2t_dense"] < summary["recall_at1_i2t_bimodal_only"]


def test_bimodal_only_version_uses_the_bimodal_atoms_without_bias():
    run = random_run(3)
    keep = run.atom_kind_sq == "bimodal"
    # Bimodal-only codes as the reconstruction: those three versions equal, so the earlier δ_r
    # (x̂ against Ã) is 0; δ_r proper compares ZD, which keeps the unimodal atoms, against Ã.
    run.recon_image = np.asarray(run.codes_image.multiply(keep[None, :]) @ run.dictionary)
    run.recon_text = np.asarray(run.codes_text.multiply(keep[None, :]) @ run.dictionary)
    run.image, run.text = run.recon_image, run.recon_text
    summary = summarise(run)
    assert summary["delta_r_with_bias_i2t"] == 0.0
    assert summary["recall_at5_t2i_bimodal_only"] == summary["recall_at5_t2i_dense"]
    assert summary["delta_r"] == pytest.approx(
        summary["recall_inbatch_decoded"] - summary["recall_inbatch_reconstructed"]
    )
    # Codes of bimodal atoms only: ZD is Ã and δ_r = 0.
    run.codes_image = sparse.csr_matrix(run.codes_image.multiply(keep[None, :]))
    run.codes_text = sparse.csr_matrix(run.codes_text.multiply(keep[None, :]))
    assert summarise(run)["delta_r"] == 0.0


def test_delta_r_by_hand():
    # Atoms e1, e2 (bimodal), e3 as an image atom and e3 as a text atom. Image 0 and text 1 also
    # carry 5·e3: ZD rows image (1, 0, 5), (0, 1, 0) and text (1, 0, 0), (0, 1, 5). Image 0 and
    # text 1 now find each other (cosine 25/26) instead of their partners (1/√26): ZD's R@1 is
    # 1/2 each way; Ã = (Z ⊙ δ)D keeps e1, e2 and retrieves every partner: δ_r = 1/2 − 1 = −1/2.
    dictionary = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float32)
    keep = np.array([True, True, False, False])
    codes_image = sparse.csr_matrix(np.array([[1, 0, 5, 0], [0, 1, 0, 0]], dtype=np.float32))
    codes_text = sparse.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 5]], dtype=np.float32))
    groups = np.array([[0, 1]])
    assert retrieval.delta_r(codes_image, codes_text, dictionary, keep, groups) == (0.5, 1.0, -0.5)
    np.testing.assert_array_equal(
        retrieval.decoded(codes_image, dictionary), [[1, 0, 5], [0, 1, 0]]
    )


def test_delta_r_does_not_see_the_decoder_bias():
    run = random_run(10)
    summary = summarise(run)
    # A large decoder bias moves every x̂ and so their recall; ZD and Ã are built without it.
    bias = np.full(run.dictionary.shape[1], 3.0, dtype=np.float32)
    run.recon_image, run.recon_text = run.recon_image + bias, run.recon_text + bias
    biased = summarise(run)
    assert biased["delta_r"] == summary["delta_r"]
    assert biased["delta_r_with_bias_i2t"] != summary["delta_r_with_bias_i2t"]


def test_without_bimodal_atoms_bimodal_only_recall_is_zero():
    run = random_run(4)
    run.atom_kind_sq = np.array(["image", "text"] * (run.n_atoms // 2), dtype=object)
    summary = summarise(run)
    assert summary["recall_at10_i2t_bimodal_only"] == 0.0
    assert summary["recall_inbatch_bimodal_only"] == 0.0
    assert summary["retrieval_zero_rows_bimodal_only"] == 300
    assert summary["retrieval_zero_rows_decoded"] == 0
    assert summary["delta_r"] == summary["recall_inbatch_decoded"]
    assert summary["delta_r_with_bias_i2t"] == summary["recall_inbatch_i2t_reconstructed"]


def test_seeds_make_inbatch_recall_repeatable():
    run = random_run(5)
    first, again = summarise(run, retrieval_batch=16), summarise(run, retrieval_batch=16)
    assert first == again
    run.seed = 6
    other = summarise(run, retrieval_batch=16)
    # The whole split does not depend on the seed; the batches do.
    assert other["recall_at1_i2t_dense"] == first["recall_at1_i2t_dense"]
    assert other["retrieval_seed"] == 6


def test_a_capped_split_is_a_seeded_subsample():
    run = random_run(7)
    summary = summarise(run, retrieval_max_pairs=100)
    assert summary["retrieval_pairs"] == 100
    assert summary == summarise(run, retrieval_max_pairs=100)
    keep = np.sort(np.random.default_rng(7).choice(300, 100, replace=False))
    ranks = retrieval.partner_ranks(run.image[keep], run.text[keep])
    assert summary["recall_at1_i2t_dense"] == retrieval.recall_at(ranks[0], 1)


def test_rotating_rows_and_dictionary_keeps_every_recall():
    run = random_run(8)
    summary = summarise(run)
    rotation = ortho_group.rvs(run.dictionary.shape[1], random_state=9).astype(np.float32)
    for name in ("image", "text", "recon_image", "recon_text", "dictionary"):
        setattr(run, name, getattr(run, name) @ rotation)
    assert summarise(run) == summary


def test_whole_split_recall_on_real_coco_pairs(coco_features):
    # The README of the shared COCO features reports R@1 over the 500 pairs.
    features = np.load(coco_features)
    image_to_text, text_to_image = retrieval.partner_ranks(features[0], features[1])
    assert retrieval.recall_at(image_to_text, 1) == pytest.approx(0.552, abs=0.002)
    assert retrieval.recall_at(text_to_image, 1) == pytest.approx(0.506, abs=0.002)


def test_any_caption_of_the_right_image_counts_with_pair_ids():
    # Image A has two captions (store text rows 0 and 1), image B one. As eval pairs, image A's
    # row appears twice: without ids, A's second pair loses to A's first caption (cosine 1 > 0.99)
    # and each caption of A ties with A's duplicate row; with ids every one of them is right.
    image = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    text = np.array([[1, 0], [0.99, 0.141], [0, 1]], dtype=np.float32)
    ids = np.array([[0, 0], [0, 1], [1, 2]])
    plain = retrieval.partner_ranks(image, text)
    np.testing.assert_array_equal(plain[0], [0, 1, 0])
    np.testing.assert_array_equal(plain[1], [1, 1, 0])
    grouped = retrieval.partner_ranks(image, text, ids=ids)
    np.testing.assert_array_equal(grouped[0], [0, 0, 0])
    np.testing.assert_array_equal(grouped[1], [0, 0, 0])
    # Unique ids are the plain protocol, and a blocked computation gives the same ranks.
    unique = np.stack([np.arange(3), np.arange(3)], axis=1)
    for got, expected in zip(retrieval.partner_ranks(image, text, ids=unique), plain, strict=True):
        np.testing.assert_array_equal(got, expected)
    blocked = retrieval.partner_ranks(image, text, block_entries=3, ids=ids)
    np.testing.assert_array_equal(blocked[1], grouped[1])


def class_vector_store(seed: int = 0, n: int = 200, classes: int = 10, d: int = 16):
    """A zero-shot store: text row i is the (one-template) class vector of image i's class."""
    from vlmsae.metrics.context import StoreContext

    rng = np.random.default_rng(seed)
    prompts = rng.standard_normal((classes, 1, d))
    prompts /= np.linalg.norm(prompts, axis=2, keepdims=True)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    image = prompts[labels, 0] + 0.3 * rng.standard_normal((n, d))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    return StoreContext(
        image=image.astype(np.float32),
        text=prompts[labels, 0].astype(np.float32),
        seed=seed,
        pairs=np.stack([np.arange(n)] * 2, axis=1),
        labels=labels,
        class_prompts=prompts.astype(np.float32),
    )


# Issue 24, defect 2: repeated texts made every retrieval a tie, counted wrong (R@1 i2t = 0).
def test_one_text_per_class_recall_at1_equals_zero_shot_top1():
    from vlmsae.metrics import zero_shot

    store = class_vector_store()
    recalls = retrieval.summarise_store(store, retrieval.RetrievalSettings()).summary
    accuracy = zero_shot.summarise_store(store, zero_shot.Settings()).summary
    assert 0.3 < accuracy["zero_shot_top1_dense"] < 1
    assert recalls["recall_at1_i2t_dense"] == accuracy["zero_shot_top1_dense"]
    assert recalls["retrieval_grouping"] == "identical rows"
    assert recalls["retrieval_groups_text"] == 10
    assert recalls["retrieval_groups_image"] == 200


# Issue 24, defect 3 in retrieval: R@k (k > 1) by expected rank under random tie-breaking.
def test_recall_at_k_credits_ties_by_expected_rank():
    from vlmsae.metrics.context import StoreContext

    # Orthonormal images, captions permuted (fixed points 0, 1, 2). A non-fixed image has cosine
    # 1 with one wrong caption and 0 with its own and the 8 others: above = 1, tied = 8, so at
    # k = 5 its credit is (5 − 1) / 9; a fixed point has credit 1 at every k.
    n = 10
    permutation = np.array([0, 1, 2, 4, 3, 6, 7, 5, 9, 8])
    image = np.eye(n, dtype=np.float32)
    store = StoreContext(image=image, text=image[permutation], seed=0)
    summary = retrieval.summarise_store(store, retrieval.RetrievalSettings()).summary
    for direction in ("i2t", "t2i"):
        assert summary[f"recall_at1_{direction}_dense"] == pytest.approx(0.3)
        assert summary[f"recall_at5_{direction}_dense"] == pytest.approx(0.3 + 0.7 * 4 / 9)
        assert summary[f"recall_at10_{direction}_dense"] == pytest.approx(1.0)
        assert summary[f"retrieval_tie_rate_{direction}_dense"] == 0.0


def first_seen(labels: np.ndarray) -> np.ndarray:
    """Group ids renumbered in order of first appearance: two labellings of one partition agree."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def test_identical_texts_form_one_group_by_hand():
    # Images e0, e0 + 0.1 e1, e1 of classes 0, 0, 1; texts their class vectors e0, e0, e1. As
    # plain pairs, texts 0 and 1 are one row: each image of class 0 ties its caption with the
    # other's (a miss); grouped, both copies are right for both images.
    image = np.array([[1, 0], [1, 0.1], [0, 1]], dtype=np.float32)
    text = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    ids, grouping = retrieval.pair_groups(image, text)
    assert grouping == "identical rows"
    np.testing.assert_array_equal(first_seen(ids[:, 0]), [0, 1, 2])
    np.testing.assert_array_equal(first_seen(ids[:, 1]), [0, 0, 1])
    plain = retrieval.partner_ranks(image, text)
    np.testing.assert_array_equal(plain[0], [1, 1, 0])
    grouped = retrieval.partner_ranks(image, text, ids=ids)
    np.testing.assert_array_equal(grouped[0], [0, 0, 0])
    # Text → image: text 0's right images are 0 and 1 (both paired with a copy of it).
    np.testing.assert_array_equal(grouped[1], [0, 0, 0])


def test_pair_groups_name_the_grouping_used():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((4, 3)).astype(np.float32)
    ids, grouping = retrieval.pair_groups(rows, rows[::-1])
    assert grouping == "pairs" and len(np.unique(ids[:, 1])) == 4
    # Image row 0 with two captions (store rows): grouped by the store rows alone.
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 3]])
    ids, grouping = retrieval.pair_groups(rows[pairs[:, 0]], rows[pairs[:, 1]], pairs)
    assert grouping == "store rows"
    np.testing.assert_array_equal(first_seen(ids[:, 0]), [0, 0, 1, 2])
    # A scaled copy is identical after normalisation (scaling by 2 is exact in float32).
    text = np.concatenate([rows[:3], 2 * rows[:1]])
    ids, grouping = retrieval.pair_groups(rows, text)
    assert grouping == "identical rows"
    np.testing.assert_array_equal(first_seen(ids[:, 1]), [0, 1, 2, 0])
    # Explicit groups merge with identical rows: {0, 3} by identity, {1, 2} by the file.
    ids, grouping = retrieval.pair_groups(rows, text, text_groups=np.array([5, 7, 7, 9]))
    assert grouping == "groups_path"
    np.testing.assert_array_equal(first_seen(ids[:, 1]), [0, 1, 1, 0])


def test_merged_groups_are_the_connected_components():
    # Rows 0-1 share a first label, rows 1-2 a second: 0, 1, 2 are one group; 3-4 another.
    merged = retrieval.merged_groups(np.array([0, 0, 1, 2, 3]), np.array([9, 8, 8, 7, 7]))
    np.testing.assert_array_equal(first_seen(merged), [0, 0, 0, 1, 1])
    assert set(merged) == {0, 1}  # numbered 0..groups − 1
    np.testing.assert_array_equal(
        first_seen(retrieval.merged_groups(np.array([4, 4, 2]))), [0, 0, 1]
    )


def test_identical_rows_ignore_scale_and_signed_zeros():
    x = np.array([[1, -0.0], [2, 0.0], [0, 0], [np.nan, 1], [0, 3]], dtype=np.float32)
    # Rows 0 and 1 are one direction; the zero and the NaN row share the group of no direction.
    np.testing.assert_array_equal(first_seen(retrieval.identical_rows(x)), [0, 0, 1, 1, 2])


def test_summary_reports_tie_rate_and_zero_rows():
    from vlmsae.metrics.context import StoreContext

    # Image 0 = e0 sees its caption e0 + e1 and caption 1, e0 − e1, at one cosine 1/√2: a tie at
    # the top for 1 of 4 image queries. Every text finds its image first, without a tie (text 0:
    # 1/√2 with image 0, 0 with the others). Pair 3 is zero: a miss both ways.
    image = np.array([[1, 0, 0], [1, -1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    text = np.array([[1, 1, 0], [1, -1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    summary = retrieval.summarise_store(
        StoreContext(image=image, text=text, seed=0), retrieval.RetrievalSettings()
    ).summary
    assert summary["retrieval_tie_rate_i2t_dense"] == 0.25
    assert summary["retrieval_tie_rate_t2i_dense"] == 0.0
    assert summary["retrieval_zero_rows_dense"] == 1
    # Image 0's tie is a miss at R@1 and credit 1 at R@5 (2 tied for 5 places); pair 3 misses.
    assert summary["recall_at1_i2t_dense"] == 0.5
    assert summary["recall_at5_i2t_dense"] == 0.75
    assert summary["retrieval_grouping"] == "pairs"


def test_run_versions_are_grouped_by_the_dense_rows():
    run = random_run(11, n=60)
    run.text[1] = run.text[0]
    # Two reconstructions of one text may differ in the last bits; they stay one group.
    run.recon_text[1] = run.recon_text[0] * np.float32(1 + 1e-6)
    summary = summarise(run)
    assert summary["retrieval_grouping"] == "identical rows"
    assert summary["retrieval_groups_text"] == 59
    ids, _ = retrieval.pair_groups(run.image, run.text)
    ranks = retrieval.rank_counts(run.recon_image, run.recon_text, ids=ids)
    assert summary["recall_at1_i2t_reconstructed"] == retrieval.recall_at(sum(ranks[0]), 1)


def test_a_precomputed_groups_path_reaches_retrieval(tmp_path):
    from vlmsae.metrics.evaluate import _store_context, eval_pairs
    from vlmsae.stores.build import build_store
    from vlmsae.stores.embedding_store import EmbeddingStore

    rng = np.random.default_rng(0)
    image = rng.standard_normal((40, 6)).astype(np.float32)
    text = image + 0.1 * rng.standard_normal((40, 6)).astype(np.float32)
    np.save(tmp_path / "f.npy", np.stack([image, text]))
    # Two captions per item: text rows 2i and 2i + 1 are interchangeable.
    np.save(tmp_path / "g.npy", np.arange(40) // 2)
    spec = {
        "source": "precomputed",
        "precomputed": {"path": str(tmp_path / "f.npy"), "groups_path": str(tmp_path / "g.npy")},
    }
    store = EmbeddingStore(build_store("d", "m", spec, tmp_path / "s.zarr"))
    np.testing.assert_array_equal(store.optional("text_group"), np.arange(40) // 2)
    pairs = eval_pairs(store, 100, 0)
    context = _store_context(store, pairs, 0, None)
    np.testing.assert_array_equal(context.text_groups, pairs[:, 1] // 2)
    summary = retrieval.summarise_store(context, retrieval.RetrievalSettings()).summary
    assert summary["retrieval_grouping"] == "groups_path"
    assert summary["retrieval_groups_text"] == len(np.unique(pairs[:, 1] // 2))


def test_a_groups_path_of_the_wrong_shape_is_refused(tmp_path):
    from vlmsae.errors import InputFileError
    from vlmsae.stores.build import build_store

    np.save(tmp_path / "f.npy", np.random.default_rng(0).standard_normal((2, 20, 4)))
    np.save(tmp_path / "g.npy", np.zeros(19, dtype=np.int64))
    spec = {
        "source": "precomputed",
        "precomputed": {"path": str(tmp_path / "f.npy"), "groups_path": str(tmp_path / "g.npy")},
    }
    with pytest.raises(InputFileError, match="integers"):
        build_store("d", "m", spec, tmp_path / "s.zarr")


def test_mean_reciprocal_rank_by_hand():
    # Three text queries whose audio lands at ranks 1, 2 and 4 (above 0, 1, 3; no ties).
    assert retrieval.mean_reciprocal_rank(np.array([0, 1, 3]), np.zeros(3)) == pytest.approx(
        (1 + 1 / 2 + 1 / 4) / 3
    )
    # Clips e0..e3 and captions t0 = e0, t1 = 2e0 + e1, t2 = 3e0 + 2e1 + e2, t3 = 4e0 + 3e1 +
    # 2e2 + e3: caption i has cosines ∝ (i + 1, i, ..., 1) with clips 0..i, so its own clip comes
    # i-th: text→audio ranks 1, 2, 3, 4. Audio→text: clip 0 finds t0 first (cosine 1); clip 1
    # sees t1 at 1/√5 ≈ 0.447 below t2 (2/√14 ≈ 0.535) and t3 (3/√30 ≈ 0.548): rank 3; clip 2 sees
    # t2 at 1/√14 ≈ 0.267 below t3 (2/√30 ≈ 0.365): rank 2; clip 3 only meets t3: rank 1.
    from vlmsae.metrics.context import StoreContext

    audio = np.eye(4, dtype=np.float32)
    text = np.array([[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 1, 0], [4, 3, 2, 1]], dtype=np.float32)
    summary = retrieval.summarise_store(
        StoreContext(image=audio, text=text, seed=0), retrieval.RetrievalSettings()
    ).summary
    assert summary["mrr_t2i_dense"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert summary["mrr_i2t_dense"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 4)


def test_mean_reciprocal_rank_credits_ties_by_expected_rank():
    # Tied with one wrong candidate at the top: rank 1 or 2, each half the time.
    assert retrieval.mean_reciprocal_rank(np.array([0.0]), np.array([1])) == 0.75
    # Two above, two tied: ranks 3, 4, 5 alike; unscored: 0.
    assert retrieval.mean_reciprocal_rank(np.array([2.0]), np.array([2])) == pytest.approx(
        (1 / 3 + 1 / 4 + 1 / 5) / 3
    )
    assert retrieval.mean_reciprocal_rank(np.array([np.inf]), np.array([0])) == 0.0
    assert np.isnan(retrieval.mean_reciprocal_rank(np.array([]), np.array([])))
    # Orthonormal clips, captions permuted with fixed points 0, 1, 2: a fixed point is first;
    # another query has one wrong candidate at cosine 1 and its partner tied with the other 8 at
    # cosine 0, so it takes ranks 2..10 alike.
    from vlmsae.metrics.context import StoreContext

    permutation = np.array([0, 1, 2, 4, 3, 6, 7, 5, 9, 8])
    image = np.eye(10, dtype=np.float32)
    summary = retrieval.summarise_store(
        StoreContext(image=image, text=image[permutation], seed=0), retrieval.RetrievalSettings()
    ).summary
    spread = sum(1 / r for r in range(2, 11)) / 9
    for direction in retrieval.DIRECTIONS:
        assert summary[f"mrr_{direction}_dense"] == pytest.approx((3 + 7 * spread) / 10)


def test_mean_reciprocal_rank_matches_a_brute_force_ranking():
    rng = np.random.default_rng(12)
    image, text = rng.standard_normal((2, 80, 6)).astype(np.float32)
    above, tied = retrieval.rank_counts(image, text)[1]
    assert not tied.any()  # continuous rows: no ties
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (image, text)]
    similarity = unit[1] @ unit[0].T  # [texts, clips]
    order = np.argsort(-similarity, axis=1)
    ranks = np.argmax(order == np.arange(80)[:, None], axis=1) + 1
    assert retrieval.mean_reciprocal_rank(above, tied) == pytest.approx(np.mean(1 / ranks))


def test_mean_reciprocal_rank_ignores_the_order_of_the_gallery():
    # Listing the pairs in another order changes no query's rank: MRR, dense and on codes, with
    # and without groups, is the same.
    from vlmsae.metrics.context import StoreContext

    run = random_run(13, n=120)
    run.text[1] = run.text[0]  # two identical captions: one group
    permutation = np.random.default_rng(14).permutation(120)
    settings = retrieval.RetrievalSettings()
    summaries = [
        retrieval.summarise_store(
            StoreContext(image=run.image[o], text=run.text[o], seed=0), settings
        ).summary
        for o in (np.arange(120), permutation)
    ]
    assert summaries[0]["retrieval_grouping"] == "identical rows"
    for direction in retrieval.DIRECTIONS:
        key = f"mrr_{direction}_dense"
        assert summaries[1][key] == pytest.approx(summaries[0][key], abs=1e-12)
    codes = [run.codes_image, run.codes_text]
    plain = retrieval.rank_counts(*codes)
    permuted = retrieval.rank_counts(*(c[permutation] for c in codes))
    for (above, tied), (above_p, tied_p) in zip(plain, permuted, strict=True):
        assert retrieval.mean_reciprocal_rank(above_p, tied_p) == pytest.approx(
            retrieval.mean_reciprocal_rank(above, tied), abs=1e-12
        )


def test_codes_are_ranked_as_their_dense_rows_are():
    # The codes version keeps the codes sparse; its ranks are those of the same codes as dense
    # arrays, ties included (codes sharing no atom have cosine 0 with each other).
    run = random_run(15, n=150)
    run.codes_text = sparse.csr_matrix(run.codes_text.multiply(run.atom_kind != "bimodal"))
    dense = [c.toarray() for c in (run.codes_image, run.codes_text)]
    for side_sparse, side_dense in zip(
        retrieval.rank_counts(run.codes_image, run.codes_text, block_entries=1000),
        retrieval.rank_counts(*dense),
        strict=True,
    ):
        for got, expected in zip(side_sparse, side_dense, strict=True):
            np.testing.assert_array_equal(got, expected)
    summary = summarise(run)
    assert summary["mrr_t2i_codes"] == pytest.approx(
        retrieval.mean_reciprocal_rank(*retrieval.rank_counts(*dense)[1])
    )
    # Image and text codes share no atom: every query ties with all 149 wrong candidates.
    assert summary["recall_at1_t2i_codes"] == 0.0
    assert summary["mrr_t2i_codes"] == pytest.approx(sum(1 / r for r in range(1, 151)) / 150)
    assert summary["retrieval_tie_rate_t2i_codes"] == 1.0


def each_batch_alone(image, text, groups, ids=None) -> tuple[float, float]:
    """The reference in-batch R@1: `rank_counts` of each batch's rows on their own."""
    hits = np.zeros(2)
    for group in groups:
        counts = retrieval.rank_counts(
            image[group], text[group], ids=None if ids is None else ids[group]
        )
        hits += [np.count_nonzero(above + tied == 0) for above, tied in counts]
    return hits[0] / groups.size, hits[1] / groups.size


def tied_pairs(seed: int, n: int = 96, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Rows on a coarse grid (ties everywhere), repeated rows, zero and non-finite rows."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    text = (image + rng.integers(-1, 2, size=(n, d))).astype(np.float32)
    image[5:9], text[20:23] = image[4], text[19]
    image[30], text[31], text[40] = 0.0, 0.0, np.nan
    return image, text


@pytest.mark.parametrize("codes", [False, True])
def test_batched_inbatch_recall_equals_each_batch_ranked_alone(codes):
    image, text = tied_pairs(0)
    if codes:  # sparse codes: the block-diagonal product
        image = sparse.csr_array(np.where(np.isfinite(image), np.maximum(image, 0), np.nan))
        text = sparse.csr_array(np.where(np.isfinite(text), np.maximum(text, 0), np.nan))
    groups = retrieval.batches(len(tied_pairs(0)[0]), 8, seed=1)
    shared = np.stack([np.arange(96) // 3, np.arange(96)], axis=1)  # three pairs an image
    for ids in (None, shared):
        expected = each_batch_alone(image, text, groups, ids)
        assert retrieval.inbatch_recall(image, text, groups, ids) == expected
        for chunk in (1, 5):  # batches per product, dividing the batches or not
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(retrieval, "BATCH_CHUNK_ENTRIES", chunk * 8**2)
                assert retrieval.inbatch_recall(image, text, groups, ids) == expected


def test_batch_cosines_are_each_batch_product():
    rng = np.random.default_rng(2)
    rows = (rng.integers(-3, 4, size=(2, 12, 7)) / 4).astype(np.float32)  # exact products
    batched = retrieval._batch_cosines(rows[0], rows[1], (3, 4))
    codes = [sparse.csr_array(np.maximum(r, 0)) for r in rows]
    batched_codes = retrieval._batch_cosines(codes[0], codes[1], (3, 4))
    for batch in range(3):
        part = slice(4 * batch, 4 * batch + 4)
        np.testing.assert_array_equal(batched[batch], rows[0][part] @ rows[1][part].T)
        np.testing.assert_array_equal(
            batched_codes[batch], retrieval._cosines(codes[0][part], codes[1][part])
        )
