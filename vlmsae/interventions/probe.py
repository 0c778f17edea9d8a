"""Probe decomposition (group-sparse §5.3, Fig. 5 and App. A.2.3): a linear probe of one concept
on dense image embeddings, read through a run's dictionary.

A logistic probe (scikit-learn, binary: target vs rest) is fitted on dense TRAIN image rows and
scored on EVAL image rows. Its weights θ [d] give each atom k the value α_k = D_k · θ (D [p, d]
the unit decoder rows; group-sparse's α = Wᵀθ). Since an image is x ≈ Σ_k z_k D_k + b, its logit
is θ·x ≈ Σ_k z_k α_k + θ·b: `contribution` = α_k × mean z_k over the eval images is atom k's
average share of the probe's logit, which ranks atoms by what they add to the decision on real
images rather than by direction alone (an atom aligned with θ that never fires contributes 0).

A probe that predicts one class only on the eval images (a rare target under strong
regularisation: the intercept alone decides) reads nothing from the images, whatever its
accuracy (the majority share): it is marked degenerate and no atoms are listed for it.

Targets: on synthetic stores a true bimodal concept (an image carries it when its true code holds
one of the concept's atoms); on stores with attributes (CelebA) the attribute `attribute`; on
stores with class labels a class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.errors import ConfigError
from vlmsae.interventions import INTERVENTIONS, InterventionSettings
from vlmsae.interventions.concepts import images_with_concept, most_frequent_bimodal_concept
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import EmbeddingStore

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from vlmsae.sae.base import SparseAutoencoder

# Raw sources whose stores hold class labels or attributes (precomputed ones do when given
# labels_path).
LABELLED_SOURCES = ("synthetic", "cifar10", "cifar100", "imagenet", "celeba")


@dataclass(frozen=True, kw_only=True)
class ProbeSettings(InterventionSettings):
    """Config `interventions.probe`."""

    enabled: bool = setting(True, "decompose a linear probe into atoms on labelled stores")
    target: int | None = setting(
        None,
        "the probed class index, or on synthetic stores a true bimodal concept id; default the "
        "most frequent one among the train images (classes: of those some eval images carry)",
        minimum=0,
    )
    attribute: str = setting("Blond_Hair", "stores with attributes (CelebA): the probed one")
    max_train: int = setting(20000, "train images the probe is fitted on (seeded)", minimum=2)
    max_eval: int = setting(10000, "eval images it is scored and decomposed on", minimum=2)
    top_atoms: int = setting(10, "atoms reported, by |alpha|", minimum=1)
    C: float = setting(1.0, "inverse L2 strength of the logistic probe", exclusiveMinimum=0)
    seed: int = setting(0, "seed of the row samples", minimum=0)
    batch_size: int = setting(4096, "rows per SAE forward pass", minimum=1)


@INTERVENTIONS.register("probe", ProbeSettings)
def applies(spec: dict, settings: ProbeSettings) -> bool:
    """Stores with a truth, attributes or class labels (LABELLED_SOURCES, labelled precomputed)."""
    if spec["source"] == "precomputed":
        return (spec.get("precomputed") or {}).get("labels_path") is not None
    return spec["source"] in LABELLED_SOURCES


@dataclass(frozen=True)
class ProbeTarget:
    labels: np.ndarray  # [N_img] bool: the image carries the target
    name: str  # what the table's `target` says: concept-<c>, the attribute or the class name
    concept: int | None  # synthetic stores: the true concept id


def default_class(label: np.ndarray, train: np.ndarray, held_out: np.ndarray) -> int | None:
    """The class most frequent among the `train` image rows of those that some but not all of
    the `held_out` rows carry (a probe needs both outcomes on each split); None when no class
    qualifies."""
    import numpy as np

    n_classes = int(label.max()) + 1
    in_train = np.bincount(label[train], minlength=n_classes)
    in_eval = np.bincount(label[held_out], minlength=n_classes)
    usable = (in_train > 0) & (in_train < len(train)) & (in_eval > 0) & (in_eval < len(held_out))
    if not usable.any():
        return None
    return int(np.argmax(np.where(usable, in_train, -1)))


def probe_target(
    store: EmbeddingStore, settings: ProbeSettings, train: np.ndarray, held_out: np.ndarray
) -> ProbeTarget:
    """The binary labels of every image row and the target's name; a default class is chosen
    from the `train` and `held_out` image rows (`default_class`)."""
    import numpy as np

    key = "interventions.probe"
    truth = store.truth()
    if truth is not None:
        bimodal = np.asarray(truth.atom_concept)[np.asarray(truth.atom_kind) == "bimodal"]
        concept = settings.target
        if concept is None:
            concept = most_frequent_bimodal_concept(truth, train)
        elif concept not in bimodal:
            fix = f"use a bimodal concept id in [{bimodal.min()}, {bimodal.max()}]"
            raise ConfigError(f"{key}.target", f"{concept} is no bimodal concept", fix)
        return ProbeTarget(images_with_concept(truth, concept), f"concept-{concept}", concept)
    attributes = store.optional("attributes")
    if attributes is not None:
        names = list(store.attrs.get("attribute_names", []))
        if settings.attribute not in names:
            fix = f"use one of: {', '.join(names)}"
            raise ConfigError(f"{key}.attribute", f"unknown '{settings.attribute}'", fix)
        return ProbeTarget(
            attributes[:, names.index(settings.attribute)] > 0, settings.attribute, None
        )
    label = store.optional("label")
    if label is None:
        fix = "disable interventions.probe for this dataset"
        raise ConfigError(key, f"{store.path} has no labels, attributes or truth", fix)
    target = settings.target
    if target is None:
        target = default_class(label, train, held_out)
        if target is None:
            problem = (
                f"no class of {store.path} is carried by some but not all images of both splits"
            )
            raise ConfigError(key, problem, "disable interventions.probe for this dataset")
    class_names = store.attrs.get("class_names")
    name = class_names[target] if class_names and target < len(class_names) else str(target)
    return ProbeTarget(label == target, name, None)


def _sample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    return np.sort(rng.choice(rows, n, replace=False)) if len(rows) > n else rows


def probe_status(predicted: np.ndarray) -> str:
    """`ok`, or `degenerate: predicts only positive|negative` when the probe's eval
    predictions [n] bool are all one class (positive: carries the target)."""
    if predicted.all() or not predicted.any():
        return f"degenerate: predicts only {'positive' if predicted[0] else 'negative'}"
    return "ok"


def probe_concepts(
    store: EmbeddingStore,
    model: SparseAutoencoder,
    atoms: pd.DataFrame,
    settings: ProbeSettings,
) -> pd.DataFrame:
    """The top `top_atoms` atoms of the probe by |α| (module doc), one row each: `rank` (1 =
    largest |α|), `atom`, `alpha`, `contribution`, `name` (when atoms.parquet has names),
    `atom_kind_sq`, `probe_accuracy` (eval accuracy), `probe_balanced_accuracy` (the mean of
    the per-class recalls: 0.5 for a probe that ignores the images), `probe_baseline` (the
    majority share of the eval images), `probe_status` (`probe_status`), `target`; synthetic
    stores add `matched_concept` (the concept of the true row the atom is matched to by decoder
    direction, −1 when unmatched) and `matches_target`. A degenerate probe gets one row, its
    atom columns missing (NA). `rank`, `atom` and `matched_concept` are nullable integers and
    `matches_target` a nullable boolean, so both cases have one schema."""
    import numpy as np
    import pandas as pd

    from vlmsae.metrics.evaluate import encode
    from vlmsae.metrics.recovery import matched_cosines
    from vlmsae.metrics.rows import unit_rows

    rng = np.random.default_rng(settings.seed)
    train = _sample(store.split_rows("image", "train"), settings.max_train, rng)
    held_out = _sample(store.split_rows("image", "eval"), settings.max_eval, rng)
    target = probe_target(store, settings, train, held_out)
    y_train, y_eval = target.labels[train], target.labels[held_out]
    for split, y in (("train", y_train), ("eval", y_eval)):
        if y.all() or not y.any():
            raise ConfigError(
                "interventions.probe.target",
                f"'{target.name}' is {'on' if y.all() else 'off'} in every {split} image",
                "probe a target that some images carry and others do not",
            )
    x_train, x_eval = store.rows("image", train), store.rows("image", held_out)
    # Imported here: a second to import.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    probe = LogisticRegression(C=settings.C, max_iter=1000).fit(x_train, y_train)
    predicted = probe.predict(x_eval)
    status = probe_status(predicted)
    # A probe that reads nothing from the images has no concepts: no atom is decomposed.
    top = matched = np.zeros(0, dtype=np.int64)  # matched: synthetic stores' true concepts
    alpha = mean_code = np.zeros(0, dtype=np.float32)
    if status == "ok":
        dictionary = unit_rows(model.W_dec.detach().float().cpu().numpy())
        alpha = dictionary @ probe.coef_[0].astype(np.float32)
        codes, _ = encode(model, x_eval, settings.batch_size, 0)
        mean_code = np.asarray(codes.mean(axis=0)).ravel()
        top = np.argsort(-np.abs(alpha), kind="stable")[: settings.top_atoms]
        if target.concept is not None:
            truth = store.truth()
            learned, true, _ = matched_cosines(dictionary, truth.dictionary)
            concept_of_atom = np.full(len(dictionary), -1, dtype=np.int64)
            concept_of_atom[learned] = np.asarray(truth.atom_concept)[true]
            matched = concept_of_atom[top]
    # Series, not arrays: an empty selection keeps the columns' types.
    by_atom = atoms.set_index("atom").loc[top].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "atom": top,
            "alpha": alpha[top],
            "contribution": alpha[top] * mean_code[top],
            **({"name": by_atom["name"]} if "name" in by_atom.columns else {}),
            "atom_kind_sq": by_atom["atom_kind_sq"],
        }
    )
    if status != "ok":
        table = table.reindex([0])  # one row for the scores below, its atom columns missing
    # Nullable integers: a degenerate probe's row keeps the integer columns' type.
    table = table.astype({"rank": "Int64", "atom": "Int64"})
    table["probe_accuracy"] = float(np.mean(predicted == y_eval))
    table["probe_balanced_accuracy"] = float(balanced_accuracy_score(y_eval, predicted))
    table["probe_baseline"] = float(max(y_eval.mean(), 1.0 - y_eval.mean()))
    table["probe_status"] = status
    table["target"] = target.name
    if target.concept is not None:
        table["matched_concept"] = pd.Series(matched, dtype="Int64").reindex(table.index)
        table["matches_target"] = table["matched_concept"] == target.concept
    return table
