"""Test helper: SAEs whose dictionary is given (the truth of a synthetic store, an identity)."""

import numpy as np
import torch

from vlmsae import sae


def oracle_topk(dictionary: np.ndarray, k: int) -> sae.SparseAutoencoder:
    """A TopK SAE in eval mode whose encoder and decoder rows are `dictionary` [p, d], biases 0."""
    model = sae.build("topk", d=dictionary.shape[1], n_atoms=len(dictionary), k=k)
    with torch.no_grad():
        model.W_dec.copy_(torch.as_tensor(dictionary, dtype=model.W_dec.dtype))
        model.W_enc.copy_(torch.as_tensor(dictionary, dtype=model.W_enc.dtype))
        model.b_dec.zero_()
        model.b_enc.zero_()
    return model.eval()
