"""The Microsoft Graph SDK for Python against msemu: read presence, create, renew (PATCH) and
delete a presence subscription, and receive a Graph error as the SDK's typed error.

Usage: graph_sdk.py BASE ACCESS_TOKEN NOTIFICATION_URL USER_ID
Prints one JSON line with what the test checks; exits non-zero on any failure.
"""

import asyncio
import json
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription


class FixedToken(AccessTokenProvider):
    """Hands out one access token, for msemu's host only."""

    def __init__(self, token, host):
        self.token = token
        self.validator = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self.token

    def get_allowed_hosts_validator(self):
        return self.validator


async def main():
    base, token, notification_url, user_id = sys.argv[1:5]
    host = urlparse(base).netloc
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(FixedToken(token, host)))
    adapter.base_url = base + "/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

    presence = await client.me.presence.get()

    soon = datetime.now(timezone.utc) + timedelta(minutes=50)
    created = await client.subscriptions.post(Subscription(
        change_type="updated",
        notification_url=notification_url,
        resource="communications/presences/" + user_id,
        expiration_date_time=soon,
        client_state="sdk-client-state",
    ))
    later = datetime.now(timezone.utc) + timedelta(minutes=59)
    renewed = await client.subscriptions.by_subscription_id(created.id).patch(
        Subscription(expiration_date_time=later))
    await client.subscriptions.by_subscription_id(created.id).delete()

    error = None
    try:
        await client.subscriptions.by_subscription_id(created.id).get()
    except ODataError as e:
        error = {"status": e.response_status_code, "code": e.error.code if e.error else None}

    print(json.dumps({
        "presence": {"id": presence.id, "availability": presence.availability, "activity": presence.activity,
                     "sequence": presence.sequence_number},
        "created": {"id": created.id, "resource": created.resource, "client_state": created.client_state,
                    "expires": created.expiration_date_time.isoformat()},
        "renewed_expires": renewed.expiration_date_time.isoformat(),
        "error_after_delete": error,
    }))


if __name__ == "__main__":
    asyncio.run(main())
