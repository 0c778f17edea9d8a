import os
from pathlib import Path

# No test needs a network; without these, any hub lookup waits on a time-out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Under pytest-xdist (`make test`: one worker per core) each worker computes on one thread, and
# so do the processes it starts, unless they set their own count (Snakemake's jobs do, from
# their rule's threads): two workers of several threads each would fight over the two cores.
if "PYTEST_XDIST_WORKER" in os.environ:
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402
from hypothesis import settings  # noqa: E402
from snakemake_runs import snakemake, tiny_config  # noqa: E402

from vlmsae.stores.build import build_store  # noqa: E402
from vlmsae.stores.embedding_store import EmbeddingStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Property tests (tests/test_properties.py) draw the same examples on every run, so a failure
# reproduces and CI cannot pass by luck; no per-example deadline (a busy machine is not a bug).
settings.register_profile("vlmsae", max_examples=60, derandomize=True, deadline=None)
settings.load_profile("vlmsae")
# 500 real COCO pairs embedded with CLIP ViT-B/16, shipped in the repository (data/README.md).
COCO_FEATURES = REPO / "data" / "coco500_clip_vit_b16" / "features_clip.npy"

TINY_SYNTHETIC = {
    "d": 32,
    "n_bimodal": 24,
    "n_unimodal": 12,
    "L": 6,
    "n_active_bimodal": 3,
    "tau1": 1.0,
    "tau2": 0.3,
    "n_pairs": 2000,
    "seed": 0,
}

# `make test` runs the modules on one pytest-xdist worker per core, each module (or test class)
# on one worker (`--dist loadscope`: a module's fixtures are built once), in this order: the
# longest modules, measured with `--durations` (README, "Developing"), start first, so that the
# workers finish together instead of one waiting on a late long test. test_workflow comes
# before the cluster test and test_report: they all read the finished tiny workflow, which the
# first of them builds.
LONGEST_FIRST = (
    "tests/test_workflow.py",
    "tests/test_real_path.py",
    "tests/cluster/test_slurm_workflow.py",
    "tests/test_naming.py",
    "tests/test_sweeps.py",
    "tests/test_kills.py",
    "tests/test_extending.py",
    "tests/test_models.py",
    "tests/test_report.py",
)


def _rank(item: pytest.Item) -> int:
    module = item.nodeid.split("::")[0]
    if module in LONGEST_FIRST:
        return LONGEST_FIRST.index(module)
    return len(LONGEST_FIRST) + (item.get_closest_marker("slow") is None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: collection order within a rank


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> EmbeddingStore:
    """A small synthetic store (τ1 = 1) shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("stores") / "tiny.zarr"
    build_store(
        "tiny", "generator", {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)}, path
    )
    return EmbeddingStore(path)


@pytest.fixture
def coco_features() -> Path:
    """The repository's copy of the real COCO pairs: a clone has it, so its absence fails."""
    assert COCO_FEATURES.is_file(), f"{COCO_FEATURES} is missing: it ships in the repository"
    return COCO_FEATURES


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory, worker_id) -> Path:
    """The working directory of one finished run of the tiny config (tests/tiny_config.yaml),
    shared by the tests that read a finished workflow (none of them changes a file in it).

    Under pytest-xdist the first worker that needs it runs it, in the folder all workers' temporary
    folders share, while the others wait on its lock."""
    if worker_id == "master":
        return _finished_tiny_workflow(tmp_path_factory.mktemp("tiny_workflow"))
    shared = tmp_path_factory.getbasetemp().parent
    with FileLock(shared / "tiny_workflow.lock"):
        return _finished_tiny_workflow(shared / "tiny_workflow")


def _finished_tiny_workflow(workdir: Path) -> Path:
    """The tiny config run in `workdir` unless done before; Snakemake's output, the jobs it ran,
    is kept as workdir/snakemake.out (written last: it also says the run is finished)."""
    output = workdir / "snakemake.out"
    if not output.exists():
        workdir.mkdir(exist_ok=True)
        result = snakemake(workdir, config=tiny_config())
        assert result.returncode == 0, result.stderr[-3000:]
        output.write_text(result.stdout + result.stderr)
    return workdir
