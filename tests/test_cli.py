"""The `kithnet` command: client commands against a running real Gateway (in-process
through kithnet.cli.main, and the installed script), their errors, `kithnet gateway`
itself, and one real MicroPython plug driven end to end through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kithnet.protocol import model
from kithnet.tools import board as B
from procs import free_port
from test_api import KEY, ProtoNode, http, online_node, serve, wait

from kithnet import cli

KITHNET = Path(sys.executable).parent / "kithnet"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    """Nothing from the caller's environment or home directory leaks into a test."""
    for var in ("KITHNET_URL", "KITHNET_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KITHNET_DATA", str(tmp_path / "no-such-home"))


@pytest.fixture
def gw(tmp_path):
    with serve(tmp_path / "gw") as g:
        yield g


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_value():
    assert [cli.parse_value(v) for v in ("on", "OFF", "true", "False")] == [1, 0, 1, 0]
    assert all(isinstance(cli.parse_value(v), bool) for v in ("on", "off", "true", "false"))
    assert cli.parse_value("21") == 21 and isinstance(cli.parse_value("21"), int)
    assert cli.parse_value("21.5") == 21.5
    assert cli.parse_value("-3") == -3
    assert cli.parse_value("cool") == "cool"
    assert cli.parse_value("nan") == "nan" and cli.parse_value("inf") == "inf"


def test_client_commands_against_a_running_gateway(gw, capsys):
    base = ["--url", gw.url, "--token", gw.token]
    node = ProtoNode(gw.gw.udp_port, name="Hall climate")
    try:
        wait(lambda: http(gw, "GET", "/api/pending")[1])
        code, out, _ = run(capsys, "pending", *base)
        assert code == 0
        header, row = out.splitlines()
        assert header.split()[:3] == ["ID", "NAME", "MODEL"]
        assert row.startswith(node.id) and "kithnet-climate" in row

        code, out, _ = run(capsys, "adopt", node.id, "--key", KEY.hex(), "--room", "hall", *base)
        assert (code, out) == (0, f"adopted Hall climate ({node.id})\n")
        wait(lambda: node.sess is not None)
        node.report({1: False, 2: 453, 3: 2150, 4: 2})
        wait(lambda: "power" in http(gw, "GET", f"/api/devices/{node.id}/state")[1])

        code, out, _ = run(capsys, "devices", *base)
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "ID", "ROOM", "TYPE", "STATUS", "LAST", "SEEN"]
        assert lines[1].split()[:6] == ["Hall", "climate", node.id, "hall", "climate", "online"]
        assert lines[0].index("ID") == lines[1].index(node.id)  # aligned
        code, out, _ = run(capsys, "devices", "--json", *base)
        assert [d["id"] for d in json.loads(out)] == [node.id]

        code, out, _ = run(capsys, "state", "hall climate", *base)
        assert code == 0 and out.startswith(f"Hall climate ({node.id}, climate, online)")
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
        assert rows["power"][:3] == ["45.3", "W", "r"]
        assert rows["setpoint"][:3] == ["21.5", "°C", "rw"]
        assert rows["hvac_mode"][:2] == ["cool", "rw"]
        assert rows["switch"][:2] == ["off", "rw"]
        code, out, _ = run(capsys, "state", node.id, "--json", *base)
        assert json.loads(out)["setpoint"]["value"] == 21.5

        code, out, _ = run(capsys, "set", "Hall climate", "switch", "on", *base)
        assert (code, out) == (0, "applied: switch = on\n")
        code, out, _ = run(capsys, "set", "Hall climate", "hvac_mode", "heat", *base)
        assert (code, out) == (0, "applied: hvac_mode = heat\n")
        code, out, _ = run(capsys, "set", node.id, "setpoint", "22.5", "--json", *base)
        assert json.loads(out) == {"status": "applied", "state": {"setpoint": 22.5}}
        assert node.commands == [{model.SWITCH: True}, {4: 1}, {3: 2250}]

        for w in (500, 600):
            node.report({2: w})
        path = f"/api/devices/{node.id}/history/power"
        wait(lambda: len(http(gw, "GET", path)[1]) == 3)
        code, out, _ = run(capsys, "history", "Hall climate", "power", "--since", "3600", *base)
        assert code == 0 and out.splitlines()[0].split() == ["TIME", "POWER"]
        assert [line.split()[-1] for line in out.splitlines()[1:]] == ["45.3", "50", "60"]
        code, out, _ = run(capsys, "history", node.id, "power", "--limit", "1", "--json", *base)
        assert [p["value"] for p in json.loads(out)] == [60]
        code, out, _ = run(
            capsys, "history", node.id, "power", "--since", "2999-01-01T00:00", *base
        )
        assert code == 0 and out.startswith("no values of power")
    finally:
        node.close()


def test_gateway_errors_are_one_line(gw, capsys):
    base = ["--url", gw.url, "--token", gw.token]
    node = online_node(gw)
    try:
        for argv, words in [
            (["state", "nobody"], "no device 'nobody'"),
            (["set", node.id, "hvac_mode", "warm"], "hvac_mode takes one of off, heat, cool"),
            (["set", node.id, "power", "5"], "power cannot be set"),
            (["history", node.id, "colour"], "no capability 'colour'"),
            (["adopt", "0011", "--key", KEY.hex()], "'id' must be 16 hex digits"),
        ]:
            code, out, err = run(capsys, *argv, *base)
            assert (code, out) == (1, ""), argv
            assert err.startswith("kithnet: ") and words in err and err.count("\n") == 1, err
    finally:
        node.close()
    code, out, err = run(capsys, "pending", *base)
    assert (code, out.strip()) == (0, "no nodes waiting to be adopted")


def test_token_comes_from_flag_env_or_data_dir(gw, capsys, monkeypatch):
    url = ["--url", gw.url]
    # The gateway wrote its token to DATA/token; --data (or KITHNET_DATA) finds it.
    assert run(capsys, "devices", *url, "--data", str(gw.data))[0] == 0
    monkeypatch.setenv("KITHNET_DATA", str(gw.data))
    assert run(capsys, "devices", *url)[0] == 0
    monkeypatch.setenv("KITHNET_TOKEN", gw.token)
    monkeypatch.setenv("KITHNET_URL", gw.url)
    assert run(capsys, "devices")[0] == 0


def test_wrong_or_missing_token_says_where_it_was_read(gw, capsys, monkeypatch, tmp_path):
    url = ["--url", gw.url]
    code, _, err = run(capsys, "devices", *url, "--token", "wrong")
    assert code == 1 and "refused the API token (read from --token): wrong token" in err
    monkeypatch.setenv("KITHNET_TOKEN", "wrong")
    code, _, err = run(capsys, "devices", *url)
    assert code == 1 and "(read from $KITHNET_TOKEN)" in err
    monkeypatch.delenv("KITHNET_TOKEN")
    data = tmp_path / "other"
    data.mkdir()
    (data / "token").write_text("stale\n")
    code, _, err = run(capsys, "state", "x", *url, "--data", str(data))
    assert code == 1 and f"(read from {data / 'token'})" in err
    code, _, err = run(capsys, "devices", *url)  # KITHNET_DATA has no token file
    assert code == 1 and "none found in --token, $KITHNET_TOKEN or" in err
    assert "no-such-home/token (missing)" in err and err.count("\n") == 1


def test_gateway_not_running(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    for argv in (["devices"], ["set", "x", "switch", "on"], ["pending", "--json"]):
        code, out, err = run(capsys, *argv, "--url", url, "--token", "t")
        assert (code, out) == (1, "")
        assert err.startswith(f"kithnet: the gateway is not running at {url} (")
        assert err.count("\n") == 1


def test_usage_errors_exit_2(capsys):
    for argv in (
        ["history", "x", "power", "--since", "last tuesday"],
        ["history", "x", "power", "--limit", "0"],
        ["adopt", "0011223344556677"],  # --key is required
        ["gateway", "--http", "localhost"],
        ["gateway", "--udp", "127.0.0.1:99999"],
    ):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2, argv
        capsys.readouterr()


def test_gateway_refuses_bad_settings_in_one_line(capsys, tmp_path):
    for argv, words in [
        (["--log-level", "loud"], "log_level must be debug, info, warning or error"),
        (["--config", str(tmp_path / "none.toml")], "none.toml: cannot read"),
    ]:
        code, out, err = run(capsys, "gateway", "--data", str(tmp_path), *argv)
        assert (code, out) == (2, "")
        assert err.startswith("kithnet: ") and words in err and err.count("\n") == 1
    (tmp_path / "bad.toml").write_text('[gateway]\nhttp_port = "many"\n')
    code, _, err = run(capsys, "gateway", "--config", str(tmp_path / "bad.toml"))
    assert code == 2 and "http_port = 'many' is not a int" in err


def test_kithnet_gateway_serves_until_sigterm(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITHNET_")}
    proc = subprocess.Popen(
        [
            KITHNET, "gateway", "--data", str(data), "--http", f"127.0.0.1:{port}",
            "--udp", "127.0.0.1:0", "--no-discovery", "--log-level", "warning",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def devices() -> subprocess.CompletedProcess:
            cmd = [KITHNET, "devices", "--url", url, "--data", str(data), "--json"]
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)

        done = wait(lambda: proc.poll() is not None or devices().returncode == 0, timeout=60)
        assert done and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert json.loads(devices().stdout) == []
        assert (data / "token").stat().st_mode & 0o077 == 0  # the token is the owner's
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    gone = devices()
    assert gone.returncode == 1 and "the gateway is not running at" in gone.stderr


def test_a_real_micropython_plug_through_the_cli(gw, capsys, tmp_path):
    """A plug as provisioning lays it out, run by the real `micropython`: adopted ahead of
    time with `kithnet adopt`, then switched and read with the CLI."""
    base = ["--url", gw.url, "--token", gw.token]
    node_id = os.urandom(8)
    path = tmp_path / "plug"
    B.make_board(
        path, "plug", "Kitchen plug", node_id=node_id, key=KEY, port=free_port(socket.SOCK_DGRAM),
        gateway=("127.0.0.1", gw.gw.udp_port), overrides={"mdns": "off", "sleep": {}},
    )  # fmt: skip
    argv = ["adopt", node_id.hex(), "--key", KEY.hex(), "--name", "Kitchen plug", *base]
    assert run(capsys, *argv)[1] == f"adopted Kitchen plug ({node_id.hex()})\n"
    board = B.Board(path).start()
    try:

        def online() -> bool:
            dev = http(gw, "GET", f"/api/devices/{node_id.hex()}")[1]
            return dev["online"] and "switch" in dev["state"] and "power" in dev["state"]

        try:
            wait(online, timeout=60)
        except AssertionError:
            pytest.fail("the plug never came online:\n" + board.console()[-3000:])
        dev = http(gw, "GET", f"/api/devices/{node_id.hex()}")[1]
        assert (dev["type"], dev["model"]) == ("plug", "kithnet-plug")
        name = "kitchen plug"
        assert run(capsys, "set", name, "switch", "off", *base)[1] == "applied: switch = off\n"
        out = run(capsys, "state", name, *base)[1]
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
        assert rows["switch"][:2] == ["off", "rw"] and rows["power"][1:3] == ["W", "r"]
        assert run(capsys, "set", name, "switch", "on", *base)[1] == "applied: switch = on\n"
        assert http(gw, "GET", f"/api/devices/{node_id.hex()}/state")[1]["switch"]["value"]
        # Its own settings, asked of the node in its session (config-get, config-set).
        code, out, _ = run(capsys, "config", name, *base)
        rows = dict(line.split(None, 1) for line in out.splitlines()[1:])
        assert code == 0 and out.split()[:2] == ["SETTING", "VALUE"]
        assert rows["name"] == "Kitchen plug" and int(rows["mem_free"]) > 0
        code, out, _ = run(capsys, "config", name, "interval=45", "--json", *base)
        assert code == 0 and json.loads(out)["interval"] == 45
        assert (path / "nvs" / "cfg.interval").exists()  # kept across its reboots
        code, _, err = run(capsys, "config", name, "interval=2", *base)
        assert code == 1 and "Kitchen plug refused: bad-value (cannot set interval)" in err
        code, _, err = run(capsys, "config", name, "colour=red", *base)
        assert code == 1 and "unknown field 'colour'" in err
        with pytest.raises(SystemExit) as e:
            cli.main(["config", name, "interval", *base])
        assert e.value.code == 2 and "'interval' is not KEY=VALUE" in capsys.readouterr().err
    finally:
        board.stop()


def test_a_made_token_never_starts_with_a_dash(tmp_path, monkeypatch):
    """A token from DATA/token goes on command lines (`--token TOKEN`): one starting with
    "-" would be read as an option (CI met one: secrets.token_urlsafe may start so)."""
    from kithnet.gateway import service

    made = iter(["-starts-with-a-dash", "fine-token"])
    monkeypatch.setattr(service.secrets, "token_urlsafe", lambda _n: next(made))
    assert service._token(tmp_path / "token") == "fine-token"
    assert (tmp_path / "token").read_text() == "fine-token\n"
