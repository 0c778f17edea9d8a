"""What the Snakefile reads at every start imports no heavy library (issue 27, item 2).

Parsing the workflow imports these modules and walks their registries; each heavy library it
pulled in cost every Snakemake start (and each SLURM job starts Snakemake twice) up to seconds.
Each case runs in a fresh interpreter, so modules another test imported do not hide or fake a
heavy import. This is a property of the import graph, not a timing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Top-level names of the libraries whose import costs a start tenths of a second or more.
HEAVY = (
    "torch",
    "matplotlib",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "zarr",
    "numcodecs",
    "PIL",
    "ot",
    "umap",
    "plotly",
    "safetensors",
    "soundfile",
    "transformers",
    "open_clip",
    "tqdm",
)

# Each entry point as the workflow uses it: import, then walk the registry it holds (registry
# discovery imports every module of its package, the heaviest part).
ENTRY_POINTS = {
    "figures": "from vlmsae.figures import FIGURES; FIGURES.names()",
    "interventions": "from vlmsae.interventions import INTERVENTIONS; INTERVENTIONS.names()",
    "datasets": "from vlmsae import datasets; datasets.available()",
    "health": "import vlmsae.health",
    "manifest": "import vlmsae.stores.manifest",
    "sweeps": "import vlmsae.sweeps",
    "devices": "import vlmsae.devices",
    "recovery_table": "import vlmsae.tables.recovery",
    "run_path": "import vlmsae.run_path",
    "failed_jobs": "import vlmsae.workflow.failed_jobs",
    "regularisers": "from vlmsae.training import regularisers; regularisers.available()",
}

REPORT = (
    "import sys; "
    f"heavy = {HEAVY!r}; "
    "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))"
)


def heavy_modules(statement: str) -> list[str]:
    """The heavy libraries in sys.modules after running `statement` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", f"{statement}\n{REPORT}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_parse_time_entry_point_imports_no_heavy_library(name: str) -> None:
    assert heavy_modules(ENTRY_POINTS[name]) == []


def test_the_check_sees_a_heavy_import() -> None:
    # The check itself must fail when a heavy library is imported, or the tests above prove nothing.
    assert heavy_modules("import tqdm") == ["tqdm"]
