"""A throwaway PostgreSQL cluster: Debian's initdb in a temporary folder, run as the
postgres user (initdb and pg_ctl refuse root), listening on 127.0.0.1 at a free port,
fsync off. The tests start one per session (tests/conftest.py); by hand:

    python tests/pg_cluster.py                      # prints the URL, stops on Ctrl-C
    python tests/pg_cluster.py CMD ARGS...          # runs CMD with $PG_TEST_URL set
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "digest"
BIN_GLOB = "/usr/lib/postgresql/*/bin"


def bin_dir() -> Path | None:
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found and Path(found[-1], "initdb").exists() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_postgres(args: list[str]) -> list[str]:
    """Run as the postgres user when we are root (the tools refuse root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    def __init__(self) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL not installed (apt-get install postgresql)")
        self.bin = found
        self.folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.data = self.folder / "data"
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> Cluster:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        self.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A",
                  "scram-sha-256", "--pwfile", str(pwfile), "-E", "UTF8", "--locale", "C.UTF-8"])
        pwfile.unlink()
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=100")
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                  "-t", "60", "-l", str(self.folder / "log"), "start"])
        return self

    def stop(self) -> None:
        if self.data.exists():
            self.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop"], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, args: list[str], check: bool = True) -> None:
        subprocess.run(as_postgres(args), check=check, capture_output=True, timeout=120,
                       cwd=self.folder)


def main() -> int:
    cluster = Cluster().start()
    try:
        if len(sys.argv) > 1:
            return subprocess.run(sys.argv[1:], env={**os.environ, "PG_TEST_URL": cluster.url},
                                  check=False).returncode
        print(cluster.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            sys.stdin.read() if not sys.stdin.isatty() else input("Enter stops it. ")
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
