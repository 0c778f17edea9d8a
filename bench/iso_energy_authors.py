"""The iso-energy §4 discrepancy, isolated: generator × trainer (issue 26, item 9).

    python bench/iso_energy_authors.py AUTHORS_CHECKOUT --out results/bench/iso_energy_authors.json

README's recovery table (presets/iso-energy-synthetic.yaml) differs from the paper's §4: at τ1 = 1
our plain MP SAE already reaches mma 0.53 where the paper's reaches 0.29, and at τ1 < 1 SAE-A is
worse than the plain SAE where the paper reports it neutral. This script trains, on the same
arrays, our SAEs with our trainer and the authors' SAEs with the authors' own training code, and
scores every model with OUR metrics (`vlmsae.metrics.recovery`: W and mma in the authors'
conventions, cross-checked against their code by tests/test_xcheck.py; R² overall), so only the
trainer varies.

AUTHORS_CHECKOUT is a checkout of github.com/Parabrele/IsoEnergy (a folder holding src/train.py,
src/losses.py, src/utils.py). Their code is imported from there and run, never copied:
- src/train.py `train_multimodal_sae`: the training loop (each batch is the image rows of b pairs
  then their captions, one loss, gradient clipping at 1.0, one optimiser and scheduler step);
- src/utils.py `initialize_dictionary` (archi "MP"): overcomplete's MpSAE with the dictionary
  left unnormalised (`normalization: identity`, Xavier-uniform init, no decoder bias) and its
  reconstruction loss `losses.mse_l1` with penalty 0 (the mean squared error over every entry).
  utils.py cannot be imported as a module (at import it reads a Hugging Face token file, logs in,
  and imports CLIP, COCO and plotting libraries), so that one function's lines are read from
  the file and run in a namespace holding overcomplete, torch, numpy and their `losses`;
- src/losses.py `alignment_penalty` (alignment_metric "cosim": the negative cosine of the pair's
  codes after zeroing both sides' top-1 atoms), weighted by β as `_train` in utils.py does;
- the optimiser and schedule of `_train` (utils.py): Adam, OneCycleLR to its default max_lr 5e-4
  over all steps. `_train` itself is not called: it sizes the dictionary as d × an integer
  expansion factor (128 atoms at d 512 is not one) and caches checkpoints under ./checkpoints.
Their repository has no generator of the §4 synthetic data (its only toy data are rendered
shapes embedded by CLIP, `get_toy`), so the reverse (our trainer on their data) cannot be run.

Same sizes for both trainers, read from presets/iso-energy-synthetic.yaml: the clip-like
generator (d 512, 40 bimodal concepts, 10 bias atoms per modality, L 10, τ2 0.4, 10,000 pairs,
generator seed 0) at each τ1; 128 atoms, k 10; `train.steps` steps of `train.batch_size` rows
(half images, half their captions for the paired runs), so both see the same number of rows;
scored on the store's eval split (2,000 pairs). β: our SAE-A takes --beta (0.1, what the preset's
β sweep chooses at every τ1, README); the authors' loss is their MSE averaged over the d
dimensions where ours sums them, so their SAE-A gets β / d, the same weight against
reconstruction. Their schedule leaves R² overall at 0.90 after those steps, so their SAEs are
also trained for --authors-steps (4000: R² ≥ 0.99, as the paper reports). Ablations
(--ablations) retrain our plain SAE with settings changed towards theirs, each named after the
difference it tests. Seeds are fixed (generator seed 0; --seeds for the trainings).

Trainings run two at a time (--jobs), one torch thread each. On a shared 2-core machine the
default run took 20 min (load 1.6 rising to 8), with every ablation 22 min (load 4-9); their
4000-step runs take 4-7 min each, and `--authors-steps 0` leaves them out.

Output: the JSON of docs/results.md (`results/bench/iso_energy_authors.json`) and the
generator × trainer table in Markdown on stdout.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import datetime
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import yaml
from scipy import sparse

if TYPE_CHECKING:
    from vlmsae.stores.embedding_store import EmbeddingStore

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "presets" / "iso-energy-synthetic.yaml"
AUTHORS_FILES = ("src/train.py", "src/losses.py", "src/utils.py")
AUTHORS_REPOSITORY = "github.com/Parabrele/IsoEnergy"
AUTHORS_LR = 5e-4  # `_train`'s default lr, the OneCycleLR max_lr (src/utils.py)
DEFAULT_BETA = 0.1  # what the preset's β sweep chooses at every τ1 (README, recovery table)
DEFAULT_TAU1 = (1.0, 0.5)
# The authors' trainer (OneCycleLR to 5e-4) needs about 4 times our 1000 steps to reach the
# R² ≥ 0.99 the paper reports (plain SAE at τ1 = 1: R² overall 0.90 after 1000 steps, 0.996
# after 4000).
AUTHORS_STEPS = 4000
THREADS = 1  # two threads on a shared 2-core machine ran 45× slower (waiting on each other)
# The paper's §4 (W, mma): τ1 = 1 per variant; τ1 ≠ 1 both variants "≈ 0.19 / ≈ 0.82".
PAPER = {
    (1.0, "sae"): (0.396, 0.29),
    (1.0, "sae-a"): (0.184, 0.52),
    "violated": (0.19, 0.82),
}
VARIANTS = ("sae", "sae-a")  # the preset's plain MP SAE and SAE-A
# Our plain SAE retrained with settings of the authors' training: name → (variant keys, train
# keys). `--ablations` picks them; DEFAULT_ABLATIONS run unless told otherwise.
ABLATIONS: dict[str, tuple[dict, dict]] = {
    "no-decoder-bias": ({"decoder_bias": False}, {}),
    "authors-lr": ({}, {"lr": AUTHORS_LR}),
    f"no-decoder-bias-{AUTHORS_STEPS}-steps": ({"decoder_bias": False}, {"steps": AUTHORS_STEPS}),
}
DEFAULT_ABLATIONS = ("no-decoder-bias",)
METRICS = ("recovery_w", "recovery_mma", "r2_overall", "l0")


class BenchError(SystemExit):
    """A one-line reason the bench cannot run (on stderr; exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"iso_energy_authors: {message}")


# ---- the authors' code ----
@dataclass(frozen=True)
class AuthorsCode:
    """The parts of the authors' repository the bench runs."""

    train: types.ModuleType  # src/train.py
    losses: types.ModuleType  # src/losses.py
    initialize_dictionary: Callable  # src/utils.py, read from its syntax tree
    revision: dict  # git commit when the checkout is a git work tree, sha256 of each file


def _import_overcomplete() -> types.ModuleType:
    sys.path.insert(0, str(Path(__file__).parent))
    from train_throughput import import_overcomplete

    try:
        return import_overcomplete()
    except ImportError as error:
        raise BenchError(
            f"the authors' code needs overcomplete ({error}); install it with `make bench` "
            "(bench/requirements.txt)"
        ) from error


def _module_from(path: Path, name: str) -> types.ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        raise BenchError(f"{path} cannot be imported: {error}") from error
    return module


def function_from_source(path: Path, name: str, namespace: dict) -> Callable:
    """The top-level function `name` of the Python file at `path`, compiled alone and run in
    `namespace` (its globals): the rest of the file, and its imports, never run.

    The function's lines run from its `def` to the next line that starts at column 0 (blank and
    comment lines aside): only they are parsed, so the rest of the file may use syntax this
    Python cannot parse (utils.py nests quotes in f-strings, Python ≥ 3.12).
    """
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"def {name}(")), None)
    if start is None:
        raise BenchError(f"{path} defines no function {name!r}: is it the authors' checkout?")
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].strip() and not lines[i][0].isspace() and not lines[i].startswith("#")
        ),
        len(lines),
    )
    # Blank lines keep the line numbers of tracebacks those of the file.
    source = "\n" * start + "".join(lines[start:end])
    tree = ast.parse(source, filename=str(path))
    exec(compile(tree, str(path), "exec"), namespace)  # noqa: S102 - the authors' own code
    return namespace[name]


def _revision(checkout: Path) -> dict:
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return {
        "repository": AUTHORS_REPOSITORY,
        "commit": commit.stdout.strip() if commit.returncode == 0 else None,
        "sha256": {
            name: hashlib.sha256((checkout / name).read_bytes()).hexdigest()
            for name in AUTHORS_FILES
        },
    }


def load_authors(checkout: Path) -> AuthorsCode:
    """The authors' training code from their checkout; BenchError naming what is missing."""
    checkout = Path(checkout)
    missing = [name for name in AUTHORS_FILES if not (checkout / name).is_file()]
    if missing:
        raise BenchError(
            f"{checkout} is not a checkout of {AUTHORS_REPOSITORY} (no {', '.join(missing)}); "
            f"clone it and pass its folder"
        )
    overcomplete = _import_overcomplete()
    losses = _module_from(checkout / "src" / "losses.py", "isoenergy_losses")
    train = _module_from(checkout / "src" / "train.py", "isoenergy_train")
    namespace = {"overcomplete": overcomplete, "torch": torch, "np": np, "losses": losses}
    initialize = function_from_source(
        checkout / "src" / "utils.py", "initialize_dictionary", namespace
    )
    return AuthorsCode(train, losses, initialize, _revision(checkout))


# ---- the data ----
def read_preset(path: Path = PRESET) -> dict:
    """The preset's config: datasets, variants, train, evaluation."""
    return yaml.safe_load(Path(path).read_text())


def synthetic_specs(preset: dict, tau1s: tuple[float, ...]) -> dict[float, tuple[str, dict]]:
    """{τ1: (dataset name, config entry)} of the preset's synthetic datasets at the asked τ1."""
    found = {
        float(spec["synthetic"]["tau1"]): (name, spec)
        for name, spec in preset["datasets"].items()
        if spec["source"] == "synthetic"
    }
    absent = [tau1 for tau1 in tau1s if tau1 not in found]
    if absent:
        raise BenchError(
            f"the preset has no synthetic dataset at tau1 {absent}; it has {sorted(found)}"
        )
    return {tau1: found[tau1] for tau1 in tau1s}


def build(spec: tuple[str, dict], folder: Path) -> EmbeddingStore:
    """The EmbeddingStore of one preset dataset, written under `folder`."""
    from vlmsae.stores.build import build_store
    from vlmsae.stores.embedding_store import EmbeddingStore

    name, entry = spec
    path = folder / f"{name}.zarr"
    build_store(name, "generator", entry, path)
    return EmbeddingStore(path)


# ---- training ----
@dataclass(frozen=True)
class Fitted:
    """A trained SAE as the scores need it: its dictionary [p, d] (rows as learned) and what it
    does to the eval rows: codes [N, p] and reconstructions [N, d] per modality."""

    dictionary: np.ndarray
    codes: dict[str, sparse.csr_matrix]
    reconstruction: dict[str, np.ndarray]
    seconds: float


def _eval_rows(store: EmbeddingStore, max_pairs: int) -> dict[str, np.ndarray]:
    """The eval pairs [n, 2] the workflow's metrics would take (`EvalSettings.seed`) and their
    image and text rows [n, d]."""
    from vlmsae.metrics.evaluate import EvalSettings, eval_pairs

    pairs = eval_pairs(store, max_pairs, EvalSettings.seed)
    return {
        "pairs": pairs,
        **{m: store.rows(m, pairs[:, i]) for i, m in enumerate(("image", "text"))},
    }


def train_ours(
    store: EmbeddingStore,
    entry: dict,
    beta: float,
    train: dict,
    mixture: str,
    seed: int,
    folder: Path,
    max_pairs: int,
) -> Fitted:
    """Our trainer (`vlmsae.training.trainer.train`) on the variant config `entry` (the preset's,
    β put in place of its sweep), train settings `train` (config `train` keys) and `mixture`."""
    from vlmsae.metrics.evaluate import encode
    from vlmsae.training.regularisers import SWEEP
    from vlmsae.training.trainer import TrainSettings
    from vlmsae.training.trainer import train as train_sae
    from vlmsae.training.variants import Variant

    entry = {**entry, **({"alignment": beta} if entry.get("alignment") == SWEEP else {})}
    variant = Variant.from_config("bench", entry)
    started = time.perf_counter()
    model = train_sae(
        store,
        variant,
        TrainSettings(**{**train, "device": "cpu"}),
        mixture,
        seed,
        folder,
        progress=False,
    )
    seconds = time.perf_counter() - started
    rows = _eval_rows(store, max_pairs)
    codes, reconstruction = {}, {}
    for index, m in enumerate(("image", "text")):
        codes[m], reconstruction[m] = encode(model, rows[m], 1024, index)
    return Fitted(model.W_dec.detach().float().numpy(), codes, reconstruction, seconds)


def train_authors(
    authors: AuthorsCode,
    store: EmbeddingStore,
    beta: float,
    n_atoms: int,
    k: int,
    train: dict,
    seed: int,
    folder: Path,
    max_pairs: int,
) -> Fitted:
    """The authors' MP SAE trained by their code on the store's train pairs: `train["steps"]`
    batches of `train["batch_size"] // 2` pairs, drawn as shuffled epochs back to back, with
    their loss (their MSE + β · their alignment penalty), Adam and OneCycleLR (module
    docstring). β = 0 is their plain SAE (`_train(beta=0)`)."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    pairs = store.split_pairs("train")
    image = torch.from_numpy(store.rows("image", pairs[:, 0]))
    text = torch.from_numpy(store.rows("text", pairs[:, 1]))
    steps, pairs_per_batch = int(train["steps"]), int(train["batch_size"]) // 2
    torch.manual_seed(seed)
    sae, reconstruction_loss, _ = authors.initialize_dictionary(
        "MP", k, store.dim, n_atoms, None, pairs_per_batch, device="cpu"
    )
    sae.train()

    def criterion(*args, **kwargs):
        alignment = authors.losses.alignment_penalty(
            *args, **kwargs, penalty=beta, alignment_metric="cosim"
        )
        return reconstruction_loss(*args, **kwargs) + alignment

    dataset = TensorDataset(image, text)
    generator = torch.Generator().manual_seed(seed)
    # num_samples beyond the dataset: whole permutations back to back, as epochs are.
    sampler = RandomSampler(dataset, num_samples=steps * pairs_per_batch, generator=generator)
    loader = DataLoader(dataset, batch_size=pairs_per_batch, sampler=sampler)
    optimiser = torch.optim.Adam(sae.parameters(), lr=AUTHORS_LR)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=AUTHORS_LR, total_steps=len(loader)
    )
    started = time.perf_counter()
    # monitoring 1 as `_train` has it (with 0 their loop fails at its final checkpoint); its
    # one line per epoch goes to stderr, stdout is the table's.
    with contextlib.redirect_stdout(sys.stderr):
        authors.train.train_multimodal_sae(
            sae,
            loader,
            criterion,
            optimiser,
            scheduler=scheduler,
            nb_epochs=1,
            device="cpu",
            monitoring=1,
            verbose=False,
            checkpoint_path=str(folder),
            checkpoint_name="sae",
        )
    seconds = time.perf_counter() - started
    sae.eval()
    rows = _eval_rows(store, max_pairs)
    codes, reconstruction = {}, {}
    with torch.no_grad():
        for m in ("image", "text"):
            _, z, x_hat = sae(torch.from_numpy(rows[m]))
            codes[m] = sparse.csr_matrix(z.numpy())
            codes[m].eliminate_zeros()
            reconstruction[m] = x_hat.numpy()
    return Fitted(sae.get_dictionary().detach().numpy(), codes, reconstruction, seconds)


# ---- scores ----
def score(fitted: Fitted, store: EmbeddingStore, max_pairs: int) -> dict[str, float]:
    """Our W and mma (`recovery_summary`), R² overall and L0 of a fitted SAE on the eval pairs."""
    from vlmsae.metrics.reconstruction import l0, r_squared_overall
    from vlmsae.metrics.recovery import recovery_summary

    truth = store.truth()
    pairs = _eval_rows(store, max_pairs)["pairs"]
    true = {
        m: truth.codes[m].to_csr(len(truth.dictionary))[pairs[:, i]]
        for i, m in enumerate(("image", "text"))
    }
    codes = sparse.vstack([fitted.codes["image"], fitted.codes["text"]], format="csr")
    recovery = recovery_summary(fitted.dictionary, codes, truth, true["image"], true["text"])
    x = np.concatenate([store.rows(m, pairs[:, i]) for i, m in enumerate(("image", "text"))])
    x_hat = np.concatenate([fitted.reconstruction["image"], fitted.reconstruction["text"]])
    return {
        "recovery_w": recovery["recovery_w"],
        "recovery_mma": recovery["recovery_mma"],
        "r2_overall": r_squared_overall(x, x_hat),
        "l0": l0(codes),
    }


# ---- the comparison ----
@dataclass(frozen=True)
class Case:
    """One training: τ1, the preset variant, the trainer, the seed.

    trainer: "ours" (the preset's settings), "ours:<ablation>" (one of ABLATIONS), "authors"
    (their code, the preset's steps and batch) or "authors:steps=<n>" (their code for n steps).
    """

    tau1: float
    variant: str
    trainer: str
    seed: int


def cases(
    tau1s: list[float], seeds: list[int], ablations: list[str], authors_steps: int
) -> list[Case]:
    """Every training of the comparison: both variants by our trainer and the authors' (and
    theirs again for `authors_steps` steps, unless 0), each ablation of our plain SAE; per τ1
    and seed."""
    trainers = ["ours", "authors", *([f"authors:steps={authors_steps}"] if authors_steps else [])]
    pairs = [(v, t) for v in VARIANTS for t in trainers]
    pairs += [("sae", f"ours:{name}") for name in ablations]
    return [Case(tau1, v, t, seed) for tau1 in tau1s for v, t in pairs for seed in seeds]


def run_case(
    case: Case,
    store: EmbeddingStore,
    preset: dict,
    authors: AuthorsCode | None,
    beta: float,
    folder: Path,
) -> dict:
    """The scores of one case's SAE (`score`) and its training seconds."""
    entry = preset["variants"][case.variant]
    max_pairs = int(preset["evaluation"]["max_pairs"])
    train = dict(preset["train"])
    trainer, _, option = case.trainer.partition(":")
    if trainer == "authors":
        from vlmsae.training.variants import Variant, expand_preset

        if option:
            train["steps"] = int(option.removeprefix("steps="))
        settings = Variant.from_config(case.variant, {**entry, "alignment": 0.0}).settings
        aligned = bool(expand_preset(entry).get("alignment"))
        fitted = train_authors(
            authors,
            store,
            beta / store.dim if aligned else 0.0,
            settings.n_atoms,
            settings.k,
            train,
            case.seed,
            folder,
            max_pairs,
        )
    else:
        variant_keys, train_keys = ABLATIONS[option] if option else ({}, {})
        fitted = train_ours(
            store,
            {**entry, **variant_keys},
            beta,
            {**train, **train_keys},
            preset["mixtures"][0],
            case.seed,
            folder,
            max_pairs,
        )
    return {**score(fitted, store, max_pairs), "train_seconds": round(fitted.seconds, 2)}


_AUTHORS: dict[Path, AuthorsCode] = {}  # per worker process: their code, loaded once


def _run_in_worker(
    case: Case, store_path: Path, preset: dict, checkout: Path, beta: float, folder: Path
) -> dict:
    """`run_case` in a worker process (one torch thread), the store opened from its path."""
    from vlmsae.stores.embedding_store import EmbeddingStore

    torch.set_num_threads(THREADS)
    if case.trainer.startswith("authors") and checkout not in _AUTHORS:
        _AUTHORS[checkout] = load_authors(checkout)
    folder.mkdir()
    row = run_case(case, EmbeddingStore(store_path), preset, _AUTHORS.get(checkout), beta, folder)
    return {**dataclasses.asdict(case), **row}


def summarise(results: list[dict]) -> list[dict]:
    """Mean, std (over seeds; None for one seed) and n per (τ1, variant, trainer)."""
    groups: dict[tuple, list[dict]] = {}
    for row in results:
        groups.setdefault((row["tau1"], row["variant"], row["trainer"]), []).append(row)
    summary = []
    for (tau1, variant, trainer), rows in groups.items():
        entry = {"tau1": tau1, "variant": variant, "trainer": trainer, "n": len(rows)}
        for metric in METRICS:
            values = [row[metric] for row in rows]
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(entry)
    return summary


def _cell(entry: dict | None) -> str:
    if entry is None:
        return ""

    def value(metric: str) -> str:
        std = entry[f"{metric}_std"]
        return f"{entry[metric]:.3f}" + ("" if std is None else f" ± {std:.3f}")

    return f"{value('recovery_w')} / {value('recovery_mma')}"


def paper_cell(tau1: float, variant: str) -> str:
    w, mma = PAPER.get((tau1, variant), PAPER["violated"])
    return f"{w} / {mma}" if tau1 == 1.0 else f"≈ {w} / ≈ {mma}"


def markdown(summary: list[dict]) -> str:
    """The generator × trainer table: one row per (τ1, variant), W / mma per trainer, then the
    paper's; R² overall of each trainer in a second table."""
    trainers = list(dict.fromkeys(entry["trainer"] for entry in summary))
    index = {(e["tau1"], e["variant"], e["trainer"]): e for e in summary}
    keys = list(dict.fromkeys((e["tau1"], e["variant"]) for e in summary))
    header = ["τ1", "variant", *(f"{t} W / mma" for t in trainers), "paper W / mma"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for tau1, variant in keys:
        cells = [_cell(index.get((tau1, variant, t))) for t in trainers]
        lines.append(
            f"| {tau1:g} | {variant} | " + " | ".join(cells) + f" | {paper_cell(tau1, variant)} |"
        )
    lines += ["", "| τ1 | variant | " + " | ".join(f"{t} R² overall" for t in trainers) + " |"]
    lines.append("|" + "---|" * (2 + len(trainers)))
    for tau1, variant in keys:
        cells = [
            "" if (e := index.get((tau1, variant, t))) is None else f"{e['r2_overall']:.3f}"
            for t in trainers
        ]
        lines.append(f"| {tau1:g} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help=f"a checkout of {AUTHORS_REPOSITORY}")
    parser.add_argument("--out", type=Path, default=Path("results/bench/iso_energy_authors.json"))
    parser.add_argument("--tau1", type=float, nargs="+", default=list(DEFAULT_TAU1))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="our SAE-A's β")
    parser.add_argument(
        "--authors-steps",
        type=int,
        default=AUTHORS_STEPS,
        help="also train the authors' SAEs for this many steps (0: no)",
    )
    parser.add_argument(
        "--ablations", nargs="*", choices=list(ABLATIONS), default=list(DEFAULT_ABLATIONS)
    )
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once")
    parser.add_argument("--preset", type=Path, default=PRESET)
    args = parser.parse_args(argv)

    checkout = args.checkout.resolve()
    authors = load_authors(checkout)
    preset = read_preset(args.preset)
    specs = synthetic_specs(preset, tuple(args.tau1))
    d = stores_dim(specs)
    todo = cases(args.tau1, args.seeds, args.ablations, args.authors_steps)
    started, load_before = time.perf_counter(), os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="iso_energy_authors-") as tmp:
        folder = Path(tmp)
        stores = {tau1: build(spec, folder).path for tau1, spec in specs.items()}
        # The authors' long runs first, so that the workers finish together.
        order = sorted(range(len(todo)), key=lambda i: not todo[i].trainer.startswith("authors:"))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [
                pool.submit(
                    _run_in_worker,
                    todo[i],
                    stores[todo[i].tau1],
                    preset,
                    checkout,
                    args.beta,
                    folder / f"run{i}",
                )
                for i in order
            ]
            for future in as_completed(futures):
                results.append(future.result())
                print(f"[bench] {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    position = {dataclasses.astuple(case): i for i, case in enumerate(todo)}
    results.sort(key=lambda row: position[tuple(row[f.name] for f in dataclasses.fields(Case))])
    summary = summarise(results)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "authors": authors.revision,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "overcomplete": sys.modules["overcomplete"].__version__,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "jobs": args.jobs,
            "threads_per_job": THREADS,
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {
            "preset": str(args.preset),
            "datasets": {f"{tau1:g}": spec[1]["synthetic"] for tau1, spec in specs.items()},
            "variants": {v: preset["variants"][v] for v in VARIANTS},
            "train": preset["train"],
            "eval_pairs": int(preset["evaluation"]["max_pairs"]),
            "seeds": args.seeds,
            "beta_ours": args.beta,
            "beta_authors": args.beta / d,
            "authors_lr": AUTHORS_LR,
            "authors_steps": args.authors_steps,
            "ablations": {
                name: {"variant": keys, "train": train}
                for name, (keys, train) in ABLATIONS.items()
                if name in args.ablations
            },
            "reverse": "not run: the authors' repository has no generator of the §4 data",
        },
        "results": results,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(summary))
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 0


def stores_dim(specs: dict[float, tuple[str, dict]]) -> int:
    """The embedding dimension d of the preset's synthetic datasets (one for all)."""
    dims = {int(spec["synthetic"]["d"]) for _, spec in specs.values()}
    if len(dims) != 1:
        raise BenchError(f"the synthetic datasets differ in d ({sorted(dims)}); β / d is ambiguous")
    return dims.pop()


if __name__ == "__main__":
    sys.exit(main())
