"""Drives googleemu's account chooser and consent pages with requests, as a browser would."""

import re
import urllib.parse

import requests


def field(html, name):
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not match:
        raise SystemExit("no %s field in:\n%s" % (name, html))
    return match.group(1)


def authorize(base, url, email):
    """Follows the authorization URL through the chooser (clicking `email`) and the consent page
    (allowing every ticked scope); returns the redirect's query parameters."""
    browser = requests.Session()
    answer = browser.get(url, allow_redirects=False)
    if answer.status_code == 200 and "Choose an account" in answer.text:
        answer = browser.post(
            base + "/o/oauth2/v2/auth/signin",
            data={"flow": field(answer.text, "flow"), "csrf": field(answer.text, "csrf"), "account": email},
            allow_redirects=False,
        )
    if answer.status_code == 200 and 'name="decision"' in answer.text:
        ticked = re.findall(r'type="checkbox" name="scope" value="([^"]+)" checked', answer.text)
        form = [("flow", field(answer.text, "flow")), ("csrf", field(answer.text, "csrf")), ("decision", "allow")]
        form += [("scope", scope) for scope in ticked]
        answer = browser.post(base + "/o/oauth2/v2/auth/consent", data=form, allow_redirects=False)
    if answer.status_code != 302:
        raise SystemExit("expected a redirect to the app, got %s:\n%s" % (answer.status_code, answer.text))
    location = answer.headers["Location"]
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
