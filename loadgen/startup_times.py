#!/usr/bin/env python3
"""Each service's start-up: the time from its exec to its first /readyz 200,
polling each service every 2 ms from a thread of its own (a shell loop of
curls, one after another, measured its own pace more than the services').

    startup_times.py DATA_DIR NAME=PORT... [--timeout 90]

loadgen/shop.sh starts it just before the launcher, so that it is already
polling when the services come up.

The launcher writes each service's pid to DATA_DIR/run/NAME.pid; the exec
time is the process's start time in /proc (clock ticks since boot, 10 ms on
these kernels), compared with /proc/uptime, the same clock. Prints one line
"NAME MS" per service once all are ready; exits 1 if one is not ready
within the timeout.
"""
import os
import socket
import sys
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def uptime_ms():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * 1000


def started_ms(data_dir, name):
    try:
        with open(os.path.join(data_dir, "run", f"{name}.pid")) as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]) * 1000 / TICKS
    except (OSError, ValueError, IndexError):
        return None


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def watch(data_dir, name, port, deadline, results):
    """Polls one service (its own thread: a service that has bound its port
    but not answered yet holds a poll for a while, and must not hold up the
    others' polls)."""
    while time.monotonic() < deadline:
        if ready(port):
            now = uptime_ms()
            start = started_ms(data_dir, name)
            if start is not None:
                results[name] = now - start
                return
        time.sleep(0.002)


def main():
    args = sys.argv[1:]
    timeout = 90.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i : i + 2]
    data_dir, targets = args[0], dict(a.split("=") for a in args[1:])
    deadline = time.monotonic() + timeout
    results = {}
    watchers = [
        threading.Thread(target=watch, args=(data_dir, name, int(port), deadline, results))
        for name, port in targets.items()
    ]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    # Printed here, not by the threads, whose lines could interleave.
    for name, ms in results.items():
        print(f"{name} {ms:.0f}")
    pending = [name for name in targets if name not in results]
    if pending:
        print(f"not ready within {timeout:.0f} s: {' '.join(pending)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
