"""`vlmsae`: what Snakemake does not do: list, read, compare and export runs; verify outputs.

Every handler imports what it needs itself: torch, pandas, zarr and snakemake take seconds to
import, and `vlmsae --help` should not wait for them. Expected errors (missing or unreadable
files, a bad config, VlmsaeError) print one line `vlmsae: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmsae.errors import InputFileError, VlmsaeError, check_output_folders

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from vlmsae.sae.base import SparseAutoencoder
    from vlmsae.stores.embedding_store import EmbeddingStore

EXIT_ERROR = 2  # argparse's status for a usage error: the user has something to fix
# A run's folder below results/sae/ and results/metrics/ (vlmsae.runs.Run.path).
RUN_PATTERN = re.compile(r"[^/]+/[^/]+/[^/]+/\d+-\d+/seed\d+")
RUN_FORM = "dataset/model/variant/mixture/seedN"
RUN_STAGES = ("sae", "metrics")
ENCODE_ROWS = 4096  # text rows encoded at a time by top-atoms
EXPORT_FORMATS = ("saelens", "sparsify")


@dataclass(frozen=True)
class RunFolders:
    """Where the workflow writes one run's files below a results root (rules/*.smk)."""

    root: Path
    run: str  # dataset/model/variant/mixture/seedN

    @property
    def sae(self) -> Path:
        return self.root / "sae" / self.run

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / self.run

    @property
    def weights(self) -> Path:
        return self.sae / "sae.safetensors"

    @property
    def summary(self) -> Path:
        return self.metrics / "summary.json"

    @property
    def atoms(self) -> Path:
        return self.metrics / "atoms.parquet"

    @property
    def store(self) -> Path:
        dataset, model = self.run.split("/")[:2]
        return self.root / "embeddings" / dataset / f"{model}.zarr"

    def need(self, path: Path) -> Path:
        """`path`, or InputFileError naming the snakemake command that builds it."""
        if not path.exists():
            raise InputFileError(str(path), "not found", f"run `snakemake {path}` first")
        return path


def resolve_run(text: str, results: Path) -> RunFolders:
    """The folders of a run given as `dataset/model/variant/mixture/seedN` (below `results`), as
    a results/sae/... or results/metrics/... folder, or as a file in one (whose results root is
    then the folder above sae/ or metrics/)."""
    path = Path(text)
    if path.is_file():
        path = path.parent
    parts = path.parts
    run = "/".join(parts[-5:])
    if len(parts) < 5 or not RUN_PATTERN.fullmatch(run):
        raise VlmsaeError(
            f"'{text}' names no run; fix: give {RUN_FORM}, or a results/sae/... or "
            "results/metrics/... folder of one (`vlmsae runs` lists them)"
        )
    if len(parts) >= 6 and parts[-6] in RUN_STAGES:
        return RunFolders(Path(*parts[:-6]), run)
    return RunFolders(results, run)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; InputFileError when it is missing or truncated."""
    if not path.is_file():
        raise InputFileError(str(path), "not found", f"run `snakemake {path}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputFileError(
            str(path),
            f"not valid JSON ({error.msg}, line {error.lineno}): an interrupted write?",
            "delete it and re-run snakemake",
        ) from error


def read_parquet(path: Path) -> pd.DataFrame:
    """The table in `path`; InputFileError when it is missing or not a parquet file."""
    import pandas as pd

    if not path.is_file():
        raise InputFileError(str(path), "not found", f"run `snakemake {path}` first")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFileError(
            str(path), f"not a readable parquet file ({error})", "delete it and re-run snakemake"
        ) from error


def read_config(path: Path) -> dict[str, Any]:
    """The checked config in `path`, defaults filled in; InputFileError for a missing file or
    bad YAML, ConfigError for a bad key."""
    import yaml

    from vlmsae.config_cache import checked_config

    if not path.is_file():
        raise InputFileError(str(path), "config file not found", "pass --configfile PATH")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise InputFileError(str(path), f"not valid YAML ({problem})", "fix the file") from error
    if not isinstance(config, dict):
        raise InputFileError(str(path), "not a YAML mapping of config keys", "see config.yaml")
    return checked_config(config)


def open_store(path: Path, verify: bool = False) -> EmbeddingStore:
    """The embedding store at `path` (every chunk checked against its manifest with `verify`);
    InputFileError when it is not a zarr store, DamagedOutputError when it is damaged."""
    from vlmsae.stores.embedding_store import EmbeddingStore

    return EmbeddingStore(path, verify=verify)


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _columns(rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Rows as aligned text: the label left-aligned, the cells right-aligned in columns."""
    label_width = max(len(label) for label, _ in rows)
    n_cells = max(len(cells) for _, cells in rows)
    widths = [max(len(cells[i]) for _, cells in rows if len(cells) > i) for i in range(n_cells)]
    lines = []
    for label, cells in rows:
        padded = [cell.rjust(width) for cell, width in zip(cells, widths, strict=False)]
        lines.append("  ".join([label.ljust(label_width), *padded]).rstrip())
    return "\n".join(lines)


def _by_family(cells: dict[str, Sequence[str]], header: Sequence[str] = ()) -> str:
    """Summary keys and their cells under a line per metric family (vlmsae.tables.summary)."""
    from vlmsae.tables.summary import group_by_family

    rows: list[tuple[str, Sequence[str]]] = [("", header)] if header else []
    for family, keys in group_by_family(cells):
        rows.append((f"[{family}]", ()))
        rows.extend((f"  {key}", cells[key]) for key in keys)
    return _columns(rows)


def _run_health(summary: Path) -> str:
    """The `health` of a run's summary.json (vlmsae.health): "-" before its metrics exist or
    when they predate the health checks, "unreadable summary.json" for a damaged file."""
    if not summary.exists():
        return "-"
    try:
        return str(read_json(summary).get("health", "-"))
    except InputFileError:
        return "unreadable summary.json"


def _runs(args: argparse.Namespace) -> None:
    from vlmsae.runs import runs

    for run in runs(read_config(args.configfile)):
        summary = RunFolders(args.results, run.path).summary
        state = "done" if summary.exists() else "pending"
        # A run that scores another dataset's SAE (`sae_from`) names it in a fourth column.
        source = "" if run.trains else f"\tsae: {run.sae_path}"
        print(f"{run.path}\t{state}\t{_run_health(summary)}{source}")


def _summary(args: argparse.Namespace) -> None:
    summary = read_json(resolve_run(args.run, args.results).summary)
    print(_by_family({key: [_format(value)] for key, value in summary.items()}))


def _compare(args: argparse.Namespace) -> None:
    folders = [resolve_run(run, args.results) for run in args.runs]
    summaries = [read_json(run.summary) for run in folders]
    print(f"a: {folders[0].run}\nb: {folders[1].run}")
    print(_by_family(_side_by_side(*summaries), header=["a", "b", "b - a"]))
    print()
    _compare_dictionaries(folders, args.n)


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[str]]:
    """Per key of either summary: its value in a, in b (blank where absent) and b − a."""
    cells = {}
    for key in [*a, *(key for key in b if key not in a)]:
        values = [_format(s[key]) if key in s else "" for s in (a, b)]
        both = key in a and key in b and _is_number(a[key]) and _is_number(b[key])
        cells[key] = [*values, _format(b[key] - a[key]) if both else ""]
    return cells


def _compare_dictionaries(folders: list[RunFolders], n_pairs: int) -> None:
    """Hungarian matching of the two runs' unit decoder rows (vlmsae.metrics.stability)."""
    from safetensors.numpy import load_file

    from vlmsae.metrics.stability import matched_atoms

    dictionaries = [load_file(run.need(run.weights))["W_dec"] for run in folders]
    if dictionaries[0].shape[1] != dictionaries[1].shape[1]:
        raise VlmsaeError(
            f"the runs' atoms have different dimensions ({dictionaries[0].shape[1]} and "
            f"{dictionaries[1].shape[1]}); fix: compare runs of stores of one model"
        )
    matched = matched_atoms(*dictionaries)
    print(
        f"dictionaries: mean matched cosine {matched['cosine'].mean():.4f} over {len(matched)} "
        "pairs (Hungarian matching of the unit decoder rows)"
    )
    for side, run in zip("ab", folders, strict=True):
        if run.atoms.is_file():  # kinds and energies only label the pairs
            atoms = read_parquet(run.atoms).set_index("atom")
            matched[f"kind_{side}"] = atoms.loc[matched[f"atom_{side}"], "atom_kind"].to_numpy()
            matched[f"energy_{side}"] = atoms.loc[matched[f"atom_{side}"], "energy"].to_numpy()
    top = matched.sort_values("cosine", ascending=False, kind="stable").head(n_pairs)
    print(f"top {len(top)} matched pairs by cosine:")
    print(top.to_string(index=False, float_format=lambda value: f"{value:.4g}"))


def _top_atoms(args: argparse.Namespace) -> None:
    from vlmsae import sae

    folders = resolve_run(args.run, args.results)
    atoms = read_parquet(folders.atoms)
    # Eval rows are N images and their N captions: the mean is the share of all rows.
    atoms["frequency"] = (atoms["frequency_image"] + atoms["frequency_text"]) / 2
    top = atoms.sort_values(args.by, ascending=False, kind="stable").head(args.n)
    store = open_store(folders.store)
    model = sae.load(folders.need(folders.weights).parent)
    rows, values = top_text_rows(model, store, top["atom"].to_numpy(), args.captions)
    captions = _captions(store, rows)
    for rank, (atom, atom_rows, atom_values) in enumerate(
        zip(top.itertuples(), rows.T, values.T, strict=True), start=1
    ):
        name = f"  name: {atom.name}" if "name" in top.columns else ""
        print(
            f"#{rank} atom {atom.atom} ({atom.atom_kind})  energy {atom.energy:.4g}  "
            f"frequency {atom.frequency:.4g}{name}"
        )
        for row, value in zip(atom_rows, atom_values, strict=True):
            if value > 0:  # an atom silent on the text rows has fewer captions than asked
                print(f"  {value:>9.4g}  text row {row}{captions.get(row, '')}")


def top_text_rows(
    model: SparseAutoencoder, store: EmbeddingStore, atoms: np.ndarray, per_atom: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows [m, a], codes [m, a]): the store's eval text rows with the m = per_atom largest codes
    on each of `atoms` [a], largest first; a code of 0 marks fewer active rows than m.

    The eval text rows are encoded ENCODE_ROWS at a time, keeping only the running top m.
    """
    import numpy as np

    from vlmsae.metrics.evaluate import encode

    eval_rows = store.split_rows("text", "eval")
    kept_rows = np.zeros((0, len(atoms)), dtype=np.int64)
    kept_values = np.zeros((0, len(atoms)), dtype=np.float32)
    for start in range(0, len(eval_rows), ENCODE_ROWS):
        rows = eval_rows[start : start + ENCODE_ROWS]
        codes = encode(model, store.rows("text", rows), ENCODE_ROWS, 1)[0][:, atoms].toarray()
        candidates = np.concatenate([kept_values, codes])
        candidate_rows = np.concatenate([kept_rows, np.broadcast_to(rows[:, None], codes.shape)])
        best = np.argsort(-candidates, axis=0, kind="stable")[:per_atom]
        kept_values = np.take_along_axis(candidates, best, axis=0)
        kept_rows = np.take_along_axis(candidate_rows, best, axis=0)
    return kept_rows, kept_values


def _captions(store: EmbeddingStore, rows: np.ndarray) -> dict[int, str]:
    """`: caption` of each text row in `rows`; empty when the store keeps no captions
    (synthetic and precomputed stores), so rows are shown by index alone."""
    import numpy as np

    from vlmsae.stores.embedding_store import read_rows

    if "text_caption" not in store.root:
        return {}
    wanted = np.unique(rows)
    texts = read_rows(store.root["text_caption"], wanted)
    return {int(row): f": {text}" for row, text in zip(wanted, texts, strict=True)}


def _check_store(args: argparse.Namespace) -> None:
    from vlmsae.stores.embedding_store import MODALITIES

    store = open_store(args.store, verify=True)
    splits = list(store.attrs.get("splits", ["train", "eval"]))
    for role, name in zip(MODALITIES, store.modalities, strict=True):
        counts = "\t".join(f"{len(store.split_rows(role, split))} {split}" for split in splits)
        print(f"{name}\t{store.array(role).shape[0]} rows\t{counts}")
    pair_counts = "\t".join(f"{len(store.split_pairs(split))} {split}" for split in splits)
    print(f"pairs\t{len(store.pairs)}\t{pair_counts}\ndim\t{store.dim}")
    print(f"truth\t{'yes' if store.truth() is not None else 'no'}")
    for name in ("label", "class_prompts"):
        shape = store.root[name].shape if name in store.root else "none"
        print(f"{name}\t{shape}")
    n_chunks = sum(len(r["crc32"]) for r in store.attrs["manifest"]["arrays"].values())
    print(f"verified\t{n_chunks} chunks match the manifest; embedding rows finite and non-zero")
    for key in (
        "dataset",
        "model",
        "source",
        "normalised",
        "val_fraction",
        "val_seed",
        "skipped_total",
    ):
        if key in store.attrs:
            print(f"{key}\t{store.attrs[key]}")


def _verify(args: argparse.Namespace) -> None:
    from vlmsae.stores.manifest import verify_folder, verify_store

    path = args.path
    if (path / "zarr.json").is_file():
        stores, folders = [path], []
    elif (path / "embeddings").is_dir() or (path / "sae").is_dir():  # a results root
        check_output_folders(path / name / "-" for name in ("embeddings", "sae", "metrics"))
        stores = sorted((path / "embeddings").glob("*/*.zarr"))
        # Every run folder, with or without manifest.json: one without is reported, not skipped.
        folders = sorted(
            folder
            for name in ("sae", "metrics")
            for folder in (path / name).glob("*/*/*/*/seed*")
            if folder.is_dir()
        )
    elif path.is_dir() and (path / "manifest.json").is_file():
        stores, folders = [], [path]
    else:
        run = resolve_run(str(path), args.results)
        stores, folders = [], [folder for folder in (run.sae, run.metrics) if folder.is_dir()]
        if not folders:
            raise InputFileError(str(path), "no such store or run", f"run `snakemake {run.sae}`")
    for store in stores:
        shapes = verify_store(store)
        print(f"{store}: ok, {len(shapes)} arrays, every chunk matches the manifest")
    for folder in folders:
        rule = "metrics" if "metrics" in folder.parts else "train"
        sizes = verify_folder(folder, rule)
        print(f"{folder}: ok, {len(sizes)} files match the manifest")


def _export(args: argparse.Namespace) -> None:
    from vlmsae.export import export

    folders = resolve_run(args.run, args.results)
    export(folders.sae, args.format, args.out)  # it checks the folder and the format itself
    print(f"{folders.run}: {args.format} export written to {args.out}")


def _schema(args: argparse.Namespace) -> None:
    import yaml

    from vlmsae.config_cache import schema

    print(yaml.safe_dump(schema(), sort_keys=False), end="")


def _calibrate_synthetic(args: argparse.Namespace) -> None:
    from vlmsae.calibration import calibrate, store_statistics, synthetic_block

    store = open_store(args.store)
    pairs = store.pairs
    image, text = store.rows("image", pairs[:, 0]), store.rows("text", pairs[:, 1])
    target = store_statistics(image, text, seed=args.seed)
    params, achieved = calibrate(image, text, seed=args.seed)
    print(f"# {args.store}: statistic\tstore\tsynthetic")
    for name, value in target.items():
        print(f"# {name}\t{value:.3f}\t{achieved[name]:.3f}")
    print(synthetic_block(params), end="")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _parser() -> argparse.ArgumentParser:
    # --results and --configfile go after the subcommand, as `snakemake --configfile` users type.
    paths = argparse.ArgumentParser(add_help=False)
    paths.add_argument(
        "--results", type=Path, default=Path("results"), help="results root (default: results)"
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--configfile", type=Path, default=Path("config.yaml"), help="default: config.yaml"
    )
    run_help = f"{RUN_FORM}, or a results/sae/... or results/metrics/... folder"

    parser = argparse.ArgumentParser(prog="vlmsae", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "runs",
        parents=[paths, config],
        help="list the runs of a config, whether each is done, its health (ok or its flags) "
        "and, for a dataset with sae_from, the SAE run it scores",
    )
    command.set_defaults(handler=_runs)

    command = commands.add_parser(
        "summary", parents=[paths], help="a run's summary.json, grouped by metric family"
    )
    command.add_argument("run", help=run_help)
    command.set_defaults(handler=_summary)

    command = commands.add_parser(
        "compare",
        parents=[paths],
        help="two runs' summaries side by side, and their atoms matched (Hungarian, cosine)",
    )
    command.add_argument("runs", nargs=2, metavar="RUN", help=run_help)
    command.add_argument(
        "-n", type=positive_int, default=10, help="matched pairs shown (default: 10)"
    )
    command.set_defaults(handler=_compare)

    command = commands.add_parser(
        "top-atoms",
        parents=[paths],
        help="a run's leading atoms with the eval captions that activate them most",
    )
    command.add_argument("run", help=run_help)
    command.add_argument(
        "--by",
        choices=("energy", "frequency"),
        default="energy",
        help="rank by energy (mean |z| over all eval rows) or by frequency (share of eval rows "
        "where the atom fires); default: energy",
    )
    command.add_argument("-n", type=positive_int, default=20, help="atoms shown (default: 20)")
    command.add_argument(
        "--captions", type=positive_int, default=3, help="captions per atom (default: 3)"
    )
    command.set_defaults(handler=_top_atoms)

    command = commands.add_parser("check-store", help="check an embedding store and describe it")
    command.add_argument("store", type=Path, help="results/embeddings/<dataset>/<model>.zarr")
    command.set_defaults(handler=_check_store)

    command = commands.add_parser(
        "verify",
        parents=[paths],
        help="check a store or a run's folders against their manifests (every chunk and file)",
    )
    command.add_argument(
        "path",
        type=Path,
        help=f"a .zarr store, a results/sae/... or results/metrics/... folder, a run "
        f"({RUN_FORM}), or a results root: every store and run folder in it",
    )
    command.set_defaults(handler=_verify)

    command = commands.add_parser(
        "export", parents=[paths], help="write a run's SAE in another library's layout"
    )
    command.add_argument("run", help=run_help)
    command.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    command.add_argument("--out", type=Path, required=True, help="output folder")
    command.set_defaults(handler=_export)

    command = commands.add_parser(
        "calibrate-synthetic",
        help="fit the clip-like synthetic generator to a store's cone and gap statistics",
    )
    command.add_argument("store", type=Path, help="results/embeddings/<dataset>/<model>.zarr")
    command.add_argument("--seed", type=int, default=0)
    command.set_defaults(handler=_calibrate_synthetic)

    command = commands.add_parser("schema", help="print the config schema, every key documented")
    command.set_defaults(handler=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.handler(args)
    except VlmsaeError as error:
        print(f"vlmsae: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:  # a file that vanished or cannot be read while a command ran
        where = error.filename or "a file"
        print(f"vlmsae: {where}: {error.strerror or error}; fix: check the path", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
