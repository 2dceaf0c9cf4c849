"""MSAL for Python against msemu: an authorization-code flow with PKCE (driving msemu's sign-in
and consent forms over HTTP, as a browser would), then a refresh.

Usage: msal_flow.py BASE CA_FILE CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL PASSWORD
Prints one JSON line with what the test checks; exits non-zero on any failure.
"""

import json
import os
import re
import sys
import urllib.parse

# requests lets these variables override a session's own `verify`: the CA given on the command
# line must win.
for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(variable, None)

import msal
import requests

SCOPES = ["https://graph.microsoft.com/Presence.Read.All"]


def hidden(html, name):
    match = re.search(r'name="%s" value="([^"]+)"' % re.escape(name), html)
    if not match:
        raise SystemExit("no %s field in:\n%s" % (name, html))
    return match.group(1)


def main():
    base, ca_file, client_id, secret, redirect_uri, email, password = sys.argv[1:8]
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=base + "/organizations",
        validate_authority=False,
        instance_discovery=False,
        verify=ca_file,
    )
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect_uri, prompt="select_account")

    browser = requests.Session()
    browser.verify = ca_file
    page = browser.get(flow["auth_uri"], allow_redirects=False)
    page.raise_for_status()
    answer = browser.post(
        base + "/organizations/login",
        data={"flow": hidden(page.text, "flow"), "email": email, "password": password},
        allow_redirects=False,
    )
    if answer.status_code == 200:  # the consent page
        answer = browser.post(
            base + "/organizations/consent",
            data={"flow": hidden(answer.text, "flow"), "decision": "accept"},
            allow_redirects=False,
        )
    if answer.status_code != 302:
        raise SystemExit("expected a redirect to the app, got %s:\n%s" % (answer.status_code, answer.text))
    location = answer.headers["Location"]
    auth_response = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))

    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    if "access_token" not in result:
        raise SystemExit("code redemption failed: %s" % json.dumps(result))
    claims = result["id_token_claims"]

    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=SCOPES)
    if "access_token" not in refreshed:
        raise SystemExit("refresh failed: %s" % json.dumps(refreshed))

    print(json.dumps({
        "tid": claims.get("tid"),
        "aud": claims.get("aud"),
        "iss": claims.get("iss"),
        "nonce_checked": "nonce" in claims,
        "scope": result.get("scope"),
        "refresh_rotated": refreshed.get("refresh_token") != result["refresh_token"],
    }))


if __name__ == "__main__":
    main()
