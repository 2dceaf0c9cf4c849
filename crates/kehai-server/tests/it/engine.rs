//! The presence engine with a provider of the test's own: what any provider gets from it without
//! Microsoft in the picture — registration beside the configured ones, its card, the ordered
//! apply path, and wake-ups when a presence changes with the clock alone.
//!
//! The provider here is a calendar: its member is in a meeting until a boundary the test sets,
//! and free after it. Its readings say when they change next (`next_change_at`); no
//! notification ever comes, so the avatar can only follow because the engine wakes the
//! connection at that time.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kehai_core::{Millis, presence::Shown};
use kehai_server::{
    AppState,
    clock::{Clock, ManualClock},
    presence::{
        CallbackParams, Content, Dropped, Known, Observed, Outcome, Provider, ProviderError, Reading, SignIn,
        SignInSecrets, SignedIn, Subscribed, Tokens,
    },
};
use kehai_store::{
    Connection, ConnectionId, ConnectionState, Sealed, SubscriptionRecord,
    secrets::{ConnectionSecret, Place},
};
use secrecy::SecretString;
use serde_json::Value;

use kehai_server::config::NotificationMode;

use crate::support::{
    Offer, TestApp, find,
    microsoft::{connected, set_status, start_both_offering},
};

/// The test provider's id.
const CALENDAR: &str = "calendar";

/// A calendar whose one member is in a meeting until `busy_until`.
#[derive(Debug)]
struct Calendar {
    clock: Arc<ManualClock>,
    busy_until: Mutex<Millis>,
    /// How many presences it was asked for.
    reads: Mutex<u32>,
}

impl Calendar {
    fn reading(&self, user: &str) -> Reading {
        *self.reads.lock().unwrap() += 1;
        let now = self.clock.now();
        let until = *self.busy_until.lock().unwrap();
        let busy = now < until;
        Reading {
            user: user.to_owned(),
            shown: busy.then(|| Observed {
                availability: "busy".into(),
                activity: "InAMeeting".into(),
                shown: Shown {
                    emoji: kehai_core::Emoji::parse("📅").unwrap(),
                    kind: kehai_core::presence::Kind::InAMeeting,
                    label_en: "Busy",
                    label_ja: "予定あり",
                },
            }),
            // Later readings win: the time they were made, zero-padded.
            order: Some(format!("{now:020}")),
            next_change_at: busy.then_some(until),
        }
    }
}

#[async_trait]
impl Provider for Calendar {
    fn id(&self) -> &'static str {
        CALENDAR
    }
    fn name(&self) -> &'static str {
        "Test Calendar"
    }
    fn subscription_ms(&self) -> Millis {
        7 * 24 * 3600 * 1000
    }
    fn refresh_token_ms(&self) -> Millis {
        90 * 24 * 3600 * 1000
    }
    fn batch(&self) -> u32 {
        10
    }
    async fn sign_in(&self) -> Result<SignIn, ProviderError> {
        Err(ProviderError::Refused("no sign-in in this test".into()))
    }
    fn refusal(&self, _params: &CallbackParams, _state: &str) -> Outcome {
        Outcome::Cancelled
    }
    async fn finish(
        &self,
        _state: &AppState,
        _code: &str,
        _secrets: &SignInSecrets,
        _state_param: &str,
    ) -> Result<SignedIn, Outcome> {
        Err(Outcome::Unavailable)
    }
    async fn refresh(&self, _refresh_token: &SecretString) -> Result<Tokens, ProviderError> {
        Err(ProviderError::SignInRefused("no refresh in this test".into()))
    }
    async fn subscribe(
        &self,
        _state: &AppState,
        _access: &SecretString,
        _connection: &Connection,
        _id: Option<&str>,
        _secret: &SecretString,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        Ok(Subscribed { id: "channel-2".into(), expires_at: Some(expires_at), certificate_id: None, resource: None })
    }
    async fn renew(
        &self,
        _state: &AppState,
        _access: &SecretString,
        subscription: &SubscriptionRecord,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        Ok(Subscribed {
            id: subscription.id.clone(),
            expires_at: Some(expires_at),
            certificate_id: None,
            resource: None,
        })
    }
    async fn unsubscribe(
        &self,
        _access: &SecretString,
        _subscription: &SubscriptionRecord,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn read(&self, _access: &SecretString, connection: &Connection) -> Result<Reading, ProviderError> {
        Ok(self.reading(&connection.external_user))
    }
    async fn read_many(&self, _state: &AppState, connections: &mut [Connection]) -> Vec<(ConnectionId, Reading)> {
        connections.iter().map(|c| (c.id, self.reading(&c.external_user))).collect()
    }
    async fn open(&self, _state: &AppState, _content: &Content, _connection: &Connection) -> Result<Reading, Dropped> {
        Err(Dropped::Decryption)
    }
}

/// The calendar as a test offers it (made for the server's clock), and where to find it once
/// the server made it.
fn calendar() -> (Offer, Arc<Mutex<Option<Arc<Calendar>>>>) {
    let made: Arc<Mutex<Option<Arc<Calendar>>>> = Arc::default();
    let keep = Arc::clone(&made);
    let offer: Offer = Arc::new(move |clock: &Arc<ManualClock>| {
        let calendar = Arc::new(Calendar {
            clock: Arc::clone(clock),
            busy_until: Mutex::new(clock.now() + 10 * 60_000),
            reads: Mutex::default(),
        });
        *keep.lock().unwrap() = Some(Arc::clone(&calendar));
        vec![Known { id: CALENDAR, name: "Test Calendar", webhook: None, offered: Some(calendar as _) }]
    });
    (offer, made)
}

/// Alice connected to the calendar in `alpha` (as a sign-in would store it), due to be read at
/// `due`.
async fn connect_calendar(app: &TestApp, due: i64) {
    let store = &app.state.store;
    let alice = app.account("alice@example.com").await;
    let space = store.space_by_slug(&kehai_core::SpaceSlug::parse("alpha").unwrap()).await.unwrap().unwrap();
    let now = app.clock.now();
    let id = ConnectionId::new();
    let seal = |value: &str, secret| {
        let place = Place::Connection(id, secret);
        Sealed(app.state.secrets.seal(&SecretString::from(value.to_owned()), place).unwrap())
    };
    let connection = Connection {
        id,
        account_id: alice,
        provider: CALENDAR.into(),
        external_tenant: "example.com".into(),
        external_user: "alice-at-the-calendar".into(),
        access_token: seal("an access token", ConnectionSecret::AccessToken),
        access_expires_at: now + 3_600_000,
        access_refresh_at: now + 3_300_000,
        refresh_token: None,
        refresh_expires_at: None,
        subscription: Some(SubscriptionRecord {
            id: "channel-1".into(),
            expires_at: now + 6 * 24 * 3600 * 1000,
            client_state: seal("a channel token", ConnectionSecret::ClientState),
            certificate_id: None,
            resource: None,
        }),
        state: ConnectionState::Connected,
        last_error: None,
        last_sequence: None,
        next_check_at: Some(due),
        granted_scope: None,
        previous_subscription: None,
        connected_at: now,
        updated_at: now,
    };
    store.save_connection(&connection).await.unwrap();
    store.set_connection_space(id, space.id, true).await.unwrap();
}

/// kehai offering the calendar (and no Microsoft), Alice connected to it in `alpha` while her
/// meeting lasts ten minutes more, and the calendar.
async fn alice_in_a_meeting() -> (TestApp, Arc<Calendar>) {
    let (offer, made) = calendar();
    let app = TestApp::start_offering(|_| {}, Some(offer)).await;
    let calendar = made.lock().unwrap().clone().unwrap();
    // Due now: the engine reads it at once.
    connect_calendar(&app, app.clock.now()).await;
    (app, calendar)
}

/// Alice's avatar in `alpha` as Bob's page gets it, once it shows `emoji` (`None`: no presence).
async fn alice_shows(bob: &crate::support::Client, presence: Option<&str>) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let alice = find(&bob.avatars("alpha").await, "Alice").unwrap().clone();
        if alice["presence"]["emoji"].as_str() == presence {
            return alice;
        }
        assert!(tokio::time::Instant::now() < deadline, "Alice still shows {}", alice["presence"]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_presence_that_changes_with_the_clock_is_shown_at_its_time_without_a_notification() {
    let (app, calendar) = alice_in_a_meeting().await;
    let bob = app.member("bob@example.com").await;
    // Woken at once (due now), or read by the start's reconciliation: in a meeting.
    let alice = alice_shows(&bob, Some("📅")).await;
    assert_eq!(alice["presence"]["provider"], CALENDAR);
    assert_eq!(alice["presence"]["label"], "Test Calendar: 予定あり / Busy", "labelled by the provider");
    let busy_until = *calendar.busy_until.lock().unwrap();
    let connection = app.state.store.connection_of(app.account("alice@example.com").await, CALENDAR);
    assert_eq!(connection.await.unwrap().unwrap().next_check_at, Some(busy_until), "to be read again at the boundary");

    // Before the boundary nothing is read again; at it, the engine reads and shows it.
    let reads = *calendar.reads.lock().unwrap();
    app.clock.advance(busy_until - app.clock.now() - 1);
    kehai_server::presence::schedule::wake_due(&app.state).await;
    assert_eq!(*calendar.reads.lock().unwrap(), reads, "not due yet");
    assert_eq!(find(&bob.avatars("alpha").await, "Alice").unwrap()["presence"]["emoji"], "📅");
    app.clock.advance(1);
    alice_shows(&bob, None).await;
    let alice = app.account("alice@example.com").await;
    let connection = app.state.store.connection_of(alice, CALENDAR).await.unwrap().unwrap();
    assert_eq!(connection.next_check_at, None, "free from now on: nothing to wake for");
}

#[tokio::test]
async fn a_provider_of_its_own_has_its_card_and_its_connections_are_kept_apart() {
    // Microsoft Teams and the calendar, both offered: Alice connects both.
    let (offer, made) = calendar();
    let (app, emu) = start_both_offering(NotificationMode::Rich, |_| {}, |_| {}, Some(offer)).await;
    let calendar = made.lock().unwrap().clone().unwrap();
    // Read first at the end of the meeting. (The lock is let go of before any await: the
    // server's tasks read the calendar on this test's one thread.)
    let end = *calendar.busy_until.lock().unwrap();
    connect_calendar(&app, end).await;
    // In a call outranks the calendar's meeting, whether or not the start read it already.
    set_status(&emu, "alice@example.com", "InACall").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice_shows(&alice, Some("📞")).await;
    let account = app.account("alice@example.com").await;
    let teams = app.state.store.connection_of(account, "msteams").await.unwrap().unwrap();
    let own = app.state.store.connection_of(account, CALENDAR).await.unwrap().unwrap();
    assert_ne!(teams.id, own.id, "one connection per provider");

    let card = |provider: &'static str| {
        let alice = &alice;
        async move {
            let card: Value =
                alice.get(&format!("/api/spaces/alpha/integrations/{provider}")).await.json().await.unwrap();
            card["state"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!((card(CALENDAR).await, card("msteams").await), ("connected".into(), "connected".into()));
    let unknown = alice.get("/api/spaces/alpha/integrations/nothing").await;
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "integration_not_found");

    // The calendar OFF in this space: its card is paused, Teams' is not, and Teams' presence
    // stays (it is not the calendar's to take off).
    let off = alice.put_json("/api/spaces/alpha/integrations/calendar", &serde_json::json!({"enabled": false})).await;
    assert_eq!(off.status(), reqwest::StatusCode::OK);
    assert_eq!((card(CALENDAR).await, card("msteams").await), ("paused".into(), "connected".into()));
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["presence"]["emoji"], "📞");
    // OFF in its only space: its subscription ended, and nothing wakes it to be read while
    // nothing shows it.
    let paused = app.state.store.connection_of(account, CALENDAR).await.unwrap().unwrap();
    assert_eq!((paused.subscription, paused.next_check_at), (None, None));
    let reads = *calendar.reads.lock().unwrap();
    app.clock.advance(*calendar.busy_until.lock().unwrap() - app.clock.now());
    kehai_server::presence::schedule::wake_due(&app.state).await;
    assert_eq!(*calendar.reads.lock().unwrap(), reads, "not read at the boundary");
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["presence"]["emoji"], "📞");
    // Teams' changes still do.
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    alice_shows(&alice, Some("⛔")).await;
}
