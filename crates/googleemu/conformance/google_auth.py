"""google-auth against googleemu: Credentials.refresh() over googleemu's token endpoint (client
secret in the body, the Credentials' scopes sent along), id_token.verify_token() against both
the JWKS and the PEM map, then a revocation after which refresh() raises RefreshError
(invalid_grant).

Usage: google_auth.py BASE CLIENT_ID CLIENT_SECRET REFRESH_TOKEN
Prints one JSON line with what the test checks; exits non-zero on any failure.
"""

import json
import sys

import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials

SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar.events.freebusy"]


def main():
    base, client_id, secret, refresh_token = sys.argv[1:5]
    # Not Credentials.from_authorized_user_info(): it always replaces token_uri with Google's.
    credentials = Credentials(token=None, refresh_token=refresh_token, token_uri=base + "/token",
                              client_id=client_id, client_secret=secret, scopes=SCOPES)
    credentials.refresh(Request())

    verified = {}
    for name, path in (("jwks", "/oauth2/v3/certs"), ("pem", "/oauth2/v1/certs")):
        claims = id_token.verify_token(credentials.id_token, Request(), audience=client_id, certs_url=base + path)
        verified[name] = {k: claims.get(k) for k in ("aud", "email", "email_verified", "hd", "sub")}

    revoked = requests.post(base + "/revoke", data={"token": refresh_token})
    refresh_error = None
    retryable = None
    try:
        Credentials(token=None, refresh_token=refresh_token, token_uri=base + "/token",
                    client_id=client_id, client_secret=secret, scopes=SCOPES).refresh(Request())
    except RefreshError as e:
        refresh_error = str(e)
        retryable = e.retryable

    print(json.dumps({
        "refreshed": bool(credentials.token) and credentials.valid,
        "kept_refresh_token": credentials.refresh_token == refresh_token,
        "granted_scopes": credentials.granted_scopes,
        "verified": verified,
        "revoke_status": revoked.status_code,
        "refresh_error": refresh_error,
        "retryable": retryable,
    }))


if __name__ == "__main__":
    main()
