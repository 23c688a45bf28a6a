"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 (tests and benchmarks)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    return subprocess.run(prefix + argv, check=True, capture_output=True, text=True)


@dataclass
class PgCluster:
    host: str
    port: int
    user: str
    password: str
    base: Path
    options: str = ""  # the server's -o options, to start it again the same way

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{dbname}"

    def admin(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def crash(self) -> None:
        """An immediate shutdown (SIGQUIT to the postmaster): no checkpoint, unwritten WAL lost —
        what a power cut does to the server's memory; the data directory stays."""
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"]
        )

    def start(self) -> None:
        """Start it again on the same port and data (crash recovery runs first)."""
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-o",
                self.options,
                "-l",
                str(self.base / "log"),
                "-w",
                "start",
            ]  # fmt: skip
        )

    def stop(self) -> None:
        try:
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.base / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            )
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster(durable: bool = True) -> PgCluster:
    """initdb + start. ``durable=False`` turns fsync off (fast tests); benchmarks keep it on."""
    if not (PG_BIN / "initdb").exists():
        raise FileNotFoundError(PG_BIN / "initdb")
    base = Path(tempfile.mkdtemp(prefix="composekit-pg-"))
    password = "pw-" + secrets.token_hex(8)
    pwfile = base / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    _as_postgres(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=200"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    cluster = PgCluster("127.0.0.1", port, "postgres", password, base, opts)
    cluster.start()
    return cluster
