"""google-auth-oauthlib's Flow against googleemu: an authorization-code flow with PKCE (S256,
made by the library) and HTTP Basic client authentication (requests-oauthlib's), driving the
chooser and consent pages over HTTP. Google's scope normalization (`email` →
`…/userinfo.email`) must make oauthlib raise its "Scope has changed" Warning unless
OAUTHLIB_RELAX_TOKEN_SCOPE is set: the first flow shows the Warning, a second one succeeds with
the variable set.

Usage: oauth_flow.py BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL
Prints one JSON line with what the test checks; exits non-zero on any failure.
"""

import json
import os
import sys
import urllib.parse

# oauthlib refuses plain http, even to build the authorization URL; googleemu listens on
# http://127.0.0.1. Set here only, for this script's process.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
os.environ.pop("OAUTHLIB_RELAX_TOKEN_SCOPE", None)

import google.auth.jwt  # noqa: E402
from google_auth_oauthlib.flow import Flow  # noqa: E402

import pages  # noqa: E402

SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar.events.freebusy"]


def new_flow(base, client_id, secret, redirect_uri):
    config = {"web": {
        "client_id": client_id,
        "client_secret": secret,
        "auth_uri": base + "/o/oauth2/v2/auth",
        "token_uri": base + "/token",
        "redirect_uris": [redirect_uri],
    }}
    return Flow.from_client_config(config, scopes=SCOPES, redirect_uri=redirect_uri)


def code_for(base, flow, email):
    url, state = flow.authorization_url(
        access_type="offline", prompt="consent select_account", include_granted_scopes="true")
    params = pages.authorize(base, url, email)
    if params.get("state") != state:
        raise SystemExit("state not echoed: %s" % params)
    return url, params


def main():
    base, client_id, secret, redirect_uri, email = sys.argv[1:6]

    first = new_flow(base, client_id, secret, redirect_uri)
    _, params = code_for(base, first, email)
    warning = None
    try:
        first.fetch_token(code=params["code"])
    except Warning as w:  # oauthlib raises it (not warnings.warn)
        warning = str(w)

    os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"
    second = new_flow(base, client_id, secret, redirect_uri)
    url, params = code_for(base, second, email)
    token = second.fetch_token(code=params["code"])
    credentials = second.credentials
    claims = google.auth.jwt.decode(credentials.id_token, verify=False)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))

    print(json.dumps({
        "scope_warning": warning,
        "authorization_query": {k: query.get(k) for k in
                                ("code_challenge_method", "access_type", "prompt", "include_granted_scopes")},
        "redirect": {k: params.get(k) for k in ("scope", "hd", "prompt", "authuser")},
        "token_keys": sorted(token.keys()),
        "refresh_token": bool(credentials.refresh_token),
        "granted_scopes": credentials.granted_scopes,
        "claims": {k: claims.get(k) for k in ("iss", "aud", "azp", "sub", "email", "email_verified", "hd")},
    }))


if __name__ == "__main__":
    main()
