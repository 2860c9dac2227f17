#!/usr/bin/env python3
"""Each service's start-up on its own: the time from spawning its binary to
its first /readyz 200, with no other service starting beside it.

    startup_alone.py BIN_DIR [--rounds 5] [--database-url URL]

The stack's figures (loadgen/startup_times.py) measure seven processes
starting at once on two cores, so they say as much about the neighbours as
about the service. Here each service starts alone, ROUNDS times, twice per
round: on a fresh data directory (creating and migrating its database, the
first start) and again on the same directory (a restart: the schema is
there). The clock is Python's monotonic clock around the spawn, so the
figures have no 10 ms tick; polling is a connect + GET every 1 ms.

Services that need neighbours (cart's products, users' mailer) are pointed
at a closed port: readiness checks the service's own database only, so the
figure is the service's own. With --database-url (PostgreSQL) every start
uses that database instead of a fresh SQLite file, so "fresh" only differs
from "restart" by the process's own work.

Prints a Markdown table: per service the median and best of the fresh and
restart starts, in ms.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import sys
import time

# One readiness probe for both start-up scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "loadgen"))
from startup_times import ready  # noqa: E402

SERVICES = ["users", "products", "cart", "mailer", "stats", "payments-mock"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_once(bin_dir, name, data_dir, database_url, timeout=30.0):
    """Milliseconds from spawn to the first /readyz 200."""
    prefix = name.upper().replace("-", "_").replace("PAYMENTS_MOCK", "PAYMENTS")
    port = free_port()
    env = dict(os.environ)
    env.update({
        f"{prefix}_LISTEN": f"127.0.0.1:{port}",
        f"{prefix}_DATA_DIR": data_dir,
        "RUST_LOG": "warn",
    })
    if database_url:
        env[f"{prefix}_DATABASE_URL"] = database_url
    began = time.monotonic()
    proc = subprocess.Popen([os.path.join(bin_dir, name)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.monotonic() - began < timeout:
            if ready(port):
                return (time.monotonic() - began) * 1000
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.001)
        raise SystemExit(f"{name} was not ready within {timeout} s")
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    rows = []
    for name in SERVICES:
        fresh, again = [], []
        for _ in range(args.rounds):
            data_dir = tempfile.mkdtemp(prefix=f"startup-{name}-")
            try:
                fresh.append(start_once(args.bin_dir, name, data_dir, args.database_url))
                again.append(start_once(args.bin_dir, name, data_dir, args.database_url))
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)
        rows.append((name, fresh, again))
    print("| service | first start ms (median, best) | restart ms (median, best) |")
    print("|---|---|---|")
    for name, fresh, again in rows:
        print(f"| {name} | {statistics.median(fresh):.0f}, {min(fresh):.0f} "
              f"| {statistics.median(again):.0f}, {min(again):.0f} |")


if __name__ == "__main__":
    main()
