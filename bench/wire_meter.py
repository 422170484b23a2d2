#!/usr/bin/env python3
"""A counting reverse proxy for remote-write benchmarks.

Forwards every request to UPSTREAM unchanged and counts what came in on the
wire: request line + headers and body bytes. `GET /__stats` answers the
counts as JSON; they belong to neither side being measured, so both sides
are counted the same way.

usage: wire_meter.py LISTEN_PORT UPSTREAM_HOST:PORT
"""
import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"requests": 0, "header_bytes": 0, "body_bytes": 0, "non_2xx": 0}


class Meter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/__stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        # Request line + header lines + the blank line, as sent.
        head = len(self.requestline) + 2 + len(str(self.headers).encode()) 
        host, port = UPSTREAM
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            status = reply.status
        except OSError:
            status, data = 503, b"upstream unreachable"
        finally:
            conn.close()
        with LOCK:
            STATS["requests"] += 1
            STATS["header_bytes"] += head
            STATS["body_bytes"] += len(body)
            if status // 100 != 2:
                STATS["non_2xx"] += 1
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    listen = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    UPSTREAM = (host, int(port))
    ThreadingHTTPServer(("127.0.0.1", listen), Meter).serve_forever()
