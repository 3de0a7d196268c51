"""Every shipped config in conf/ validates."""

from pathlib import Path

import pytest

from caddytw.app import validate
from caddytw.configfile import load_config_file

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize(
    "path", sorted(p for p in CONF.iterdir() if p.is_file()), ids=lambda p: p.name
)
def test_conf_file_validates(path):
    assert validate(load_config_file(str(path))) == []
