"""Relaxed archetypal SAE (RA-SAE; Fel et al. 2025, "Archetypal SAE: Adaptive and Stable
Dictionary Learning for Concept Extraction in Large Vision Models", eq. 4): TopK codes over atoms
held near the convex hull of the training data.

Atom k is A_k = W_k·C + Λ_k. C [n_c, d] are candidate points fixed before training from the
training rows (`initialise_from_data`): the k-means centroids of `candidate_pool` rows (the paper's
choice; a centroid is a mean of rows, so conv(C) ⊂ conv(data)) or a uniform sample of them. W
[p, n_c] is row-stochastic (W ≥ 0, each row sums to 1), so W·C lies in conv(C), and the relaxation
Λ [p, d] lets an atom leave the hull by at most δ: ‖Λ_k‖ ≤ δ (δ = 0 is the unrelaxed A-SAE).
After each optimiser step (`project_parameters`) every row of W is projected onto the probability
simplex and every row of Λ onto the δ-ball. C is a buffer: saved and loaded with the weights.

The decoder row is the atom's direction, W_dec[k] = A_k/‖A_k‖, unit-norm as every variant's (the
metrics read a code as the weight of a unit atom); the code carries the atom's scale, which a TopK
code has free through W_enc and b_enc. The encoder is TopK's, the pairing of the paper and of
overcomplete's RATopKSAE. Saved files hold W_dec materialised beside W, C and Λ, so readers of
W_dec and exports see a plain TopK SAE.

Where this differs from overcomplete (KempnerInstitute/overcomplete, RelaxedArchetypalDictionary):
- W there is made row-stochastic by ReLU and row renormalisation, which leaves a row of zeros when
  a step makes every entry non-positive; here by the Euclidean projection onto the simplex (the
  projected-gradient step), whose rows always sum to 1.
- Scale: there a learned global multiplier exp(m) scales every atom; here each atom is unit
  normalised as above, so δ keeps its meaning as a distance to the hull in the data's units.
- Start: both put atom k at candidate k (W one-hot, Λ = 0); here n_candidates ≥ n_atoms, so no
  atom starts at zero. The encoder starts tied to those atoms, as every variant's.
- C holds raw training rows, not rows minus b_dec: the hull of raw embeddings lies away from the
  origin, which is what constrains the atoms' directions; b_dec is the learned pre-bias of every
  variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from vlmsae.registry_base import setting
from vlmsae.sae.topk import TopK, TopKSettings
from vlmsae.sae.variant_registry import register

# Lloyd iterations at most; they stop earlier once no row changes cluster.
KMEANS_ITERATIONS = 30


def project_rows_to_simplex(rows: torch.Tensor) -> torch.Tensor:
    """[n, m] → each row's Euclidean projection onto {w ∈ R^m : w ≥ 0, Σ w = 1}: max(w − θ, 0).

    Michelot's algorithm (1986; Condat 2016): the support S starts as the whole row; then
    θ = (Σ_S w − 1)/|S| and S loses every entry ≤ θ, until S stops changing. θ only grows and S
    only shrinks (never past the row's largest entry), so it ends, with the exact θ, after a few
    rounds of [n, m] sums: cheaper than sorting every row, the textbook rule (Duchi et al. 2008).
    """
    support = torch.ones_like(rows, dtype=torch.bool)
    while True:
        size = support.sum(dim=1, keepdim=True)
        theta = ((rows * support).sum(dim=1, keepdim=True) - 1) / size
        kept = support & (rows > theta)
        if torch.equal(kept, support):
            return (rows - theta).clamp_min(0)
        support = kept


def project_rows_to_ball(rows: torch.Tensor, radius: float) -> torch.Tensor:
    """[n, d] → each row scaled into the Euclidean ball of `radius` (rows inside it unchanged)."""
    norms = rows.norm(dim=1, keepdim=True)
    return rows * (radius / norms.clamp_min(1e-30)).clamp(max=1.0)


def kmeans(rows: torch.Tensor, n_centroids: int, generator: torch.Generator) -> torch.Tensor:
    """[n_centroids, d] Lloyd's k-means centroids of rows [N, d] (N ≥ n_centroids), started at
    distinct rows drawn with `generator`; a cluster left empty keeps its centroid."""
    start = torch.randperm(len(rows), generator=generator)[:n_centroids]
    centroids = rows[start.to(rows.device)]
    assignment = None
    for _ in range(KMEANS_ITERATIONS):
        # argmin ‖x − c‖² = argmax 2x·c − ‖c‖² (‖x‖² is the same for every centroid).
        nearest = (2 * rows @ centroids.T - centroids.pow(2).sum(dim=1)).argmax(dim=1)
        if assignment is not None and torch.equal(nearest, assignment):
            break
        assignment = nearest
        counts = torch.bincount(nearest, minlength=n_centroids).unsqueeze(1)
        sums = torch.zeros_like(centroids).index_add_(0, nearest, rows)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
    return centroids


@dataclass(frozen=True, kw_only=True)
class ArchetypalSettings(TopKSettings):
    delta: float = setting(
        0.1,
        "relaxation δ: how far (Euclidean) an atom may leave the convex hull of the candidate "
        "points, ‖Λ_k‖ ≤ δ; 0 keeps every atom in the hull (A-SAE)",
        minimum=0,
    )
    n_candidates: int = setting(
        2048,
        "candidate points C the atoms are convex combinations of (at least n_atoms: atom k "
        "starts at candidate k)",
        minimum=1,
    )
    candidates: Literal["kmeans", "sample"] = setting(
        "kmeans",
        "how C is chosen from the candidate_pool training rows: kmeans, their k-means centroids "
        "(the paper's choice); sample, n_candidates of the rows drawn uniformly",
    )
    candidate_pool: int = setting(
        16384,
        "training rows drawn before training to choose C from (at least n_candidates)",
        minimum=1,
    )

    def check(self) -> None:
        super().check()
        if self.n_candidates < self.n_atoms:
            raise ValueError(
                f"n_candidates={self.n_candidates} is below n_atoms={self.n_atoms} (each atom "
                "starts at its own candidate); raise n_candidates"
            )
        if self.candidate_pool < self.n_candidates:
            raise ValueError(
                f"candidate_pool={self.candidate_pool} is below n_candidates="
                f"{self.n_candidates}; raise candidate_pool"
            )


@register
class Archetypal(TopK):
    variant = "archetypal"
    Settings = ArchetypalSettings

    def __init__(self, d: int, settings: ArchetypalSettings):
        super().__init__(d, settings)
        self.delta = settings.delta
        # The decoder is derived from W, C and Λ (the W_dec property), not a parameter.
        del self.W_dec
        # Random unit rows until the trainer sets C from the data: a model built without data
        # is still a working random TopK SAE.
        points = torch.randn(settings.n_candidates, d)
        self.register_buffer("candidates", points / points.norm(dim=1, keepdim=True))
        self.mixing = nn.Parameter(torch.eye(settings.n_atoms, settings.n_candidates))
        self.relaxation = nn.Parameter(torch.zeros(settings.n_atoms, d))
        self._tie_encoder()
        # W_dec is written with the weights (the format every reader of sae.safetensors expects)
        # and, being derived, skipped when they are read back.
        self.register_state_dict_post_hook(_add_decoder)
        self.register_load_state_dict_pre_hook(_drop_decoder)

    def atoms(self) -> torch.Tensor:
        """[p, d] A = W·C + Λ, in float32 (outside autocast: the rows are normalised next)."""
        with torch.autocast(self.mixing.device.type, enabled=False):
            mixing, candidates = self.mixing.float(), self.candidates.float()
            return torch.addmm(self.relaxation.float(), mixing, candidates)

    @property
    def W_dec(self) -> torch.Tensor:  # noqa: N802 (the name every variant's decoder has)
        """[p, d] unit-norm decoder rows A_k/‖A_k‖, differentiable in W and Λ."""
        atoms = self.atoms()
        return atoms / atoms.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @property
    def initialisation_rows(self) -> int:
        return self.settings.candidate_pool

    @torch.no_grad()
    def initialise_from_data(
        self, x: torch.Tensor, modality: torch.Tensor, generator: torch.Generator
    ) -> None:
        """C from the training rows x [N, d] (N ≥ candidate_pool; the first candidate_pool are
        used); atom k starts at candidate k, the encoder tied to the atoms."""
        pool = x[: self.settings.candidate_pool].float()
        n_candidates = self.settings.n_candidates
        if self.settings.candidates == "kmeans":
            chosen = kmeans(pool, n_candidates, generator)
        else:
            chosen = pool[torch.randperm(len(pool), generator=generator)[:n_candidates]]
        self.candidates.copy_(chosen)
        self.mixing.copy_(torch.eye(*self.mixing.shape))
        self.relaxation.zero_()
        self._tie_encoder()

    @torch.no_grad()
    def project_parameters(self) -> None:
        """W's rows onto the simplex, Λ's rows into the δ-ball (after each optimiser step)."""
        self.mixing.copy_(project_rows_to_simplex(self.mixing))
        self.relaxation.copy_(project_rows_to_ball(self.relaxation, self.delta))

    def normalise_decoder(self) -> None:
        """Nothing to do: the decoder rows are unit-norm by construction."""

    @torch.no_grad()
    def _tie_encoder(self) -> None:
        self.W_enc.copy_(self.W_dec)


def _add_decoder(module: Archetypal, state: dict, prefix: str, local_metadata: dict) -> None:
    state[prefix + "W_dec"] = module.W_dec.detach()


def _drop_decoder(module: Archetypal, state: dict, prefix: str, *_) -> None:
    state.pop(prefix + "W_dec", None)
