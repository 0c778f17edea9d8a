"""Test helper: an EvalContext built from rows alone, for metrics that read no codes.

A plain module, not conftest: tests/cluster has its own conftest, and `from conftest import`
resolves to whichever was imported last."""


def rows_context(image, text, dictionary=None, kinds=None, energy=None, seed=0):
    """An EvalContext for metrics that read rows, dictionary, kinds and energy only.

    Codes are empty and reconstructions equal the rows; without a dictionary, one bimodal atom.
    """
    import numpy as np
    from scipy import sparse

    from vlmsae.metrics.context import EvalContext

    if dictionary is None:
        dictionary, kinds, energy = np.eye(1, image.shape[1]), ["bimodal"], [1.0]
    empty = sparse.csr_matrix((len(image), len(dictionary)), dtype=np.float32)
    kinds = np.asarray(kinds, dtype=object)
    energy = np.asarray(energy, dtype=float)
    return EvalContext(
        image=image,
        text=text,
        codes_image=empty,
        codes_text=empty,
        recon_image=image,
        recon_text=text,
        dictionary=dictionary,
        energy=energy,
        energy_sq=energy,
        atom_kind=kinds,
        atom_kind_sq=kinds,
        seed=seed,
        atoms=None,
    )
