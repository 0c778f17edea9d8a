"""The synthetic store the benches build: linear-structure-like sizes (6,144 true atoms, 20 active
per pair), of a bench's dimension and pair count."""

CONCEPTS = {
    "n_bimodal": 4096,
    "n_unimodal": 2048,
    "L": 20,
    "n_active_bimodal": 10,
    "tau1": 1.0,
    "tau2": 0.3,
    "seed": 0,
}


def synthetic_section(d: int, n_pairs: int, eval_fraction: float) -> dict:
    """Config `datasets.<name>.synthetic` of a bench's store."""
    return {**CONCEPTS, "d": d, "n_pairs": n_pairs, "eval_fraction": eval_fraction}
