"""Starts a real `switchboard serve` for the slixmpp tests and talks REST to it."""

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Guards against a hung server only; nothing is asserted about time.
READY_LIMIT_S = 60


def binary() -> str:
    explicit = os.environ.get("SWITCHBOARD_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "debug" / "switchboard")


class Server:
    def __init__(self) -> None:
        self.data = tempfile.TemporaryDirectory(prefix="switchboard-slixmpp-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary(), "serve", "--data-dir", self.data.name, "--http-addr", "127.0.0.1:0",
             "--https-addr", "127.0.0.1:0", "--xmpp-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.banner = {}
        deadline = time.monotonic() + READY_LIMIT_S
        for line in self.proc.stdout:
            if line.strip() == "Switchboard ready":
                break
            match = re.match(r"\s+(\S.*?)\s{2,}(\S+)", line)
            if match:
                self.banner[match.group(1)] = match.group(2)
            if time.monotonic() > deadline:
                raise RuntimeError("switchboard did not get ready")
        else:
            raise RuntimeError(f"switchboard exited early: {self.proc.wait()}")
        self.http = self.banner["REST API (HTTP)"]
        host, port = self.banner["XMPP (TCP)"].rsplit(":", 1)
        self.xmpp = (host, int(port))
        self.app = {
            "id": int(self.banner["application id"]),
            "key": self.banner["auth key"],
            "secret": self.banner["auth secret"],
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=READY_LIMIT_S) == 0
        self.data.cleanup()

    def rest(self, method: str, path: str, token: str | None = None, form: dict | None = None) -> dict:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"{self.http}{path}", data=body, method=method)
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        if token:
            request.add_header("QB-Token", token)
        with urllib.request.urlopen(request) as response:
            text = response.read().decode()
            return json.loads(text) if text else {}

    def session(self, login: str | None = None, password: str | None = None) -> dict:
        params = {"application_id": str(self.app["id"]), "auth_key": self.app["key"],
                  "nonce": "7", "timestamp": str(int(time.time()))}
        if login:
            params["user[login]"] = login
            params["user[password]"] = password
        signed = "&".join(sorted(f"{k}={v}" for k, v in params.items()))
        params["signature"] = hmac.new(self.app["secret"].encode(), signed.encode(), hashlib.sha1).hexdigest()
        return self.rest("POST", "/session.json", form=params)["session"]

    def sign_up(self, login: str) -> dict:
        token = self.session()["token"]
        form = {"user[login]": login, "user[password]": f"{login}-password"}
        user = self.rest("POST", "/users.json", token, form)["user"]
        user["password"] = f"{login}-password"
        user["jid"] = f"{user['id']}-{self.app['id']}@localhost"
        return user


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.stop()
