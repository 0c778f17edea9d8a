"""The conda environments of the rules (envs/*.yaml), checked without conda.

Under --software-deployment-method conda, Snakemake resolves a rule's `conda:` path against the
folder of the .smk file that defines the rule, copies that env file to
`<workdir>/.snakemake/conda/<hash>.yaml` (or below --conda-prefix) and runs
`conda env create --file` on the copy. conda writes the `pip:` entries to a requirements file
beside the copy and runs pip there, so relative paths resolve against `.snakemake/conda/`, not
against envs/; pip expands `${NAME}` in those lines from the environment, which the Snakefile
sets (VLMSAE_ROOT). A post-deploy script (`envs/<name>.post-deploy.sh`) is copied the same way
and runs in Snakemake's environment.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# pip's syntax for environment variables in requirements files (pip._internal.req.req_file).
PIP_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")

# Loads the workflow as Snakemake does (default config, a scratch working directory) and prints
# every rule's `conda:` resolved the way Rule.expand_conda_env does it, whether it is local, its
# benchmark and log, and the environment variable the Snakefile sets for the env files.
LOAD_WORKFLOW = """
import json, os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2])
    )._workflow
    rules = {}
    for rule in workflow.rules:
        conda = rule.conda_env
        if conda is not None and not os.path.isabs(conda):
            conda = rule.basedir.join(conda).get_path_or_uri(secret_free=True)
        rules[rule.name] = {
            "conda": conda,
            "runs": not rule.norun,
            "local": rule.name in workflow._localrules,
            "benchmark": None if rule.benchmark is None else str(rule.benchmark),
            "log": [str(log) for log in rule.log],
        }
    print(json.dumps({"rules": rules, "VLMSAE_ROOT": os.environ.get("VLMSAE_ROOT")}))
"""


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("workdir")
    env = {k: v for k, v in os.environ.items() if k != "VLMSAE_ROOT"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WORKFLOW, str(REPO / "Snakefile"), str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def deploy(env_file: Path, workdir: Path) -> Path:
    """Copy an env file (and its post-deploy script) where Snakemake puts them before conda."""
    content = env_file.read_bytes()
    address = workdir / ".snakemake" / "conda" / hashlib.md5(content).hexdigest()
    address.parent.mkdir(parents=True, exist_ok=True)
    copy = address.with_suffix(".yaml")
    copy.write_bytes(content)
    post_deploy = env_file.with_suffix("").with_suffix(".post-deploy.sh")
    if post_deploy.exists():
        shutil.copy(post_deploy, address.with_suffix(".post-deploy.sh"))
    return copy


def pip_lines(env_file: Path) -> list[str]:
    spec = yaml.safe_load(env_file.read_text())
    pips = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, f"{env_file.name}: one pip section expected"
    return [str(line) for line in pips[0]]


def expand(line: str, variables: dict) -> str:
    """pip's expansion: a variable that is not set stays as written."""
    return PIP_ENV_VAR.sub(lambda m: variables.get(m.group(1)) or m.group(0), line)


def named_paths(line: str) -> list[str]:
    """Paths a requirements line names: -c/-r/-e arguments and path-like requirements."""
    words = shlex.split(line)
    if words and words[0] in ("-c", "--constraint", "-r", "--requirement", "-e", "--editable"):
        return words[1:2]
    if words and words[0].startswith(("-c", "-r", "-e")) and len(words[0]) > 2:
        return [words[0][2:]]
    return [w for w in words[:1] if w.startswith((".", "/", "$")) or "/" in w.split("@")[0]]


def test_the_purpose_environments_exist():
    assert {env.stem for env in ENVS} == {"embed", "train", "analysis"}


def test_every_rule_names_an_existing_env_file(workflow):
    rules = workflow["rules"]
    assert {"embed", "train", "train_sweep_point", "metrics", "summary_table"} <= set(rules)
    for name, rule in rules.items():
        if not rule["runs"]:  # target-only rules (all) run nothing
            continue
        assert rule["conda"], f"rule {name} has no conda: directive"
        path = Path(rule["conda"]).resolve()
        assert path.is_file(), f"rule {name}: conda env {path} does not exist"
        assert path.parent == REPO / "envs", f"rule {name}: {path} is not one of envs/"


def test_rules_use_the_environment_of_their_purpose(workflow):
    expected = {
        "embed": "embed",
        "fixtures": "embed",
        "train": "train",
        "train_sweep_point": "train",
        "metrics": "analysis",
        "summary_table": "analysis",
        "select_sweep": "analysis",
    }
    for rule, env in expected.items():
        assert Path(workflow["rules"][rule]["conda"]).stem == env, rule


def test_snakefile_sets_the_root_the_env_files_name(workflow):
    assert workflow["VLMSAE_ROOT"] == str(REPO)


def test_quick_rules_are_local_and_heavy_rules_are_benchmarked(workflow):
    rules = workflow["rules"]
    figures = [name for name in rules if name.startswith("figures")]
    assert figures
    for name in ("summary_table", "stores_table", "select_sweep", "sweep_round", *figures):
        assert rules[name]["local"], f"rule {name} would be submitted to a cluster"
    for name in ("embed", "train", "train_sweep_point", "metrics"):
        assert not rules[name]["local"], name
    for name in ("embed", "train", "train_sweep_point"):
        benchmark, (log,) = rules[name]["benchmark"], rules[name]["log"]
        assert benchmark is not None, f"rule {name} has no benchmark"
        # Same wildcards as the log, under results/benchmarks/.
        assert benchmark.startswith("results/benchmarks/") and benchmark.endswith(".tsv")
        assert re.findall(r"{(\w+)}", benchmark) == re.findall(r"{(\w+)}", log), name


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.stem)
def test_env_paths_resolve_from_the_copied_location(env_file, workflow, tmp_path):
    copy = deploy(env_file, tmp_path)
    variables = {"VLMSAE_ROOT": workflow["VLMSAE_ROOT"]}
    paths = []
    for line in pip_lines(copy):
        expanded = expand(line, variables)
        assert "${" not in expanded, f"{env_file.name}: {line!r} names an unset variable"
        paths += named_paths(expanded)
    assert paths, f"{env_file.name} names no constraints file"
    for path in paths:
        # conda runs pip in the folder of the copy: that is what a relative path is relative to.
        resolved = (copy.parent / path).resolve()
        assert resolved.exists(), f"{env_file.name}: {path} resolves to {resolved}, missing"
        assert REPO in (resolved, *resolved.parents), f"{env_file.name}: {path} is outside"


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.stem)
def test_env_versions_come_from_constraints(env_file):
    lines = pip_lines(env_file)
    assert "-c ${VLMSAE_ROOT}/constraints.txt" in lines, env_file.name
    pinned = {
        re.split(r"[=<>!~ ]", line)[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for line in lines:
        if line.startswith("-"):
            continue
        name = re.split(r"[=<>!~\[ ;]", line)[0].lower().replace("_", "-")
        assert name in pinned, f"{env_file.name}: {name} has no version in constraints.txt"
    spec = yaml.safe_load(env_file.read_text())
    assert "python=3.11" in spec["dependencies"] and "pip" in spec["dependencies"]


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.stem)
def test_post_deploy_script_paths_resolve(env_file, workflow, tmp_path):
    script = env_file.with_suffix("").with_suffix(".post-deploy.sh")
    if not script.exists():
        pytest.skip(f"{env_file.name} has no post-deploy script")
    copy = deploy(env_file, tmp_path).with_suffix(".post-deploy.sh")
    assert subprocess.run(["bash", "-n", str(copy)]).returncode == 0
    # The commands, without comment lines.
    text = "\n".join(
        line for line in copy.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    # Relative paths would resolve against Snakemake's working directory: only the variable.
    assert not re.search(r"(?<![\w$/])\.\.?/", text), f"{script.name} names a relative path"
    for match in re.finditer(r'(-e\s+)?"?\$\{VLMSAE_ROOT\}([^"\s]*)"?', text):
        resolved = Path(workflow["VLMSAE_ROOT"] + match.group(2))
        assert resolved.exists(), f"{script.name}: {match.group(0)} -> {resolved}, missing"
        if match.group(1):  # an editable install: a package folder
            assert (resolved / "pyproject.toml").is_file(), f"{script.name}: {resolved}"
