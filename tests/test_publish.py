"""Publishing: the staged file set and every failure path, for real (offline mode, no token, a local HTTP server
answering 401/403/409 or not answering in time, a closed port). Nothing here reaches the Hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures_runs import make_run
from huggingface_hub import constants

import runfolder as R
from model_cards.publish import PublishError, publish_run, retry_command, staged_files

REPO = "acme/chest-resnet"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def run(runs_root: Path, request: pytest.FixtureRequest) -> Path:
    return make_run(runs_root, re.sub(r"\W+", "-", request.node.name).strip("-"))


def _digests(run_dir: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def test_staged_files_exclude_checkpoint_and_temp_files(run: Path) -> None:
    (run / ".README.md.x1.tmp").write_text("half-written")
    (run / "checkpoint" / "nested").mkdir()
    (run / "checkpoint" / "nested" / "ema.pt").write_bytes(b"state")
    assert staged_files(run) == [
        "config.json", "history.csv", "metrics.json", "model.safetensors", "predictions.parquet", "train_config.yaml",
    ]  # fmt: skip


def _cli(run: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_cards.publish", str(run), REPO],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | extra


def test_cli_offline_fails_loudly_and_leaves_the_run_untouched(run: Path) -> None:
    before = _digests(run)
    result = _cli(run, _clean_env(HF_HUB_OFFLINE="1", HF_TOKEN="hf_test_token"))
    assert result.returncode == 1
    assert "offline mode" in result.stderr
    assert f"python -m model_cards.publish {run} {REPO}" in result.stderr
    assert _digests(run) == before


def test_cli_without_token_fails_loudly(run: Path, tmp_path: Path) -> None:
    empty_home = tmp_path / "hf-home"
    empty_home.mkdir()
    before = _digests(run)
    result = _cli(run, _clean_env(HF_HOME=str(empty_home), HF_HUB_OFFLINE="0"))
    assert result.returncode == 1
    assert "no Hugging Face token" in result.stderr and "HF_TOKEN" in result.stderr
    assert f"python -m model_cards.publish {run} {REPO}" in result.stderr
    assert _digests(run) == before


class _Hub:
    """A local HTTP server standing in for the Hub: answers every request with one status (or too late)."""

    def __init__(self, status: int, delay_s: float = 0.0) -> None:
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(delay_s)
                # like the Hub, a 409 names the existing repo (create_repo(exist_ok=True) reads it)
                body = json.dumps({"error": "refused by the test Hub", "url": f"{hub.url}/{REPO}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Online mode pointed at whatever endpoint a test sets, whatever this machine's HF_* settings are."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (401, "rejected the token (401 Unauthorized)"),
        (403, f"may not write to {REPO} (403 Forbidden)"),
        (409, f"name {REPO} is taken or busy (409 Conflict)"),
    ],
)
def test_http_errors(run: Path, online: None, monkeypatch: pytest.MonkeyPatch, status: int, cause: str) -> None:
    hub = _Hub(status)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    before = _digests(run, skip=(R.CARD, R.CONFUSION_PNG))
    try:
        with pytest.raises(PublishError) as raised:
            publish_run(run, REPO, token="hf_test_token")
    finally:
        hub.close()
    message = str(raised.value)
    assert cause in message
    assert message.endswith(f"Retry with: {retry_command(run, REPO)}")
    assert hub.requests, "the library really talked to the server"
    assert _digests(run, skip=(R.CARD, R.CONFUSION_PNG)) == before
    assert "hf-hub:acme/chest-resnet" in (run / "README.md").read_text()  # card rewritten for the repo


def test_timeout(run: Path, online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _Hub(200, delay_s=60)  # answers far too late: only the client's timeout can end the upload in time
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("ARENA_HUB_TIMEOUT", "0.5")
    started = time.monotonic()
    try:
        with pytest.raises(PublishError, match=r"did not answer within 0.5 s \(timeout"):
            publish_run(run, REPO, private=True, token="hf_test_token")
    finally:
        hub.close()
    assert time.monotonic() - started < 30  # cut off by the timeout, not by the server's answer
    assert (run / "checkpoint" / "last.pt").is_file()


def test_unreachable_hub(run: Path, online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(PublishError, match=f"cannot reach the Hub at http://127.0.0.1:{port}") as raised:
        publish_run(run, REPO, token="hf_test_token")
    assert str(raised.value).endswith(retry_command(run, REPO))


def test_incomplete_run_folder_is_refused(run: Path) -> None:
    (run / "model.safetensors").unlink()
    with pytest.raises(PublishError, match="missing model.safetensors"):
        publish_run(run, REPO, token="hf_test_token")


def test_retry_command_quotes_paths() -> None:
    assert retry_command(Path("runs/my run"), REPO, private=True) == (
        f"python -m model_cards.publish 'runs/my run' {REPO} --private"
    )
