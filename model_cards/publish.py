"""Publish a run folder to the Hugging Face Hub as a timm model repository.

    python -m model_cards.publish RUN_DIR ORG/NAME [--private]

Uploads everything but `checkpoint/` in one commit, after rewriting the model card with the repo id. Every failure
(offline, no token, 401/403, name taken, timeout, unreachable Hub) raises `PublishError` with the cause and the exact
command to retry; the run folder stays complete on disk (only README.md and its confusion matrix are rewritten).
The token comes from HF_TOKEN or `hf auth login`; ARENA_HUB_TIMEOUT (seconds, default 60) bounds each Hub request.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, get_session, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import filter_repo_objects

from model_cards.card import write_card
from runfolder import CHECKPOINT, CONFIG, METRICS, WEIGHTS

# Resumable training state and local clutter (hidden files, half-written temp files) never go to the Hub.
IGNORE_PATTERNS = [f"{CHECKPOINT}/*", ".*", "*/.*", "*.tmp", "__pycache__/*"]
OFFLINE = "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set); unset it to publish"
REQUIRED = (CONFIG, WEIGHTS, METRICS)
HTTP_CAUSES = {
    401: "the Hub rejected the token (401 Unauthorized): invalid or expired; set HF_TOKEN to a write token",
    403: "the token may not write to {repo} (403 Forbidden): it is read-only, or the namespace belongs to someone else",
    409: "the repository name {repo} is taken or busy (409 Conflict): pick another NAME or retry later",
}


class PublishError(RuntimeError):
    """Publishing failed; the message names the cause and the command to retry."""


def retry_command(run_dir: Path, repo_id: str, private: bool = False) -> str:
    return shlex.join(["python", "-m", "model_cards.publish", str(run_dir), repo_id]) + (
        " --private" if private else ""
    )


def staged_files(run_dir: Path) -> list[str]:
    """Relative POSIX paths that publishing uploads: upload_folder's own filter with the same ignore patterns."""
    run_dir = Path(run_dir)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=IGNORE_PATTERNS))


def _hub_timeout_s() -> float:
    return float(os.environ.get("ARENA_HUB_TIMEOUT", "60"))


@contextmanager
def _bounded_requests() -> Iterator[None]:
    """huggingface_hub's shared HTTP client has no timeout; a hung Hub must fail the publish, not block forever."""
    session = get_session()
    previous = session.timeout
    session.timeout = httpx2.Timeout(_hub_timeout_s())
    try:
        yield
    finally:
        session.timeout = previous


def _cause(error: Exception, repo_id: str) -> str:
    """Say in words what went wrong talking to the Hub."""
    if isinstance(error, OfflineModeIsEnabled):
        return OFFLINE
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        default = f"the Hub answered HTTP {status}: {error}"
        return HTTP_CAUSES.get(status, default).format(repo=repo_id)
    if isinstance(error, httpx2.TimeoutException):
        return f"the Hub did not answer within {_hub_timeout_s():g} s (timeout; ARENA_HUB_TIMEOUT sets the limit)"
    if isinstance(error, httpx2.TransportError | ConnectionError):
        return f"cannot reach the Hub at {constants.ENDPOINT} ({type(error).__name__}: {error})"
    return f"{type(error).__name__}: {error}"


def _check_ready(run_dir: Path, token: str | None) -> None:
    """Fail before touching the network (or the card) when publishing cannot work."""
    missing = [name for name in REQUIRED if not (run_dir / name).is_file()]
    if missing:
        raise PublishError(f"{run_dir} is not a complete run folder: missing {', '.join(missing)}")
    if constants.is_offline_mode():
        raise PublishError(OFFLINE)
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a write token")


def publish_run(
    run_dir: Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create (or reuse) the model repo and upload the run folder without checkpoint/ in one commit; returns its URL."""
    run_dir = Path(run_dir)
    retry = retry_command(run_dir, repo_id, private)
    token = token or get_token()
    try:
        _check_ready(run_dir, token)
    except PublishError as error:
        raise PublishError(f"{error}. Retry with: {retry}") from None
    write_card(run_dir, hub_repo=repo_id)
    api = HfApi(token=token)
    try:
        with _bounded_requests():
            url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=run_dir,
                ignore_patterns=IGNORE_PATTERNS,
                commit_message=commit_message or f"Backbone Arena run {run_dir.name}",
            )
    except (httpx2.HTTPError, OSError) as error:  # HfHubHTTPError and OfflineModeIsEnabled are both
        raise PublishError(
            f"publishing {run_dir} to {repo_id} failed: {_cause(error, repo_id)}. "
            f"The run folder is intact. Retry with: {retry}"
        ) from error
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_cards.publish", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run folder (runs/<run-id>)")
    parser.add_argument("repo_id", help="Hub repository, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    args = parser.parse_args(argv)
    try:
        url = publish_run(args.run_dir, args.repo_id, private=args.private)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"published {args.run_dir} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
