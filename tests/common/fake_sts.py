"""A stand-in for AWS STS on 127.0.0.1, for the agent's `role_arn`: it checks
the AssumeRole request's Signature Version 4 with botocore (service `sts`,
the caller's own keys), and answers with temporary credentials for the
role. One line per request on stdout: `assumed <role>`, or `bad` and why.

usage: fake_sts.py PORT ACCESS SECRET REGION ROLE_ACCESS ROLE_SECRET ROLE_TOKEN
"""

import http.server
import sys
import urllib.parse

from sigv4_check import Credentials, authorization, signature_problem

PORT, ACCESS, SECRET, REGION, R_ACCESS, R_SECRET, R_TOKEN = sys.argv[1:8]

ANSWER = """<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROATEST:redpush</AssumedRoleId>
      <Arn>%s/redpush</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>test</RequestId></ResponseMetadata>
</AssumeRoleResponse>
"""


def check(handler, body):
    fields = authorization(handler)
    if fields is None:
        return "no SigV4 Authorization header"
    if fields["Credential"].split("/")[0] != ACCESS:
        return "credential %s" % fields["Credential"]
    return signature_problem(handler, body, fields, Credentials(ACCESS, SECRET), "sts", REGION)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        form = urllib.parse.parse_qs(body.decode())
        problem = check(self, body)
        if problem is None and form.get("Action") != ["AssumeRole"]:
            problem = "action %s" % form.get("Action")
        if problem is None:
            role = form["RoleArn"][0]
            print("assumed " + role, flush=True)
            answer = (ANSWER % (R_ACCESS, R_SECRET, R_TOKEN, role)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
        else:
            print("bad " + problem, flush=True)
            answer = b"<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"
            self.send_response(403)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
