"""The signature check the SigV4 test servers share: a request's Signature
Version 4 recomputed with botocore from the headers it says it signed,
independently of the agent's signing code."""

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def authorization(handler):
    """The fields of the request's `AWS4-HMAC-SHA256` Authorization header,
    or None when it has none."""
    scheme, _, rest = handler.headers.get("Authorization", "").partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        return None
    return dict(part.strip().split("=", 1) for part in rest.split(","))


def signature_problem(handler, body, fields, credentials, service, region):
    """Why the request's signature is not the one botocore computes for
    `credentials` (botocore Credentials), `service` and `region`; None when
    it is."""
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "signed headers %s" % signed
    headers = {name: handler.headers[name] for name in signed}
    url = "http://%s%s" % (handler.headers["Host"], handler.path)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    signer = SigV4Auth(credentials, service, region)
    canonical = signer.canonical_request(request)
    if signer.signature(signer.string_to_sign(request, canonical), request) != fields["Signature"]:
        return "signature differs"
    return None


__all__ = ["Credentials", "authorization", "signature_problem"]
