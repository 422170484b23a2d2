"""A remote-write receiver that checks AWS Signature Version 4 with botocore,
independently of the agent's signing code: for each POST it rebuilds the
request from the headers the signature says it signed, computes the
signature botocore would give it for service `aps`, and answers 204 when
they agree, 403 otherwise. One line per request on stdout: `ok`, or `bad`
and why.

usage: sigv4_receiver.py PORT ACCESS_KEY SECRET_KEY REGION [SESSION_TOKEN]
"""

import http.server
import sys

from sigv4_check import Credentials, authorization, signature_problem

PORT, ACCESS, SECRET, REGION = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
TOKEN = sys.argv[5] if len(sys.argv) > 5 else None


def check(handler, body):
    fields = authorization(handler)
    if fields is None:
        return "no SigV4 Authorization header"
    credential = fields["Credential"].split("/")
    if credential[0] != ACCESS or credential[2] != REGION or credential[3] != "aps":
        return "credential scope %s" % fields["Credential"]
    if TOKEN and handler.headers.get("X-Amz-Security-Token") != TOKEN:
        return "session token"
    return signature_problem(handler, body, fields, Credentials(ACCESS, SECRET, TOKEN), "aps", REGION)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problem = check(self, body)
        print("ok" if problem is None else "bad " + problem, flush=True)
        self.send_response(204 if problem is None else 403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
