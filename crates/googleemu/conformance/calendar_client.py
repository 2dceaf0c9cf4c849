"""google-api-python-client against googleemu's Calendar v3 (static discovery document, the
endpoint replaced through client_options): freebusy().query, events().list with eventTypes and
a fields mask, events().watch, channels().stop, and an HttpError for a token that lacks the
scope.

Usage: calendar_client.py BASE CLIENT_ID CLIENT_SECRET REFRESH_TOKEN HOOK_URL NARROW_ACCESS_TOKEN
Prints one JSON line with what the test checks; exits non-zero on any failure.
"""

import datetime
import json
import sys
import uuid

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar.events.freebusy"]
MASK = "items(eventType,status,transparency,start,end)"


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    base, client_id, secret, refresh_token, hook_url, narrow_token = sys.argv[1:7]
    credentials = Credentials(token=None, refresh_token=refresh_token, token_uri=base + "/token",
                              client_id=client_id, client_secret=secret, scopes=SCOPES)
    # api_endpoint replaces rootUrl + servicePath: it must end in /calendar/v3/.
    options = {"api_endpoint": base + "/calendar/v3/"}
    service = build("calendar", "v3", credentials=credentials, client_options=options)

    now = datetime.datetime.now(datetime.timezone.utc)
    time_min, time_max = rfc3339(now - datetime.timedelta(hours=1)), rfc3339(now + datetime.timedelta(hours=24))
    freebusy = service.freebusy().query(body={
        "timeMin": time_min, "timeMax": time_max, "timeZone": "UTC", "items": [{"id": "primary"}],
    }).execute()
    events = service.events().list(
        calendarId="primary", eventTypes=["outOfOffice", "focusTime", "default"], singleEvents=True,
        timeMin=time_min, timeMax=time_max, fields=MASK,
    ).execute()
    channel = service.events().watch(calendarId="primary", eventTypes=["outOfOffice", "focusTime", "default"], body={
        "id": str(uuid.uuid4()), "type": "web_hook", "address": hook_url, "token": "sdk-channel-token",
        "params": {"ttl": "600"},
    }).execute()
    stopped = service.channels().stop(body={"id": channel["id"], "resourceId": channel["resourceId"]}).execute()

    narrow = build("calendar", "v3", credentials=Credentials(token=narrow_token), client_options=options)
    error = None
    try:
        narrow.freebusy().query(body={"timeMin": time_min, "timeMax": time_max, "items": [{"id": "primary"}]}).execute()
    except HttpError as e:
        error = {"status": e.status_code, "reason": e.reason,
                 "detail_reason": (e.error_details or [{}])[0].get("reason")}

    print(json.dumps({
        "freebusy": {"kind": freebusy.get("kind"), "timeMin": freebusy.get("timeMin"),
                     "busy": freebusy["calendars"]["primary"]["busy"]},
        "events": events,
        "channel": channel,
        "stopped": stopped,
        "http_error": error,
    }))


if __name__ == "__main__":
    main()
