"""Open a page in headless Chromium over the DevTools protocol (no browser downloads:
Debian's ``chromium``, driven with ``websocket-client``) and report what it saw:
images and whether each loaded, console errors, uncaught exceptions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    title: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    tables: int = 0
    errors: list[str] = field(default_factory=list)  # console errors and exceptions


class Chromium:
    """One headless browser for several page loads."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="npsim-chromium-")
        # a file, not a pipe: chromium logs a lot, and a full pipe would stall it
        self.log = open(Path(self.profile) / "stderr.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        port = self._port()
        self.socket = websocket.create_connection(self._page_socket(port), timeout=timeout,
                                                  suppress_origin=True)
        self._next_id = 0
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (Path(self.profile) / "stderr.log").read_bytes()
                raise RuntimeError("chromium exited: " + log.decode(errors="replace")[-2000:])
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def _page_socket(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise TimeoutError("chromium opened no page")

    def call(self, method: str, events: list[dict[str, Any]] | None = None,
             **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; events arriving meanwhile are kept."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if events is not None and "method" in message:
                events.append(message)

    def open(self, path: Path) -> PageReport:
        """Load a local file, wait for its load event, then look at the page."""
        events: list[dict[str, Any]] = []
        self.call("Page.navigate", events, url=path.resolve().as_uri())
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not finish loading")
            events.append(json.loads(self.socket.recv()))
        probe = ("JSON.stringify({title: document.title,"
                 " tables: document.querySelectorAll('table').length,"
                 " images: Array.from(document.images).map(i => ({alt: i.alt,"
                 " complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))})")
        value = self.call("Runtime.evaluate", events, expression=probe,
                          returnByValue=True)["result"]["value"]
        seen = json.loads(value)
        report = PageReport(seen["title"], seen["images"], seen["tables"])
        for event in events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params["type"] in (
                    "error", "assert"):
                report.errors.append("console: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif event["method"] == "Runtime.exceptionThrown":
                report.errors.append("exception: " + params["exceptionDetails"]["text"])
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                report.errors.append("log: " + params["entry"]["text"])
        return report

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing anyway
            self.call("Browser.close")
        self.socket.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def must_have_browser() -> bool:
    """CI must run the browser check (``.ci/run`` installs chromium); elsewhere a
    missing browser skips it."""
    return bool(os.environ.get("CI"))
