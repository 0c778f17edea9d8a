"""What the penalised variants (relu, jumprelu) share: a sparsity penalty λ that can aim at an L0.

Their codes are as sparse as λ makes them, and the L0 a given λ reaches is only known after
training, so families cannot be compared at equal sparsity by fixing λ. With `target_l0` set, λ
is steered during training (the trainer calls `steer_penalty` after each step of the first
`STEERED_SHARE` of the run) by dual ascent on log λ:
    log λ ← log λ + η·clip(log((L0 + 1)/(target + 1)), −1, 1),
with L0 the batch's mean active atoms per row; λ then stays fixed for the rest of the run, so the
final weights are trained at one λ, the one recorded in config.json (`calibrated`). This is the
Lagrange-multiplier control of a constrained objective (GECO, Rezende & Viola 2018), started from
the configured coefficient as a λ warm-up would be. Why not bisection on λ with short runs: a
short run's L0 at a given λ is not the full run's (an L1 SAE keeps sparsifying as it trains), so
it needs several extra runs and still misses the target; steering hits it in the run that is
kept, at no extra cost. A variant whose sparsity moves slowly in training (JumpReLU: log θ moves
about lr per step) also starts at the target, before training and again at the end of the lr
warmup (`initialise_for_target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.variant_registry import SAESettings

# The share of the training steps during which λ is steered; the rest trains at the λ reached.
STEERED_SHARE = 0.75
# η: at most a factor e^η on λ per step, so λ can move by orders of magnitude within a hundred
# steps while each step stays a small change to the objective.
STEERING_RATE = 0.05


@dataclass(frozen=True, kw_only=True)
class PenalisedSettings(SAESettings):
    target_l0: int | None = setting(
        None,
        "mean active atoms per row to reach: the penalty coefficient (its start value) is steered "
        "during training and the value reached recorded in config.json (`calibrated`)",
        minimum=1,
    )

    # The name of the coefficient field that target_l0 steers, set by each variant's settings.
    # Not annotated, so not a field (and no annotation for the schema generator to resolve).
    penalty = ""

    def check(self) -> None:
        super().check()
        if self.target_l0 is None:
            return
        if getattr(self, self.penalty) <= 0:
            raise ValueError(f"target_l0 steers {self.penalty} multiplicatively: set it above 0")
        if self.target_l0 > self.n_atoms:
            raise ValueError(f"target_l0={self.target_l0} exceeds n_atoms={self.n_atoms}")


class Penalised(SparseAutoencoder):
    """An SAE whose sparsity comes from a penalty weighted by `penalty_coefficient` λ.

    λ is a buffer: saved with the weights (and so with training checkpoints) when it is steered,
    kept out of the state dict otherwise, so runs saved before `target_l0` existed still load.
    """

    Settings: ClassVar[type[PenalisedSettings]] = PenalisedSettings

    def __init__(self, d: int, settings: PenalisedSettings):
        super().__init__(d, settings)
        self.target_l0 = settings.target_l0
        self.register_buffer(
            "penalty_coefficient",
            torch.tensor(float(getattr(settings, settings.penalty))),
            persistent=settings.target_l0 is not None,
        )

    def initialise_for_target(self, pre: torch.Tensor) -> None:
        """Called with target_l0 before training and again at the end of the lr warmup, given
        pre-activations [N, p] of training rows: a variant whose sparsity moves slowly in
        training (re)starts near the target."""

    @torch.no_grad()
    def steer_penalty(self, l0: torch.Tensor) -> None:
        """One dual-ascent step of log λ towards target_l0, given a batch's mean L0 (a tensor)."""
        error = torch.log((l0 + 1) / (self.target_l0 + 1)).clamp(-1.0, 1.0)
        self.penalty_coefficient.mul_(torch.exp(STEERING_RATE * error))

    def calibration(self, train_l0: float) -> dict[str, float]:
        """For config.json: the steered coefficient under its setting's name, the target and the
        mean L0 of the last logged training batches."""
        return {
            self.settings.penalty: float(self.penalty_coefficient),
            "target_l0": self.target_l0,
            "train_l0": train_l0,
        }
