"""The search's Ray dashboard: loopback binding, token sign-in, and a headless-browser check.

The slow test runs this file as a script (``serve``) in a child process that starts a local Ray
with the dashboard and token authentication, then runs a small Tune experiment until a stop file
appears. The test signs in to that dashboard with headless Chromium over the Chrome DevTools
protocol and checks that the Actors page lists the running trainable.
"""

if __name__ == "__main__":  # run as a file: import the stages from the repository root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import asyncio
import base64
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from search.dashboard import (
    DashboardConfigError,
    dashboard_address,
    dashboard_init_kwargs,
    describe_dashboard,
    is_loopback,
    token_source,
)

EXPERIMENT_NAME = "dashboard_probe"
TRAINABLE_NAME = "dashboard_probe_trainable"
READY_MARK = "DASHBOARD_READY"
SCRIPT_NAME = Path(__file__).name
"""The child process runs this file, so the Jobs page lists it in the driver's entrypoint."""
SCREENSHOT = Path("/tmp/dashboard.png")
AUTH_COOKIE = "ray-authentication-token"
TOKEN_INPUT = 'input[placeholder="Enter your authentication token"]'
WAIT_S = 90.0


# ---------------------------------------------------------------------------------------------
# dashboard_init_kwargs and describe_dashboard without Ray


@pytest.fixture
def clean_auth_env(monkeypatch):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_init_kwargs_default_loopback(clean_auth_env):
    assert dashboard_init_kwargs() == {"include_dashboard": True, "dashboard_host": "127.0.0.1"}


def test_init_kwargs_with_port(clean_auth_env):
    assert dashboard_init_kwargs("127.0.0.1", 8300) == {
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "dashboard_port": 8300,
    }


@pytest.mark.parametrize("port", [0, -1, 65536, "8265", True, 8265.0])
def test_init_kwargs_rejects_bad_port(clean_auth_env, port):
    with pytest.raises(DashboardConfigError, match="port must be an integer in 1-65535"):
        dashboard_init_kwargs("127.0.0.1", port)


@pytest.mark.parametrize("host", ["", "  ", None])
def test_init_kwargs_rejects_empty_host(clean_auth_env, host):
    with pytest.raises(DashboardConfigError, match="dashboard host must be an interface address"):
        dashboard_init_kwargs(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_open_host_without_auth_rejected(clean_auth_env, host):
    clean_auth_env.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(DashboardConfigError, match="rejected dashboard host"):
        dashboard_init_kwargs(host)


def test_open_host_with_token_warns(clean_auth_env, caplog):
    clean_auth_env.setenv("RAY_AUTH_MODE", "token")
    with caplog.at_level(logging.WARNING, logger="search.dashboard"):
        kwargs = dashboard_init_kwargs("0.0.0.0", 8265)

    assert kwargs["dashboard_host"] == "0.0.0.0"
    assert "reachable from other machines" in caplog.text


def test_loopback_without_auth_warns(clean_auth_env, caplog):
    clean_auth_env.setenv("RAY_AUTH_MODE", "disabled")
    with caplog.at_level(logging.WARNING, logger="search.dashboard"):
        dashboard_init_kwargs("127.0.0.1")

    assert "will not ask for a token" in caplog.text


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.7", False),
        ("example.org", False),
    ],
)
def test_is_loopback_table(host, expected):
    assert is_loopback(host) is expected


def test_token_source_order(clean_auth_env):
    assert token_source() == "~/.ray/auth_token"
    clean_auth_env.setenv("RAY_AUTH_TOKEN_PATH", "/secrets/ray_token")
    assert token_source() == "the file /secrets/ray_token (RAY_AUTH_TOKEN_PATH)"
    clean_auth_env.setenv("RAY_AUTH_TOKEN", "not-printed")
    assert token_source() == "the RAY_AUTH_TOKEN environment variable"


def test_describe_without_dashboard():
    assert describe_dashboard(SimpleNamespace(dashboard_url="")).startswith(
        "Ray dashboard: not running"
    )


def test_dashboard_address_sources():
    assert dashboard_address(SimpleNamespace(dashboard_url="127.0.0.1:8265")) == "127.0.0.1:8265"
    assert dashboard_address({"webui_url": "127.0.0.1:8266"}) == "127.0.0.1:8266"
    assert dashboard_address({}) is None


# ---------------------------------------------------------------------------------------------
# The child process: a local Ray with the dashboard, running a Tune experiment


def dashboard_probe_trainable(config: dict) -> None:
    """Report an epoch every half second until the stop file exists (at most 5 minutes)."""
    from ray import tune

    deadline = time.monotonic() + 300.0
    epoch = 0
    while not os.path.exists(config["stop_file"]) and time.monotonic() < deadline:
        epoch += 1
        tune.report({"epoch": epoch, "val_dice": 1.0 - 1.0 / (epoch + 1)})
        time.sleep(0.5)


def serve(storage_path: str, port: int, stop_file: str) -> None:
    """Start Ray with the search's dashboard settings and run the probe experiment."""
    import ray
    from ray import tune

    context = ray.init(
        address="local",
        num_cpus=1,
        object_store_memory=200 * 1024**2,
        **dashboard_init_kwargs("127.0.0.1", port),
    )
    try:
        print(describe_dashboard(context), flush=True)
        print(f"{READY_MARK} {dashboard_address(context)}", flush=True)
        tuner = tune.Tuner(
            dashboard_probe_trainable,
            param_space={"stop_file": stop_file},
            run_config=tune.RunConfig(name=EXPERIMENT_NAME, storage_path=storage_path, verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# Helpers of the browser test


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _http_json(url: str, token: str) -> dict:
    import json

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.load(response)


class ChildProcess:
    """A child process whose combined output is collected line by line in a thread."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"no line starting with {prefix!r} within {timeout_s} s; "
            f"output:\n{self.output()[-4000:]}"
        )

    def stop(self, timeout_s: float) -> None:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)


class DevToolsError(RuntimeError):
    """A Chrome DevTools protocol call returned an error."""


class DevToolsPage:
    """One page of headless Chromium, driven over the Chrome DevTools protocol (a websocket)."""

    def __init__(self, websocket) -> None:
        self._websocket = websocket
        self._next_id = 0

    async def call(self, method: str, **params) -> dict:
        self._next_id += 1
        message_id = self._next_id
        await self._websocket.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self._websocket.receive_json()
            if message.get("id") != message_id:
                continue  # an event, or the response to another call
            if "error" in message:
                raise DevToolsError(f"DevTools {method} failed: {message['error']}")
            return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def text(self) -> str:
        """Return the page's visible text; "" while a navigation or reload replaces the page."""
        try:
            return await self.evaluate("document.body ? document.body.innerText : ''") or ""
        except DevToolsError as error:
            if "navigated or closed" in str(error) or "context" in str(error).lower():
                return ""
            raise

    async def wait_for_text(self, needle: str, timeout_s: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = await self.text()
            if needle in text:
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(
            f"page never showed {needle!r} within {timeout_s} s; it showed:\n{text[:3000]}"
        )

    async def type_token(self, token: str) -> None:
        """Replace the sign-in dialog's input text with ``token`` and press Enter."""
        found = await self.evaluate(
            f"(() => {{ const field = document.querySelector('{TOKEN_INPUT}');"
            f" if (!field) return false; field.focus(); field.select(); return true; }})()"
        )
        assert found, "the sign-in dialog's token field is missing"
        await self.call("Input.insertText", text=token)
        for event in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=event,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
            )

    async def wait_for_cookie(self, url: str, name: str, timeout_s: float = WAIT_S) -> None:
        """Wait until the browser stores cookie ``name`` for ``url`` (HttpOnly cookies too)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cookies = (await self.call("Network.getCookies", urls=[url]))["cookies"]
            if any(cookie["name"] == name for cookie in cookies):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the dashboard set no {name} cookie within {timeout_s} s")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


async def _open_browser_page(chromium: str, profile_dir: Path):
    """Start headless Chromium; return (process, aiohttp session, websocket) of its first page."""
    import aiohttp

    process = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1400,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile_dir / "DevToolsActivePort"
    deadline = time.monotonic() + WAIT_S
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                f"chromium did not open its DevTools port (exit code {process.poll()})"
            )
        await asyncio.sleep(0.2)
    devtools_port = port_file.read_text().split()[0]

    session = aiohttp.ClientSession(trust_env=False)
    targets = await (await session.get(f"http://127.0.0.1:{devtools_port}/json/list")).json()
    page = next(target for target in targets if target["type"] == "page")
    websocket = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
    return process, session, websocket


async def _sign_in_and_capture(
    chromium: str, dashboard_url: str, token: str, profile_dir: Path
) -> dict[str, str]:
    """Sign in with a wrong token, then the right one; return the texts of the pages checked."""
    process, session, websocket = await _open_browser_page(chromium, profile_dir)
    texts = {}
    try:
        page = DevToolsPage(websocket)
        await page.call("Page.enable")
        await page.call("Runtime.enable")

        # Open the Actors page first: the sign-in dialog covers it, and after a successful
        # sign-in the dialog reloads the page, which then lists the actors.
        await page.navigate(f"{dashboard_url}/#/actors")
        texts["dialog"] = await page.wait_for_text("Authentication Token Required")
        await page.type_token("wrong-" + token[:8])
        texts["rejected"] = await page.wait_for_text("Invalid authentication token")

        await page.type_token(token)
        await page.wait_for_cookie(dashboard_url, AUTH_COOKIE)
        texts["actors"] = await page.wait_for_text(TRAINABLE_NAME)
        await page.screenshot(SCREENSHOT)

        await page.navigate(f"{dashboard_url}/#/jobs")
        texts["jobs"] = await page.wait_for_text(SCRIPT_NAME)
    finally:
        await websocket.close()
        await session.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return texts


@pytest.fixture
def chromium() -> str:
    """Path of the chromium binary; skip without it, fail when REQUIRE_BROWSER=1."""
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium not found: install it with `make browser` (Debian package chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; REQUIRE_BROWSER=1 requires the browser test to run")
        pytest.skip(reason)
    return path


def _wait_for_trainable_actor(address: str, token: str, timeout_s: float) -> None:
    url = f"http://{address}/api/v0/actors?limit=100&detail=true"
    deadline = time.monotonic() + timeout_s
    actors: list = []
    while time.monotonic() < deadline:
        actors = _http_json(url, token)["data"]["result"]["result"]
        if any(
            actor.get("repr_name") == TRAINABLE_NAME and actor.get("state") == "ALIVE"
            for actor in actors
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"no ALIVE {TRAINABLE_NAME} actor within {timeout_s} s: {actors}")


# ---------------------------------------------------------------------------------------------
# The browser test


@pytest.mark.slow
def test_browser_signs_in_and_sees_trial(chromium, tmp_path):
    token = secrets.token_hex(32)
    token_file = tmp_path / "auth_token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")
    }
    env.update(
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "PYTHONUNBUFFERED": "1"}
    )
    port = _free_port()
    stop_file = tmp_path / "stop"

    child = ChildProcess(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            str(tmp_path / "runs"),
            str(port),
            str(stop_file),
        ],
        env,
    )
    try:
        address = child.wait_for_line(READY_MARK, timeout_s=WAIT_S).split()[1]
        printed = child.output()
        printed_token = subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "get-auth-token"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        status_without_token = _http_status(f"http://{address}/api/jobs/")
        status_wrong_token = _http_status(f"http://{address}/api/jobs/", "wrong-token")
        _wait_for_trainable_actor(address, token, timeout_s=WAIT_S)

        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile_dir:
            texts = asyncio.run(
                _sign_in_and_capture(chromium, f"http://{address}", token, Path(profile_dir))
            )
    finally:
        stop_file.touch()
        child.stop(timeout_s=WAIT_S)

    assert address == f"127.0.0.1:{port}"
    assert f"Ray dashboard: http://127.0.0.1:{port}" in printed
    assert "`ray get-auth-token`" in printed
    assert f"ssh -N -L {port}:127.0.0.1:{port}" in printed
    assert token not in printed
    assert printed_token == token
    assert status_without_token == 401
    assert status_wrong_token == 403
    assert "Authentication Token Required" in texts["dialog"]
    assert "Invalid authentication token" in texts["rejected"]
    assert TRAINABLE_NAME in texts["actors"]
    assert "ALIVE" in texts["actors"]
    assert SCRIPT_NAME in texts["jobs"]
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert child.process.returncode == 0, child.output()[-4000:]


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "serve":
        sys.exit(f"usage: {sys.argv[0]} serve STORAGE_PATH PORT STOP_FILE")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
