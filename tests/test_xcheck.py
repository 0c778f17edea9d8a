"""The iso-energy metrics against the authors' own code (issue 12, "Check").

../shared/xcheck/ holds small arrays (`inputs.npz`) and what the iso-energy authors' code computes
on them (`expected.json`); its README defines every value. Each value is recomputed here with
vlmsae's own metric functions and must agree to a relative 1e-6 (lists element-wise).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics import bridge, energy, gap, modality, reconstruction, recovery, retrieval

XCHECK = Path(__file__).resolve().parent.parent.parent / "shared" / "xcheck"
RELATIVE = 1e-6
EPSILON = 0.05  # the modality threshold of the README
BATCH = 256


@pytest.fixture(scope="module")
def xcheck() -> tuple[dict, dict]:
    if not (XCHECK / "inputs.npz").exists() or not (XCHECK / "expected.json").exists():
        pytest.skip(f"{XCHECK} is absent: the cross-check values ship in ../shared beside the repo")
    with np.load(XCHECK / "inputs.npz") as arrays:
        inputs = {name: arrays[name] for name in arrays.files}
    return inputs, json.loads((XCHECK / "expected.json").read_text())


def _modality(inputs: dict) -> dict:
    """Second-moment energies, scores and kinds of the paired codes, as evaluate computes them."""
    z_image, z_text = (sparse.csr_matrix(inputs[m]) for m in ("z_image", "z_text"))
    score = modality.modality_score(energy.energy(z_image, 2), energy.energy(z_text, 2))
    kind = modality.atom_kind(score, EPSILON)
    return {
        "z_image": z_image,
        "z_text": z_text,
        "energy_sq": energy.energy(sparse.vstack([z_image, z_text]), 2),
        "score": score,
        "kind": kind,
    }


def _computed(inputs: dict) -> dict:
    """Every value the README names, from vlmsae's functions."""
    run = _modality(inputs)
    z_image, z_text, dictionary = run["z_image"], run["z_text"], inputs["dictionary"]
    values: dict = {
        "energy_second_moment": run["energy_sq"],
        "modality_score_second_moment": run["score"],
        "bimodal_mask": (run["kind"] == "bimodal").astype(int),
    }

    cosine = bridge.cosine_matrix(dictionary)
    floor = bridge.cosine_floor(cosine)
    bridges = {
        "coactivation": bridge.coactivation_bridge(z_image, z_text, cosine),
        "coactivation_thresholded": bridge.coactivation_bridge(
            z_image, z_text, cosine, floor, bridge.COACTIVATION_PERCENTILE
        ),
        "transport": bridge.transport_bridge(z_image, z_text, cosine, 1),
        "transport_sq": bridge.transport_bridge(z_image, z_text, cosine, 2, floor),
    }
    summary = bridge.summarise_bridges(bridges, run["kind"], run["energy_sq"])
    values.update({key: summary[key] for key in ("rho", "rho_energy", "fda", "fda_first_moment")})

    groups = inputs["recall_permutation"].reshape(-1, BATCH)
    keep = run["kind"] == "bimodal"
    decoded, bimodal, delta = retrieval.delta_r(z_image, z_text, dictionary, keep, groups)
    values.update(recall_at1_reconstruction=decoded, recall_at1_bimodal_only=bimodal, delta_r=delta)

    learned, true = inputs["recovery_dictionary"], inputs["true_dictionary"]
    codes, true_codes = inputs["recovery_codes"], inputs["true_codes"]
    values["recovery_w"] = recovery.transport_distance(
        learned, true, energy.energy(codes, 2), energy.energy(true_codes, 2)
    )
    values["recovery_w_uniform"] = recovery.transport_distance(learned, true)
    values["mma"] = recovery.usage_agreement(codes, true_codes)
    values["mma_energy"] = recovery.usage_agreement(codes, true_codes, energy.energy(codes, 2))

    x_hat = np.asarray(z_image @ dictionary)
    values["r2_overall_image"] = reconstruction.r_squared_overall(inputs["x_image"], x_hat)
    values["mse_sum_image"] = reconstruction.summed_squared_error(inputs["x_image"], x_hat)

    half = len(inputs["x_text"]) // 2
    values["gap_mean_distance"] = gap.mean_distance(inputs["x_image"], inputs["x_text"])
    values["knn10_text_to_images_mean"] = float(
        np.mean(gap.knn_distance(inputs["x_text"][:half], inputs["x_image"][half:], 10))
    )
    return values


def test_every_value_of_the_authors_code_is_reproduced(xcheck):
    inputs, expected = xcheck
    computed = _computed(inputs)
    missing = sorted(set(expected) - set(computed))
    assert not missing, f"no vlmsae value for {missing}"
    for name, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(computed[name], dtype=np.float64),
            np.asarray(value, dtype=np.float64),
            rtol=RELATIVE,
            atol=0,
            err_msg=name,
        )
