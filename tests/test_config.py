"""Option precedence: CLI flag, then ACSNET_* environment, then the config file, then the default."""

from __future__ import annotations

import pytest

from acsnet.cli import build_parser
from acsnet.config import COMMON_OPTIONS, IPAM_OPTIONS, resolve

OPTIONS = COMMON_OPTIONS + IPAM_OPTIONS


def settings(argv, monkeypatch, env=None):
    for key in [k for k in __import__("os").environ if k.startswith("ACSNET_")]:
        monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return resolve(build_parser().parse_args(["serve", "ipam", *argv]), OPTIONS)


def test_precedence_flag_env_file_default(tmp_path, monkeypatch):
    conf = tmp_path / "acsnet.conf"
    conf.write_text("[acsnet]\nstore = zk://file:2181/x\nthreads = 3\nplugin-dir = /from/file\nscope = global\n")
    base = ["--config", str(conf)]
    s = settings(base, monkeypatch)
    assert (s["store"], s["threads"], s["plugin_dir"], s["scope"]) == ("zk://file:2181/x", 3, "/from/file", "global")
    assert s["default_pool"] == "100.64.0.0/10", "the default where nothing is said"
    s = settings(base, monkeypatch, {"ACSNET_STORE": "zk://env:2181/x", "ACSNET_THREADS": "5"})
    assert (s["store"], s["threads"], s["plugin_dir"]) == ("zk://env:2181/x", 5, "/from/file")
    s = settings([*base, "--store", "zk://flag:2181/x"], monkeypatch, {"ACSNET_STORE": "zk://env:2181/x"})
    assert s["store"] == "zk://flag:2181/x"
    s = settings([], monkeypatch, {"ACSNET_CONFIG": str(conf)})
    assert s["threads"] == 3, "ACSNET_CONFIG names the file too"


def test_bad_values_are_refused_clearly(tmp_path, monkeypatch):
    conf = tmp_path / "acsnet.conf"
    conf.write_text("[acsnet]\nthreads = many\n")
    with pytest.raises(SystemExit, match="threads must be a whole number, got 'many'"):
        settings(["--config", str(conf)], monkeypatch)
    with pytest.raises(SystemExit, match="scope must be one of local, global"):
        settings([], monkeypatch, {"ACSNET_SCOPE": "galactic"})
    with pytest.raises(SystemExit, match="spare_pairs must be 0 to 64, got -1"):
        settings(["--spare-pairs", "-1"], monkeypatch)
    assert settings(["--spare-pairs", "0"], monkeypatch)["spare_pairs"] == 0
