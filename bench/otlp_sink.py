#!/usr/bin/env python3
"""A loopback OTLP/HTTP receiver for bench/tracing.sh: reads each export's
body and answers 200 with an empty body, on kept-alive HTTP/1.1
connections, as a collector does (a server that answers without reading
the body makes the exporter open a new connection for every batch).
Counts what it received and prints the totals when stopped.

Usage: otlp_sink.py PORT
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"exports": 0, "bytes": 0, "connections": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        received["connections"] += 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received["exports"] += 1
        received["bytes"] += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(f"otlp_sink: {received}", file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
