#!/usr/bin/env python3
"""Holds N kept-alive HTTP connections open to a server, each having sent
one request and read its answer, then prints "held N" and waits for stdin to
close (or a line) before closing them.

bench/shop.sh uses it for the balancer's RSS "at 1,000 open connections":
the server has accepted, parsed and answered on every connection and keeps
each one's state while the script holds them.

    python3 bench/hold_connections.py 1000 http://127.0.0.1:8080/readyz
"""
import asyncio
import sys
import urllib.parse


async def open_one(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    return writer


async def main():
    count = int(sys.argv[1])
    url = urllib.parse.urlsplit(sys.argv[2])
    path = url.path or "/"
    writers = []
    # In batches, so the server's accept backlog is never the limit.
    for start in range(0, count, 100):
        batch = [open_one(url.hostname, url.port, path) for _ in range(start, min(count, start + 100))]
        writers += await asyncio.gather(*batch)
    print(f"held {len(writers)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()


asyncio.run(main())
