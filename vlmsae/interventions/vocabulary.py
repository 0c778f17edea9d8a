"""The vocabulary stage of concept naming (group-sparse §5.3, Discover-then-Name): the
intervention `naming` builds a store's vocabulary, words and their embeddings in the store's
joint space (the type and its zarr group beside the store: vlmsae.stores.vocabulary).

A vocabulary holds words [V] (distinct strings), vectors [V, d] (float32 unit rows) and true_row
[V] (the row of the store's true dictionary a word stands for, −1 for none). Sources
(`interventions.naming.vocabulary`):
- `wordfreq`: the `n_words` most frequent English words of the wordfreq package, optionally with
  the `n_bigrams` most frequent bigrams of the store's train captions (two adjacent words, both
  in the word list and neither among the BIGRAM_STOP most frequent English words, which are
  almost all function words: "red dress", not "of the");
- `file`: a user's word file, one word or phrase per line;
  both embedded by the store's text encoder (the model entry the store was built with);
- `precomputed`: vectors (.npy [V, d]) and their words (a text file, one per line), for stores
  whose encoder is not available;
- `synthetic`: the true text-side rows of a synthetic store: the text instantiation of each
  bimodal concept c (`concept-<c>`), each text-only atom j (`text-<j>`), and `n_distractors`
  seeded random unit vectors (`distractor-<i>`). Distractors are random combinations of three
  text-side rows with random signs and weights, so they lie in the span the text rows live in
  and are near several true words at once: a learned atom that is a blend of true atoms can be
  named by one of them, which a uniformly random vector (nearly orthogonal to everything in high
  dimension) would never do.
`auto` picks synthetic for synthetic stores, wordfreq for stores embedded from raw data by a
model, and precomputed when `vectors_path` is given; otherwise naming does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vlmsae import datasets
from vlmsae.errors import ConfigError, InputFileError
from vlmsae.interventions import INTERVENTIONS, InterventionSettings
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import EmbeddingStore, TrueStructure
from vlmsae.stores.vocabulary import Vocabulary

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

KINDS = ("wordfreq", "file", "precomputed", "synthetic")
BIGRAM_STOP = 200
DISTRACTOR_PARTS = 3  # text-side rows mixed into one distractor
# Words share the token pattern of the bigram counter: letters with an inner apostrophe.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]+(?:'[^\W\d_]+)?\b"


@dataclass(frozen=True, kw_only=True)
class NamingSettings(InterventionSettings):
    """Config `interventions.naming`."""

    enabled: bool = setting(True, "name every atom of every run with a vocabulary")
    vocabulary: Literal["auto", "wordfreq", "file", "precomputed", "synthetic"] = setting(
        "auto",
        "where the words come from: auto = synthetic for synthetic stores, wordfreq for stores "
        "embedded from raw data, precomputed when vectors_path is set (else naming is skipped)",
    )
    n_words: int = setting(10000, "wordfreq: the most frequent English words taken", minimum=2)
    bigrams: bool = setting(
        False, "wordfreq: add the most frequent bigrams of the store's train captions"
    )
    n_bigrams: int = setting(1000, "wordfreq with bigrams: how many bigrams", minimum=1)
    word_file: str | None = setting(
        None, "file: a text file with one word or phrase per line", format="file"
    )
    vectors_path: str | None = setting(
        None, "precomputed: .npy [V, d] word vectors in the store's space", format="file"
    )
    words_path: str | None = setting(
        None, "precomputed: the V words of vectors_path, one per line", format="file"
    )
    n_distractors: int = setting(200, "synthetic: random words beside the true ones", minimum=0)
    seed: int = setting(0, "synthetic: seed of the distractors", minimum=0)

    def check(self) -> None:
        """Raise ValueError naming the missing path of the chosen source."""
        if self.vocabulary == "file" and self.word_file is None:
            raise ValueError("word_file=None: the file vocabulary needs it; set it")
        if self.vocabulary == "precomputed" and self.vectors_path is None:
            raise ValueError("vectors_path=None: the precomputed vocabulary needs it; set it")
        if self.vectors_path is not None and self.words_path is None:
            raise ValueError("words_path=None: vectors_path needs its words; set it")


def vocabulary_kind(source: str, settings: NamingSettings) -> str | None:
    """The vocabulary source a dataset of `source` gets (`auto` resolved), None when none."""
    if settings.vocabulary != "auto":
        return settings.vocabulary
    if source == "synthetic":
        return "synthetic"
    if datasets.needs_model(source):
        return "wordfreq"
    return "precomputed" if settings.vectors_path is not None else None


@INTERVENTIONS.register("naming", NamingSettings)
def applies(spec: dict, settings: NamingSettings) -> bool:
    """Naming runs where a vocabulary can be had (`vocabulary_kind`)."""
    return vocabulary_kind(spec["source"], settings) is not None


def make_vocabulary(
    words: list[str] | np.ndarray,
    vectors: np.ndarray,
    source: str,
    true_row: np.ndarray | None = None,
) -> Vocabulary:
    """A Vocabulary with the vectors [V, d] scaled to unit rows (true_row −1 when not given)."""
    import numpy as np

    from vlmsae.metrics.rows import unit_rows

    words = np.asarray(words, dtype=object).astype(str)
    if true_row is None:
        true_row = np.full(len(words), -1, dtype=np.int64)
    return Vocabulary(words, unit_rows(vectors), np.asarray(true_row, dtype=np.int64), source)


# ---- the four sources ---------------------------------------------------------------------------
def read_word_list(path: str | Path) -> list[str]:
    """The lines of a word file, stripped, blank lines dropped; empty or repeated → error."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise InputFileError(str(path), "word file not found", "correct the path")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputFileError(
            str(path), f"line {line} is not UTF-8", "save it as UTF-8 (one word per line)"
        ) from error
    words = [line.strip() for line in text.splitlines()]
    words = [word for word in words if word]
    if len(words) < 2:
        raise InputFileError(
            str(path),
            f"the word file holds {len(words)} word(s); naming needs two or more",
            "put one word per line",
        )
    unique, counts = np.unique(np.asarray(words, dtype=str), return_counts=True)
    if np.any(counts > 1):
        repeated = ", ".join(repr(str(word)) for word in unique[counts > 1][:5])
        raise InputFileError(
            str(path), f"repeated words: {repeated}", "keep one line per distinct word"
        )
    return words


def wordfreq_words(n_words: int) -> list[str]:
    """The `n_words` most frequent English words of wordfreq (its large list, as it ships)."""
    import wordfreq

    return wordfreq.top_n_list("en", n_words)


def caption_bigrams(captions: np.ndarray, words: list[str], n_bigrams: int) -> list[str]:
    """The `n_bigrams` most frequent adjacent word pairs of `captions` (lowercased), both words in
    `words` and neither among its first BIGRAM_STOP; ties in alphabetical order."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    if len(captions) == 0:
        return []
    counter = CountVectorizer(ngram_range=(2, 2), token_pattern=TOKEN_PATTERN, lowercase=True)
    counts = np.asarray(counter.fit_transform(captions.astype(object)).sum(axis=0)).ravel()
    bigrams = counter.get_feature_names_out()
    allowed = np.asarray(words[BIGRAM_STOP:], dtype=str)
    parts = np.char.partition(bigrams.astype(str), " ")
    keep = np.isin(parts[:, 0], allowed) & np.isin(parts[:, 2], allowed)
    order = np.argsort(-counts[keep], kind="stable")[:n_bigrams]
    return bigrams[keep][order].tolist()


def synthetic_vocabulary(truth: TrueStructure, n_distractors: int, seed: int) -> Vocabulary:
    """The true text-side rows named by their concepts plus seeded distractors (module doc)."""
    import numpy as np

    kind = np.asarray(truth.atom_kind)
    concept = np.asarray(truth.atom_concept)
    rows = np.arange(len(kind))
    bimodal = kind == "bimodal"
    # A bimodal concept's text instantiation follows its image one (the same row when τ1 = 1):
    # the last row of each bimodal concept.
    last_of_concept = np.zeros(concept.max() + 1, dtype=np.int64)
    np.maximum.at(last_of_concept, concept[bimodal], rows[bimodal])
    bimodal_concepts = np.unique(concept[bimodal])
    text_only = rows[kind == "text"]
    true_rows = np.concatenate([last_of_concept[bimodal_concepts], text_only])
    names = [f"concept-{c}" for c in bimodal_concepts] + [
        f"text-{j}" for j in range(len(text_only))
    ]
    text_side = truth.dictionary[true_rows]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(text_side), size=(n_distractors, DISTRACTOR_PARTS))
    weights = rng.uniform(0.5, 1.5, size=picks.shape) * rng.choice([-1.0, 1.0], size=picks.shape)
    distractors = np.einsum("nk,nkd->nd", weights, text_side[picks])
    return make_vocabulary(
        names + [f"distractor-{i}" for i in range(n_distractors)],
        np.concatenate([text_side, distractors]),
        "synthetic",
        np.concatenate([true_rows, np.full(n_distractors, -1)]),
    )


def precomputed_vocabulary(
    vectors_path: str | Path, words_path: str | Path, dim: int
) -> Vocabulary:
    """Vectors [V, d] from an .npy file with their words from a text file, one per line."""
    import numpy as np

    words = read_word_list(words_path)
    path = Path(vectors_path)
    if not path.is_file():
        raise InputFileError(str(path), "vocabulary vectors not found", "correct vectors_path")
    vectors = np.load(path)
    if vectors.shape != (len(words), dim):
        raise InputFileError(
            str(path),
            f"expected shape [{len(words)}, {dim}] (one row per word of {words_path}, the "
            f"store's dimension), got {list(vectors.shape)}",
            "give one vector per word in the store's embedding space",
        )
    return make_vocabulary(words, vectors, "precomputed")


def embed_words(
    words: list[str],
    model: str,
    model_entry: dict | None = None,
    embed: dict | None = None,
) -> np.ndarray:
    """[V, d] float32 unit text embeddings of `words` by registry model `model` (config entry
    `models.<model>`), batched and on the device of the config `embed` settings."""
    import numpy as np
    import torch

    from vlmsae import models
    from vlmsae.devices import resolve_device
    from vlmsae.embedding import PRECISIONS, EmbedSettings

    settings = EmbedSettings(**(embed or {}))
    device = resolve_device(settings.device, "embed.device")
    encoder = models.load(models.resolve(model, model_entry), device=device)
    dtype = PRECISIONS[settings.resolved_precision(device)]
    batch = settings.text_batch_size
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=dtype is not None):
        for start in range(0, len(words), batch):
            embeddings = encoder.encode_text(words[start : start + batch])
            out.append(torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def build_vocabulary(
    store: EmbeddingStore,
    source: str,
    settings: NamingSettings,
    model_entry: dict | None = None,
    embed: dict | None = None,
) -> Vocabulary:
    """The vocabulary of a store of dataset source `source` under `settings` (module doc);
    real words are embedded by the store's model (`model_entry`: its config `models.<name>`)."""
    settings.check()
    key = "interventions.naming.vocabulary"
    kind = vocabulary_kind(source, settings)
    if kind is None:
        raise ConfigError(key, f"no vocabulary for a '{source}' store", "set vectors_path")
    if kind == "synthetic":
        truth = store.truth()
        if truth is None:
            raise ConfigError(key, f"{store.path} has no ground truth", "use wordfreq or file")
        return synthetic_vocabulary(truth, settings.n_distractors, settings.seed)
    if kind == "precomputed":
        return precomputed_vocabulary(settings.vectors_path, settings.words_path, store.dim)
    if kind == "file":
        words = read_word_list(settings.word_file)
    else:
        words = wordfreq_words(settings.n_words)
        if settings.bigrams:
            captions = store.optional("text_caption")
            if captions is None:
                raise ConfigError(
                    "interventions.naming.bigrams", f"{store.path} holds no captions", "set false"
                )
            train = captions[store.split_rows("text", "train")]
            words += caption_bigrams(train, words, settings.n_bigrams)
    vectors = embed_words(words, store.attrs["model"], model_entry, embed)
    return make_vocabulary(words, vectors, kind)
