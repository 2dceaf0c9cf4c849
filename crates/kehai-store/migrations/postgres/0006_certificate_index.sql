-- After `kehai keys rotate-cert`, the renewal sweep looks for subscriptions still encrypted for
-- a retired certificate. Nearly always there are none, and finding that out must not read every
-- connection (100,000 connections: a scan every minute was most of an idle instance's work).
CREATE INDEX ms_connections_by_certificate ON ms_connections (subscription_certificate_id);
