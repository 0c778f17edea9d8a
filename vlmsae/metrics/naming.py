"""Concept names of a run's atoms (group-sparse §5.3; vlmsae.interventions.naming), when the
store has a vocabulary (rule `vocabulary`, `interventions.naming`).

Atom columns `name`, `name_score`, `runner_up`, `runner_up_score`; on synthetic stores the
summary keys `naming_accuracy`, `naming_accuracy_bimodal`, `naming_scored_atoms` and
`naming_unnamable_atoms` (atoms matched to true rows by decoder direction, `naming_accuracy`),
the same four ending in `_usage` (matched by what they fire on over the eval rows of both
modalities, `naming_accuracy_by_usage`) and ending in `_random_dictionary` (direction-matched,
for a seeded Gaussian dictionary of the run's shape: the chance level).
"""

from __future__ import annotations

from scipy import sparse

from vlmsae.interventions.naming import (
    name_atoms,
    naming_accuracy,
    naming_accuracy_by_usage,
    naming_accuracy_random_dictionary,
)
from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.registry import Settings


@RUN_METRICS.register("naming", order=95)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """Name every atom with the store's vocabulary; empty without one."""
    if context.vocabulary is None:
        return MetricResult()
    names = name_atoms(context.dictionary, context.vocabulary)
    summary = {}
    if context.truth is not None and context.true_codes_image is not None:
        atom_names = names["name"].to_numpy()
        codes = sparse.vstack([context.codes_image, context.codes_text], format="csr")
        true_codes = sparse.vstack(
            [context.true_codes_image, context.true_codes_text], format="csr"
        )
        summary = {
            **naming_accuracy(atom_names, context.dictionary, context.truth, context.vocabulary),
            **naming_accuracy_by_usage(
                atom_names, codes, true_codes, context.truth, context.vocabulary
            ),
            **naming_accuracy_random_dictionary(
                context.dictionary.shape, context.truth, context.vocabulary, context.seed
            ),
        }
    columns = {name: names[name].to_numpy() for name in names.columns if name != "atom"}
    return MetricResult(atom_columns=columns, summary=summary)
