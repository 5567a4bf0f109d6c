"""Gateway settings: the README's example file loads as documented, flags win over the
file, and a garbage or wrong file is refused with the file and the key it is about."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kithnet.gateway import config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_is_a_valid_config(tmp_path):
    text = re.search(r"```toml\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "gw.toml").write_text(text)
    cfg = config.load(tmp_path / "gw.toml", {"http_port": "8080", "discovery": None})
    assert cfg.data == "/var/lib/kithnet" and cfg.interfaces == ["192.168.1.10"]
    assert cfg.http_port == 8080 and cfg.discovery is True  # a flag wins; None leaves it
    assert cfg.downsample_s == 300 and cfg.retention_days == 365.0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("udp_port = [", "not valid TOML"),
        ("\x00\xff", "not valid TOML"),
        ("colour = 'blue'", "unknown setting 'colour'"),
        ("udp_port = 'many'", "udp_port = 'many' is not a int"),
        ("udp_port = 70000", "udp_port must be 0..65535"),
        ("discovery = 3", "discovery = 3 is not a bool"),
        ("log_level = 'loud'", "log_level must be"),
        ("gateway = 5", "[gateway] must be a table"),
    ],
)
def test_a_bad_file_is_refused_with_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "gw.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    assert words in str(e.value)


def test_a_missing_file_and_a_bad_flag(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(config.ConfigError, match="--http-port"):
        config.load(None, {"http_port": "x"})
