"""A small Chrome DevTools Protocol client for headless Chromium (tests and bench/).

Starts ``chromium --headless=new`` on a free port (read back from DevToolsActivePort in
its own profile folder), attaches to its page over a WebSocket (websocket-client) and
sends commands one at a time; events that arrive meanwhile are kept in ``events``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, profile: Path, width: int = 1400, height: int = 1000, timeout: float = 30):
        import websocket

        exe = chromium()
        if exe is None:
            raise RuntimeError("chromium not found")
        active = Path(profile) / "DevToolsActivePort"
        active.unlink(missing_ok=True)  # a reused profile's file names a closed port
        self.proc = subprocess.Popen(
            [
                exe,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--mute-audio",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (active.is_file() and active.read_text().count("\n") >= 1):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("chromium did not open its debugging port")
                time.sleep(0.05)
            port = int(active.read_text().split()[0])
            url = f"http://127.0.0.1:{port}/json/list"
            with urllib.request.urlopen(url, timeout=timeout) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
            )
        except BaseException:
            self.close()  # never leave the browser running
            raise
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr: str):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expr)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(expr)
            time.sleep(0.05)

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        self.send("Page.enable")
        self.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click (press and release) at viewport coordinates."""
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
