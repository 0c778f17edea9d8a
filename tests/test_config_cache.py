"""The config cache (vlmsae.config_cache): a hit equals the check it stands for, costs no
registry import, and never outlives what the check read."""

import json
import subprocess
import sys

import numpy as np
import pytest
from snakemake_runs import REPO, tiny_config

from vlmsae import config_cache
from vlmsae.config import check_config, full_schema
from vlmsae.errors import ConfigError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("VLMSAE_CACHE", str(folder))
    return folder


def test_a_hit_equals_the_check(cache, tmp_path):
    expected = check_config(tiny_config(), base_dir=tmp_path)
    first = config_cache.checked_config(tiny_config(), base_dir=tmp_path)
    assert len(list(cache.glob("config-*.json"))) == 1
    again = tiny_config()
    second = config_cache.checked_config(again, base_dir=tmp_path)
    assert first == second == expected
    assert again is second  # updated in place, as check_config does


def test_the_schema_is_cached_whole(cache):
    assert config_cache.schema() == full_schema()
    assert len(list(cache.glob("schema-*.json"))) == 1
    assert config_cache.schema() == full_schema()


# A hit, in a fresh interpreter: nothing but the standard library is imported for it.
HIT = """
import json, sys, yaml
from vlmsae import config_cache
config = yaml.safe_load(open(sys.argv[1]))
config_cache.checked_config(config, base_dir=sys.argv[2])
heavy = [name for name in ("torch", "pandas", "matplotlib", "vlmsae.config", "vlmsae.sae", "zarr")
         if name in sys.modules]
print(json.dumps({"heavy": heavy, "variants": sorted(config["variants"])}))
"""


def test_a_hit_imports_no_registry(cache, tmp_path):
    import yaml

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    config_cache.checked_config(tiny_config(), base_dir=tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", HIT, str(tmp_path / "config.yaml"), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**__import__("os").environ, "VLMSAE_CACHE": str(cache)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    assert found["variants"] == sorted(check_config(tiny_config(), tmp_path)["variants"])


def test_a_bad_config_is_refused_each_time_and_never_stored(cache, tmp_path):
    config = tiny_config()
    config["mixtures"] = ["1-x"]
    for _ in range(2):
        with pytest.raises(ConfigError, match="mixtures"):
            config_cache.checked_config(dict(config), base_dir=tmp_path)
    assert not list(cache.glob("config-*.json"))


def test_a_gone_input_file_is_checked_again(cache, tmp_path):
    pairs = tmp_path / "pairs.npy"
    np.save(pairs, np.random.default_rng(0).normal(size=(2, 40, 8)).astype(np.float32))
    config = tiny_config()
    config["datasets"] = {
        "pre": {"source": "precomputed", "models": ["given"], "precomputed": {"path": "pairs.npy"}}
    }
    checked = config_cache.checked_config(json.loads(json.dumps(config)), base_dir=tmp_path)
    assert checked["datasets"]["pre"]["precomputed"]["path"] == str(pairs)
    pairs.unlink()
    with pytest.raises(ConfigError, match="file not found"):
        config_cache.checked_config(json.loads(json.dumps(config)), base_dir=tmp_path)


def test_the_key_follows_the_sources_and_the_config(tmp_path, monkeypatch):
    (tmp_path / "module.py").write_text("x = 1\n")
    monkeypatch.setattr(config_cache, "PACKAGE", tmp_path)
    before = config_cache.key("config", {"a": 1})
    assert config_cache.key("config", {"a": 1}) == before
    assert config_cache.key("config", {"a": 2}) != before
    (tmp_path / "module.py").write_text("x = 22\n")  # another size (and time)
    assert config_cache.key("config", {"a": 1}) != before


def test_off_computes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMSAE_CACHE", "off")
    calls = []
    for _ in range(2):
        assert config_cache.cached("x", [], lambda: calls.append(1) or {"v": 1}, tmp_path) == {
            "v": 1
        }
    assert len(calls) == 2 and not (tmp_path / ".snakemake").exists()


def test_a_value_json_cannot_hold_is_not_stored(cache):
    calls = []
    for _ in range(2):
        config_cache.cached("x", [], lambda: calls.append(1) or {"v": (1, 2)})
    assert len(calls) == 2 and not list(cache.glob("x-*.json"))
