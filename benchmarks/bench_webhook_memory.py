"""Memory of the readers' app under an unsigned flood of `/hooks/sendgrid`: N parallel
oversized POSTs (31 MB each, as in issue 10), with no signature headers, with junk
ones, and chunked with junk ones (no Content-Length to refuse on). Runs `digest web`
(or the README's gunicorn command with `--server gunicorn`) on 127.0.0.1 and prints one
line per attack: the server's resident memory before, its peak during, and after.

    python benchmarks/bench_webhook_memory.py [--clients 16] [--mb 31] [--server web]
    python benchmarks/bench_webhook_memory.py --small     # CI: 4 clients, 8 MB

Target: flat. Headers are judged before the body is read, so the first two attacks
cost nothing but the socket; a chunked body is read at most up to the 5 MB cap.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from webhook_support import SIGNATURE, TIMESTAMP, Signer

SECRET = "bench-webhook-memory-secret-0123"
PIECE = b"\0" * 256 * 1024
START_S = 30.0
SEND_TIMEOUT_S = 60.0


def write_site(root: Path, public_key: str) -> Path:
    config = root / "digest.toml"
    config.write_text(
        '[site]\nbase_url = "https://bench.example.org"\n'
        '[email]\nfrom = "Bench <news@bench.example.org>"\n'
        '[delivery]\ntransport = "files"\n'
        f'[sendgrid]\nwebhook_public_key = "{public_key}"\n', encoding="utf-8")
    (root / "content").mkdir()
    return config


def start(server: str, config: Path) -> tuple[subprocess.Popen[str], int, int]:
    """The server process, the port it listens on, and the pid that serves requests."""
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET, "DIGEST_CONFIG": str(config),
           "HOME": str(config.parent)}  # gunicorn's control socket goes under $HOME
    if server == "gunicorn":
        port = free_port()
        command = [str(Path(sys.executable).with_name("gunicorn")), "-c",
                   "python:digest.web.gunicorn_conf", "-w", "1", "--threads", "8",
                   "-b", f"127.0.0.1:{port}", "digest.web.wsgi:app"]  # as the README says
    else:
        command = [sys.executable, "-m", "digest", "--config", str(config), "web",
                   "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env, cwd=config.parent)
    if server == "gunicorn":
        wait_for_port(port)
        return process, port, worker_of(process.pid)
    ready, _, _ = select.select([process.stdout], [], [], START_S)
    line = process.stdout.readline() if ready and process.stdout else ""
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not found:
        process.kill()
        raise SystemExit(f"digest web did not start: {line!r}")
    return process, int(found.group(1)), process.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def worker_of(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0]) if children else master


def memory_mb(pid: int, field: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def attack(port: int, headers: dict[str, str], size: int, chunked: bool) -> str:
    """One POST of `size` bytes; the status line it got (or how the server cut it off)."""
    framing = ("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=SEND_TIMEOUT_S) as conn:
        conn.sendall(f"POST /hooks/sendgrid HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                     f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode())
        try:
            for _ in range(size // len(PIECE)):
                piece = f"{len(PIECE):x}\r\n".encode() + PIECE + b"\r\n" if chunked else PIECE
                conn.sendall(piece)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed without reading the rest
        try:
            return conn.recv(64).split(b"\r\n")[0].decode() or "closed"
        except OSError:
            return "reset"


def flood(port: int, pid: int, clients: int, size: int, headers: dict[str, str],
          chunked: bool) -> tuple[float, float, float, set[str]]:
    before = memory_mb(pid, "VmRSS")
    reset_peak(pid)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(
        attack(port, headers, size, chunked))) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SEND_TIMEOUT_S)
    time.sleep(0.3)
    return before, memory_mb(pid, "VmHWM"), memory_mb(pid, "VmRSS"), set(answers)


def run(server: str, clients: int, mb: int) -> list[str]:
    signer = Signer()
    junk = {SIGNATURE: "MEUCIQ" + "A" * 90, TIMESTAMP: str(int(time.time()))}
    attacks = [("no signature headers", {}, False), ("junk signature headers", junk, False),
               ("junk headers, chunked", junk, True)]
    with tempfile.TemporaryDirectory() as tmp:
        process, port, pid = start(server, write_site(Path(tmp), signer.public))
        try:
            lines = []
            for name, headers, chunked in attacks:
                before, peak, after, answers = flood(port, pid, clients, mb * 1024 * 1024,
                                                     headers, chunked)
                lines.append(
                    f"webhook memory ({server}): {clients} parallel {mb} MB POSTs, {name}: "
                    f"RSS {before:.0f} MB before, peak {peak:.0f} MB (+{peak - before:.0f}), "
                    f"{after:.0f} MB after; answers {', '.join(sorted(answers))}")
            return lines
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--mb", type=int, default=31)
    parser.add_argument("--server", choices=("web", "gunicorn"), default="web")
    parser.add_argument("--small", action="store_true", help="CI size: 4 clients, 8 MB")
    args = parser.parse_args()
    clients, mb = (4, 8) if args.small else (args.clients, args.mb)
    for line in run(args.server, clients, mb):
        print(line)


if __name__ == "__main__":
    main()
