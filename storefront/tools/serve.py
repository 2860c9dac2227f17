#!/usr/bin/env python3
"""Serves storefront/public for frontend work, as the balancer would: files
from public/, and index.html for any other GET (the SPA's /shop/... routes),
so a reload on a deep link works. The page then calls the API at
http://127.0.0.1:8080 (see assets/api.js: apiBase).

    python3 storefront/tools/serve.py            # http://localhost:5173
    python3 storefront/tools/serve.py 3000
"""
import functools
import http.server
import os
import sys

PUBLIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "public")


class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.exists(path) and not self.path.startswith("/assets/"):
            self.path = "/index.html"
        return super().send_head()

    def end_headers(self):
        # Edits show on the next reload.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5173
    handler = functools.partial(Handler, directory=PUBLIC)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"storefront: http://localhost:{port}/ (API at http://127.0.0.1:8080; ?api=URL to change)")
        server.serve_forever()


if __name__ == "__main__":
    main()
