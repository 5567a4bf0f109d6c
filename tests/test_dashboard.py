"""The web dashboard (gateway/dashboard.py, gateway/web/) in a real browser: Debian's
Chromium, headless, driven by Selenium through Debian's chromedriver, against a real
gateway with nodes speaking the real protocol over UDP on loopback: CPython ProtoNodes and
one real MicroPython plug.

One browser, one gateway and one set of nodes for the whole module; the tests run in file
order and build on each other's state (the wrong-token test comes last: it drops the token).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gwrun import GatewayThread
from kithnet.gateway import api, service
from kithnet.protocol import errors
from kithnet.tools import board as B
from procs import free_port
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from test_api import KEY, ProtoNode, wait

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; given explicitly so that Selenium Manager
CHROMEDRIVER = Path("/usr/bin/chromedriver")  # never looks for (or downloads) another
TOKEN = "dash-token"
HOSTILE = '<img src=x onerror="window.__xss=1">'


class Lab:
    def __init__(self, root: Path) -> None:
        self.g = GatewayThread(data=str(root / "gw"), token=TOKEN, command_timeout_s=2.0)
        self.url = f"http://127.0.0.1:{self.g.gw.http_port}"
        self.nodes: list[ProtoNode] = []
        self.boards: list[B.Board] = []
        try:
            self._start(root)
        except BaseException:
            self.close()
            raise

    def _start(self, root: Path) -> None:
        # Real MicroPython boards, laid out as provisioning does, adopted ahead of time.
        self.plug = self.board(root, "plug", "Kitchen plug", "kitchen")
        self.lamp = self.board(root, "light", "Living lamp", "living room")
        # CPython nodes: a climate unit and a sleeping one, adopted and reporting.
        self.climate = self.node(name="Hall climate", room="hall")
        self.sleeper = self.node(name="Attic climate", room="attic", sleepy=True)
        for n in (self.climate, self.sleeper):
            wait(lambda n=n: n.sess is not None and self.g.device(n.id)["online"])
            n.report({1: False, 2: 125, 3: 2100, 4: 0})
            wait(lambda n=n: "power" in self.g.device(n.id)["state"])

    def board(self, root: Path, kind: str, name: str, room: str) -> str:
        node_id = os.urandom(8)
        B.make_board(
            root / kind, kind, name, node_id=node_id, key=KEY,
            port=free_port(socket.SOCK_DGRAM), gateway=("127.0.0.1", self.g.gw.udp_port),
            overrides={"mdns": "off", "sleep": {}},
        )  # fmt: skip
        self.adopt(node_id.hex(), name, room)
        self.boards.append(B.Board(root / kind).start())
        return node_id.hex()

    def node(self, *, name: str, room: str, **kw: Any) -> ProtoNode:
        n = ProtoNode(self.g.gw.udp_port, name=name, **kw)
        self.nodes.append(n)
        self.adopt(n.id, name, room)
        return n

    def adopt(self, node_id: str, name: str, room: str) -> None:
        body = {"id": node_id, "key": KEY.hex(), "name": name, "room": room}
        status, dev, _ = self.http("POST", "/api/devices", body)
        assert status == 201, dev

    def http(self, method: str, path: str, body: Any = None, token: str | None = TOKEN):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw, status, headers = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, headers = e.read(), e.code, e.headers
        is_json = headers.get("Content-Type", "").startswith("application/json")
        return status, json.loads(raw) if is_json and raw else raw, headers

    def close(self) -> None:
        for board in self.boards:
            board.stop()
        for n in self.nodes:
            n.close()
        self.g.stop()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (make test installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_window_size(1280, 1000)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    access = logging.getLogger("aiohttp.access")  # on before any connection: it asks once
    level = access.level
    access.setLevel(logging.INFO)
    lab = Lab(tmp_path_factory.mktemp("dashboard"))
    try:
        for node_id, board in zip((lab.plug, lab.lamp), lab.boards, strict=True):
            try:
                wait(lambda node_id=node_id: lab.g.device(node_id)["online"], timeout=60)
            except AssertionError:
                pytest.fail(f"{node_id} never came online:\n" + board.console()[-3000:])
        yield lab
    finally:
        lab.close()
        access.setLevel(level)


def until(driver: WebDriver, what: Callable[[], Any], why: str, timeout: float = 20) -> Any:
    """what() until it is truthy; elements replaced meanwhile (a re-render) are retried."""

    def check(_: WebDriver) -> Any:
        try:
            return what()
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, timeout).until(check, why)


def card(driver: WebDriver, node_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'article.card[data-id="{node_id}"]')


def row(driver: WebDriver, node_id: str, cap: str) -> WebElement:
    return card(driver, node_id).find_element(By.CSS_SELECTOR, f'tr[data-cap="{cap}"]')


def shown(driver: WebDriver, node_id: str, cap: str) -> str:
    return row(driver, node_id, cap).find_element(By.CSS_SELECTOR, "td.value").text


def result(driver: WebDriver, node_id: str, cap: str) -> str:
    return row(driver, node_id, cap).find_element(By.CSS_SELECTOR, ".result").text


def has(driver: WebDriver, css: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, css))


# -- the tests, in order -------------------------------------------------------------------


def test_the_page_needs_no_token_and_forbids_inline_script(lab):
    status, body, headers = lab.http("GET", "/", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="/app.js"></script>' in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    status, body, headers = lab.http("GET", "/app.js", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"innerHTML" not in body  # data reaches the page as text only
    assert lab.http("GET", "/style.css", token=None)[0] == 200
    # The API behind it still wants the token; a path that is not a page is no way around it.
    assert lab.http("GET", "/api/devices", token=None)[0] == 401
    assert lab.http("GET", "/index.html", token=None)[0] == 401
    assert lab.http("GET", "/../token", token=None)[0] in (401, 404)


def test_the_page_takes_the_token_from_the_fragment_and_lists_devices(lab, browser):
    browser.get(f"{lab.url}/#token={TOKEN}")
    until(browser, lambda: shown(browser, lab.climate.id, "power") == "12.5 W", "climate card")
    assert shown(browser, lab.climate.id, "setpoint") == "21 °C"
    assert shown(browser, lab.climate.id, "hvac_mode") == "off"
    assert shown(browser, lab.climate.id, "switch") == "off"
    climate = card(browser, lab.climate.id)
    assert climate.find_element(By.CSS_SELECTOR, "h3").text == "Hall climate"
    assert climate.find_element(By.CSS_SELECTOR, ".status").text == "online"
    assert "kithnet-climate" in climate.text and "last seen" in climate.text
    # Grouped by room, the real plug among them with its readings and units.
    rooms = [e.get_attribute("data-room") for e in browser.find_elements(By.CSS_SELECTOR, ".room")]
    assert rooms == ["attic", "hall", "kitchen", "living room"]
    kitchen = browser.find_element(By.CSS_SELECTOR, '.room[data-room="kitchen"]')
    assert kitchen.find_element(By.CSS_SELECTOR, "h3").text == "Kitchen plug"
    until(browser, lambda: shown(browser, lab.plug, "power").endswith(" W"), "plug power")
    # The token left the address bar for the browser's storage; the header shows health.
    assert browser.current_url == f"{lab.url}/"
    assert browser.execute_script("return localStorage.getItem('kithnet.token')") == TOKEN
    until(
        browser, lambda: "4/4 nodes online" in browser.find_element(By.ID, "health").text, "health"
    )
    until(browser, lambda: browser.find_element(By.ID, "conn").get_attribute("data-state") == "on",
          "the WebSocket is live")  # fmt: skip
    # Every writable capability has its control: toggle, select, number.
    assert row(browser, lab.climate.id, "switch").find_element(By.CSS_SELECTOR, "button.toggle")
    select = row(browser, lab.climate.id, "hvac_mode").find_element(By.TAG_NAME, "select")
    assert select.get_attribute("value") == "off"
    number = row(browser, lab.climate.id, "setpoint").find_element(By.CSS_SELECTOR, "input")
    assert number.get_attribute("type") == "number" and number.get_attribute("value") == "21"


def test_a_report_updates_the_page_live(lab, browser):
    browser.execute_script("window.__same_page = true")
    for watts in (453, 610, 388):
        lab.climate.report({2: watts})
        want = f"{watts / 10:g} W"
        until(browser, lambda want=want: shown(browser, lab.climate.id, "power") == want, want)
    lab.climate.report({4: 2})
    until(browser, lambda: shown(browser, lab.climate.id, "hvac_mode") == "cool", "hvac_mode")
    select = row(browser, lab.climate.id, "hvac_mode").find_element(By.TAG_NAME, "select")
    assert select.get_attribute("value") == "cool"
    assert browser.execute_script("return window.__same_page") is True  # no reload


def test_a_button_press_flashes_and_is_logged(lab, browser):
    # The real plug's button, pressed in its simulated world, reaches the page live.
    browser.execute_script(
        """const tr = arguments[0]; window.__flashed = false;
        new MutationObserver(() => { if (tr.classList.contains('flash')) window.__flashed = true; })
          .observe(tr, {attributes: true});""",
        row(browser, lab.plug, "button"),
    )
    lab.boards[0].world.press()
    log = browser.find_element(By.ID, "log")
    until(browser, lambda: "Kitchen plug: button single" in log.text, "the press in the log")
    assert browser.execute_script("return window.__flashed") is True
    assert shown(browser, lab.plug, "button") == "single"


def test_the_switch_commands_the_real_plug(lab, browser):
    for _ in range(2):
        toggle = row(browser, lab.plug, "switch").find_element(By.CSS_SELECTOR, "button.toggle")
        before = toggle.get_attribute("aria-checked") == "true"
        toggle.click()
        until(browser, lambda: result(browser, lab.plug, "switch") == "applied", "applied")
        assert lab.g.device(lab.plug)["state"]["switch"]["value"] is (not before)
        toggle = row(browser, lab.plug, "switch").find_element(By.CSS_SELECTOR, "button.toggle")
        assert toggle.get_attribute("aria-checked") == ("false" if before else "true")
        assert shown(browser, lab.plug, "switch") == ("off" if before else "on")


def test_a_slider_dims_the_real_lamp(lab, browser):
    slider = row(browser, lab.lamp, "brightness").find_element(By.CSS_SELECTOR, "input")
    assert slider.get_attribute("type") == "range"
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0", "255")
    before = lab.g.device(lab.lamp)["state"]["brightness"]["value"]
    assert slider.get_attribute("value") == str(before)
    want = before - 1 if before > 0 else 1
    slider.send_keys(Keys.ARROW_LEFT if before > 0 else Keys.ARROW_RIGHT)  # one step: change
    until(browser, lambda: result(browser, lab.lamp, "brightness") == "applied", "applied")
    assert lab.g.device(lab.lamp)["state"]["brightness"]["value"] == want
    until(browser, lambda: shown(browser, lab.lamp, "brightness") == str(want), "its value")
    ct = row(browser, lab.lamp, "colour_temp").find_element(By.CSS_SELECTOR, "input")
    assert ct.get_attribute("type") == "range" and ct.get_attribute("step") == "1"


def test_a_setpoint_and_a_mode_are_set_from_the_page(lab, browser):
    number = row(browser, lab.climate.id, "setpoint").find_element(By.CSS_SELECTOR, "input")
    number.clear()
    number.send_keys("22.5\n")
    until(browser, lambda: shown(browser, lab.climate.id, "setpoint") == "22.5 °C", "setpoint")
    assert lab.climate.commands[-1] == {3: 2250}
    select = row(browser, lab.climate.id, "hvac_mode").find_element(By.TAG_NAME, "select")
    select.find_element(By.CSS_SELECTOR, 'option[value="heat"]').click()
    until(browser, lambda: shown(browser, lab.climate.id, "hvac_mode") == "heat", "mode")
    assert lab.climate.commands[-1] == {4: 1}
    assert lab.g.device(lab.climate.id)["state"]["hvac_mode"]["value"] == "heat"


def test_a_refused_command_shows_the_reason(lab, browser):
    lab.climate.refuse = errors.BUSY
    try:
        status, body, _ = lab.http(
            "POST", f"/api/devices/{lab.climate.id}/set", {"values": {"switch": True}}
        )
        assert status == 409, body
        toggle = row(browser, lab.climate.id, "switch").find_element(
            By.CSS_SELECTOR, "button.toggle"
        )
        toggle.click()
        until(
            browser, lambda: body["reason"] in result(browser, lab.climate.id, "switch"), "reason"
        )
        assert "409" in result(browser, lab.climate.id, "switch")
        assert shown(browser, lab.climate.id, "switch") == "off"  # what the node has
        assert "error" in row(browser, lab.climate.id, "switch").find_element(
            By.CSS_SELECTOR, ".result"
        ).get_attribute("class")
    finally:
        lab.climate.refuse = None
    # A value out of range is the API's 400, with its reason, before anything is sent.
    number = row(browser, lab.climate.id, "setpoint").find_element(By.CSS_SELECTOR, "input")
    number.clear()
    number.send_keys("99\n")
    until(browser, lambda: "setpoint takes a number" in result(browser, lab.climate.id, "setpoint"),
          "range message")  # fmt: skip


def test_a_sleeping_node_command_is_shown_as_queued(lab, browser):
    # Once the gateway no longer counts it awake (it sleeps once its report is acked).
    wait(lambda: time.time() - lab.g.device(lab.sleeper.id)["last_seen"] > service._AWAKE_S)
    toggle = row(browser, lab.sleeper.id, "switch").find_element(By.CSS_SELECTOR, "button.toggle")
    toggle.click()
    until(browser, lambda: "queued" in result(browser, lab.sleeper.id, "switch"), "queued")
    assert "wakes" in result(browser, lab.sleeper.id, "switch")
    assert lab.sleeper.commands == []


def test_a_pending_node_is_adopted_from_the_page(lab, browser):
    newcomer = ProtoNode(lab.g.gw.udp_port, name="Porch climate")
    lab.nodes.append(newcomer)
    css = f'.pending-node[data-id="{newcomer.id}"]'
    until(browser, lambda: has(browser, css), "the pending node on the page")
    box = browser.find_element(By.CSS_SELECTOR, css)
    assert "kithnet-climate" in box.text and "Porch climate" in box.text
    box.find_element(By.NAME, "key").send_keys(KEY.hex())
    name = box.find_element(By.NAME, "name")
    name.clear()
    name.send_keys("Porch AC")
    box.find_element(By.NAME, "room").send_keys("porch")
    box.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(browser, lambda: has(browser, f'.room[data-room="porch"] [data-id="{newcomer.id}"]'),
          "the adopted node in its room")  # fmt: skip
    assert not has(browser, css)
    # Its card may be drawn again meanwhile (the node's hello updates the device): until().
    until(browser, lambda: card(browser, newcomer.id).find_element(By.CSS_SELECTOR, "h3").text
          == "Porch AC", "its name on its card")  # fmt: skip
    wait(lambda: newcomer.sess is not None)  # the gateway now holds its key: a session
    newcomer.report({1: True, 2: 77, 3: 2000, 4: 1})
    until(browser, lambda: shown(browser, newcomer.id, "power") == "7.7 W", "its first report")
    dev = lab.g.device(newcomer.id)
    assert (dev["name"], dev["room"], dev["online"]) == ("Porch AC", "porch", True)


def test_a_hostile_name_is_shown_as_text(lab, browser):
    status, dev, _ = lab.http("PATCH", f"/api/devices/{lab.climate.id}", {"name": HOSTILE})
    assert status == 200, dev
    until(browser, lambda: card(browser, lab.climate.id).find_element(By.CSS_SELECTOR, "h3").text
          == HOSTILE, "the name as text")  # fmt: skip
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return window.__xss") is None


def test_the_page_reconnects_when_the_socket_drops(lab, browser, caplog):
    conn = browser.find_element(By.ID, "conn")
    assert conn.get_attribute("data-state") == "on"

    async def drop() -> None:  # the gateway closes every WebSocket it has
        for ws in list(lab.g.gw._api.app[api.SOCKETS]):
            await ws.close()

    lab.g.call(drop)
    until(browser, lambda: conn.get_attribute("data-state") == "off", "the drop noticed")
    assert conn.text.startswith("reconnecting in")
    until(browser, lambda: conn.get_attribute("data-state") == "on", "live again")
    lab.climate.report({2: 250})  # reaches the page over the new socket
    until(browser, lambda: shown(browser, lab.climate.id, "power") == "25 W", "live after it")
    # The dropped socket's access log line has its path, but not the token of its query.
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("GET /api/ws?token=- " in line for line in lines), lines
    assert not any(TOKEN in line for line in lines), lines


def test_the_history_chart_draws_the_points(lab, browser):
    def stored() -> list[dict]:  # every reading so far, the last one (25 W) committed too
        status, points, _ = lab.http("GET", f"/api/devices/{lab.climate.id}/history/power")
        assert status == 200, points
        return points if points and points[-1]["value"] == 25 else []

    points = wait(stored)
    assert [p["value"] for p in points] == [12.5, 45.3, 61, 38.8, 25]
    row(browser, lab.climate.id, "power").find_element(By.CSS_SELECTOR, "button.cap-name").click()
    until(browser, lambda: has(browser, "#chart svg polyline"), "the chart")
    line = browser.find_element(By.CSS_SELECTOR, "#chart svg polyline").get_attribute("points")
    xy = [tuple(map(float, p.split(","))) for p in line.split()]
    assert len(xy) == len(points)
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)  # oldest first, left to right
    ys = [y for _, y in xy]  # SVG's y grows downwards: the highest reading is the top point
    top = max(range(len(points)), key=lambda i: points[i]["value"])
    assert ys[top] == min(ys)
    title = browser.find_element(By.ID, "chart-title").text
    assert title == f"{HOSTILE} · power (W)"
    assert "61 W" in browser.find_element(By.ID, "chart").text  # the top of the scale


def test_no_script_error_and_no_policy_violation_so_far(browser):
    # Chrome logs uncaught exceptions and CSP refusals as SEVERE; an API answer of 4xx is
    # also logged ("Failed to load resource"), and the tests above asked for some.
    logged = browser.get_log("browser")
    assert [
        e for e in logged if e["level"] == "SEVERE" and "Failed to load" not in e["message"]
    ] == []


def test_a_wrong_token_shows_a_clear_message_and_the_form(lab, browser):
    browser.get(f"{lab.url}/#token=not-the-token")
    until(browser, lambda: browser.find_element(By.ID, "login").is_displayed(), "the form")
    msg = browser.find_element(By.ID, "login-msg").text
    assert msg == "The gateway refused the token (wrong token). Enter its current token."
    assert not browser.find_element(By.ID, "main").is_displayed()
    assert browser.execute_script("return localStorage.getItem('kithnet.token')") is None
    # The right one, typed into the form, opens the dashboard.
    browser.find_element(By.ID, "token-input").send_keys(TOKEN + "\n")
    until(browser, lambda: shown(browser, lab.plug, "switch") in ("on", "off"), "the devices")
    assert browser.find_element(By.ID, "login-msg").is_displayed() is False
