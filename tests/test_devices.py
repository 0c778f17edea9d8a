"""Devices a config asks of the jobs that run on this machine (vlmsae.devices)."""

import pytest

from vlmsae.devices import check_local_devices
from vlmsae.errors import ConfigError


def _config(train_device="auto", embed_device="auto", precision="auto") -> dict:
    return {
        "train": {"device": train_device},
        "embed": {"device": embed_device, "precision": precision},
    }


@pytest.mark.parametrize(
    ("config", "sections", "key"),
    [
        (_config(train_device="cuda"), {"train"}, "train.device"),
        (_config(train_device="cuda:1"), {"embed", "train"}, "train.device"),
        (_config(embed_device="cuda"), {"embed"}, "embed.device"),
        (_config(precision="bf16"), {"embed"}, "embed.precision"),
        (_config(precision="fp16"), {"embed", "train"}, "embed.precision"),
    ],
)
def test_what_this_machine_lacks_is_named(config, sections, key):
    with pytest.raises(ConfigError, match=f"config key '{key}'.*fix:"):
        check_local_devices(config, sections, cuda_available=False)
    check_local_devices(config, sections, cuda_available=True)


def test_sections_whose_jobs_do_not_run_here_are_not_checked():
    # No embedding job runs a model here (stores built, or synthetic), so its device is moot.
    check_local_devices(_config(embed_device="cuda", precision="bf16"), {"train"}, False)
    check_local_devices(_config(train_device="cuda"), set(), False)
    check_local_devices(_config(), {"embed", "train"}, False)
