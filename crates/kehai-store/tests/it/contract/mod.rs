//! The contract cases, each written once for any [`Store`]: spaces, members, avatars, guests and
//! sessions here; connections, presences, sign-ins, certificates and claims in [`connections`].

use kehai_core::{
    Account, DisplayName, Email, Emoji, Guest, Membership, PersonId, PersonKind, PresenceOverride, Role, Space,
    SpaceId, SpaceName, SpaceSlug, presence::Kind,
};
use kehai_store::{
    Applied, AvatarChange, Claim, Connection, ConnectionId, ConnectionState, EncryptionCertificate, OAuthState,
    PresenceWrite, Sealed, Session, Store, StoreError, SubscriptionRecord, TokenUpdate,
};

pub(crate) const T0: i64 = 1_700_000_000_000;

pub(crate) async fn space(store: &dyn Store, slug: &str) -> Space {
    let space = Space {
        id: SpaceId::new(),
        slug: SpaceSlug::parse(slug).unwrap(),
        name: SpaceName::parse(&format!("Space {slug}")).unwrap(),
        allow_guests: true,
    };
    store.create_space(&space, T0).await.expect("create space");
    space
}

async fn account(store: &dyn Store, email: &str) -> Account {
    let account = Account { id: PersonId::new(), email: Email::parse(email).unwrap() };
    store.create_account(&account, "$argon2id$fake", T0).await.expect("create account");
    account
}

pub(crate) fn name(s: &str) -> DisplayName {
    DisplayName::parse(s).unwrap()
}

pub(crate) fn emoji(s: &str) -> Emoji {
    Emoji::parse(s).unwrap()
}

/// Teams' Busy, as an override.
pub(crate) fn busy() -> PresenceOverride {
    PresenceOverride {
        provider: "msteams".into(),
        availability: "Busy".into(),
        activity: "Busy".into(),
        label: "Busy".into(),
        emoji: emoji("🔴"),
        kind: Kind::Busy,
        since: T0,
    }
}

pub(crate) async fn member(store: &dyn Store, space: &Space, email: &str, display: &str) -> Account {
    let a = account(store, email).await;
    store
        .add_member(&Membership { space_id: space.id, account_id: a.id, role: Role::Member }, &name(display), T0)
        .await
        .expect("add member");
    a
}

pub async fn migrations_are_idempotent(store: &dyn Store) {
    store.migrate().await.expect("second migration run is a no-op");
    store.ping().await.expect("ping");
}

pub async fn spaces_are_unique_by_slug(store: &dyn Store) {
    let s = space(store, "office").await;
    let found = store.space_by_slug(&s.slug).await.unwrap().expect("found by slug");
    assert_eq!(found, s);
    assert_eq!(store.space_by_id(s.id).await.unwrap(), Some(s.clone()));
    let dup = Space { id: SpaceId::new(), ..s };
    assert!(matches!(store.create_space(&dup, T0).await, Err(StoreError::Conflict("space"))));
    assert_eq!(store.space_by_slug(&SpaceSlug::parse("nope").unwrap()).await.unwrap(), None);
}

pub async fn accounts_are_unique_case_insensitively(store: &dyn Store) {
    let a = account(store, "Alice@Example.com").await;
    let (found, hash) =
        store.account_by_email(&Email::parse("alice@EXAMPLE.com").unwrap()).await.unwrap().expect("found");
    assert_eq!(found, a);
    assert_eq!(hash, "$argon2id$fake");
    let dup = Account { id: PersonId::new(), email: Email::parse("ALICE@example.COM").unwrap() };
    assert!(matches!(store.create_account(&dup, "x", T0).await, Err(StoreError::Conflict("account"))));
}

pub async fn members_get_an_avatar(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = account(store, "a@example.com").await;
    store
        .add_member(&Membership { space_id: s.id, account_id: a.id, role: Role::Admin }, &name("Alice"), T0)
        .await
        .unwrap();
    assert_eq!(store.role_in(s.id, a.id).await.unwrap(), Some(Role::Admin));
    let avatar = store.avatar(s.id, a.id).await.unwrap().expect("avatar");
    assert_eq!(avatar.kind, PersonKind::Member);
    assert_eq!(avatar.display_name.as_str(), "Alice");
    assert_eq!((avatar.own_emoji, avatar.presence), (None, None));
    let members = store.members(s.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].account.id, members[0].role), (a.id, Role::Admin));
}

pub async fn membership_is_unique_and_needs_a_space(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    assert!(matches!(
        store.add_member(&Membership { space_id: s.id, account_id: a.id, role: Role::Member }, &name("A"), T0).await,
        Err(StoreError::Conflict("membership"))
    ));
    assert!(matches!(
        store
            .add_member(&Membership { space_id: SpaceId::new(), account_id: a.id, role: Role::Member }, &name("A"), T0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.role_in(SpaceId::new(), a.id).await.unwrap(), None);
}

pub async fn spaces_of_an_account(store: &dyn Store) {
    let one = space(store, "one").await;
    let two = space(store, "two").await;
    let _other = space(store, "other").await;
    let a = member(store, &one, "a@example.com", "A").await;
    store
        .add_member(&Membership { space_id: two.id, account_id: a.id, role: Role::Member }, &name("A"), T0)
        .await
        .unwrap();
    let slugs: Vec<_> = store.spaces_of(a.id).await.unwrap().into_iter().map(|s| s.slug.to_string()).collect();
    assert_eq!(slugs, vec!["one", "two"]);
}

pub async fn avatar_changes_keep_what_was_not_changed(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "Alice").await;
    // Applies a change; returns the name and own emoji it left.
    let apply = async |display_name: Option<&str>, own_emoji: Option<Option<&str>>, at: i64| {
        let change = AvatarChange { display_name: display_name.map(name), own_emoji: own_emoji.map(|e| e.map(emoji)) };
        let v = store.update_avatar(s.id, a.id, &change, at).await.unwrap().expect("updated");
        assert_eq!(store.avatar(s.id, a.id).await.unwrap().as_ref(), Some(&v), "returned as stored");
        (v.display_name.as_str().to_owned(), v.own_emoji.map(|e| e.as_str().to_owned()))
    };
    assert_eq!(apply(None, Some(Some("🌸")), T0 + 1).await, ("Alice".into(), Some("🌸".into())));
    assert_eq!(
        apply(Some("Alicia"), None, T0 + 2).await,
        ("Alicia".into(), Some("🌸".into())),
        "renaming keeps the emoji"
    );
    assert_eq!(apply(None, Some(None), T0 + 3).await, ("Alicia".into(), None), "null clears, the name stays");
    let nothing = AvatarChange::default();
    assert_eq!(store.update_avatar(s.id, PersonId::new(), &nothing, T0).await.unwrap(), None, "no such avatar");
}

pub async fn presence_override_never_touches_own_emoji(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "Alice").await;
    let mine = AvatarChange { display_name: None, own_emoji: Some(Some(emoji("🌸"))) };
    store.update_avatar(s.id, a.id, &mine, T0).await.unwrap();
    let busy = PresenceOverride {
        provider: "msteams".into(),
        availability: "Busy".into(),
        activity: "InAMeeting".into(),
        label: "Microsoft Teams: 会議参加中 / In a meeting".into(),
        emoji: emoji("📅"),
        kind: Kind::InAMeeting,
        since: T0 + 5,
    };
    let c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    store.set_connection_space(c.id, s.id, true).await.unwrap();
    let Applied::Shown(shown) =
        apply_one(store, c.id, "ms-user-a", Some("C1"), false, Some(&busy), T0 + 5).await.unwrap()
    else {
        panic!("shown")
    };
    let v = shown.into_iter().next().expect("set");
    assert_eq!(v.presence.as_ref(), Some(&busy));
    assert_eq!(v.displayed_emoji().map(Emoji::as_str), Some("📅"));
    // The member changes their own emoji while the override lasts: it is kept for later.
    let later = AvatarChange { display_name: None, own_emoji: Some(Some(emoji("🍵"))) };
    let v = store.update_avatar(s.id, a.id, &later, T0 + 6).await.unwrap().expect("updated");
    assert_eq!(v.presence.as_ref(), Some(&busy));
    // Another provider's clearing leaves it; its own takes it off.
    assert_eq!(store.clear_presence(s.id, a.id, "other", T0 + 7).await.unwrap(), None, "not other's to clear");
    let v = store.clear_presence(s.id, a.id, "msteams", T0 + 7).await.unwrap().expect("cleared");
    assert_eq!(v.presence, None);
    assert_eq!(v.displayed_emoji().map(Emoji::as_str), Some("🍵"));
    assert_eq!(store.clear_presence(s.id, a.id, "msteams", T0 + 8).await.unwrap(), None, "nothing left to clear");
}

pub async fn guests_present_are_capped_per_space_and_its_guest_link_is_kept(store: &dyn Store) {
    let s = space(store, "office").await;
    let other = space(store, "other").await;
    let join = |space: SpaceId| Guest { id: PersonId::new(), space_id: space, display_name: name("Visitor") };
    for _ in 0..3 {
        assert!(store.create_guest(&join(s.id), T0, 3).await.unwrap());
    }
    assert!(!store.create_guest(&join(s.id), T0, 3).await.unwrap(), "the fourth is refused");
    assert_eq!(store.avatars(s.id).await.unwrap().len(), 3, "and leaves nothing behind");
    assert!(store.create_guest(&join(other.id), T0, 3).await.unwrap(), "another space counts its own");
    // Later, only those with a live session count: one kept its session, two broke off.
    let stayed = store.avatars(s.id).await.unwrap()[0].person_id;
    let session = Session {
        id_hash: "stayed".into(),
        person_id: stayed,
        kind: PersonKind::Guest,
        space_id: Some(s.id),
        created_at: T0,
        expires_at: T0 + 86_400_000,
    };
    store.create_session(&session).await.unwrap();
    let later = T0 + 120_000;
    assert!(store.create_guest(&join(s.id), later, 3).await.unwrap(), "the two without a session stopped counting");
    assert!(store.create_guest(&join(s.id), later, 3).await.unwrap());
    assert!(!store.create_guest(&join(s.id), later, 3).await.unwrap(), "one with a session and two joining");
    assert_eq!(store.guest_link_hash(s.id).await.unwrap(), None);
    store.set_guests(s.id, true, Some("link-hash")).await.unwrap();
    assert_eq!(store.guest_link_hash(s.id).await.unwrap().as_deref(), Some("link-hash"));
    assert!(store.space_by_id(s.id).await.unwrap().unwrap().allow_guests);
    store.set_guests(s.id, false, Some("ignored")).await.unwrap();
    assert_eq!(store.guest_link_hash(s.id).await.unwrap(), None, "no guests, no link");
    assert!(!store.space_by_id(s.id).await.unwrap().unwrap().allow_guests);
    assert!(matches!(store.set_guests(SpaceId::new(), true, None).await, Err(StoreError::NotFound("space"))));
}

pub async fn guests_live_as_long_as_their_session(store: &dyn Store) {
    let s = space(store, "office").await;
    let g = PersonId::new();
    assert!(store.create_guest(&Guest { id: g, space_id: s.id, display_name: name("Visitor") }, T0, 50).await.unwrap());
    let avatar = store.avatar(s.id, g).await.unwrap().expect("guest avatar");
    assert_eq!(avatar.kind, PersonKind::Guest);
    let session = Session {
        id_hash: "guest-hash".into(),
        person_id: g,
        kind: PersonKind::Guest,
        space_id: Some(s.id),
        created_at: T0,
        expires_at: T0 + 1000,
    };
    store.create_session(&session).await.unwrap();
    assert_eq!(store.session("guest-hash", T0).await.unwrap(), Some(session.clone()));
    assert_eq!(store.delete_session("guest-hash").await.unwrap(), Some(session));
    assert_eq!(store.avatar(s.id, g).await.unwrap(), None, "the guest left with their session");
    assert_eq!(store.session("guest-hash", T0).await.unwrap(), None);
    assert_eq!(store.delete_session("guest-hash").await.unwrap(), None);
}

pub async fn expired_sessions_are_not_found_and_are_purged(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "Alice").await;
    let g = PersonId::new();
    assert!(store.create_guest(&Guest { id: g, space_id: s.id, display_name: name("Visitor") }, T0, 50).await.unwrap());
    let mk = |hash: &str, person, kind, space_id, expires_at| Session {
        id_hash: hash.into(),
        person_id: person,
        kind,
        space_id,
        created_at: T0,
        expires_at,
    };
    store.create_session(&mk("m-old", a.id, PersonKind::Member, None, T0 + 10)).await.unwrap();
    store.create_session(&mk("m-new", a.id, PersonKind::Member, None, T0 + 10_000)).await.unwrap();
    store.create_session(&mk("g-old", g, PersonKind::Guest, Some(s.id), T0 + 10)).await.unwrap();
    assert!(store.session("m-old", T0 + 10).await.unwrap().is_none(), "expired at its expiry time");
    assert!(store.session("m-old", T0 + 9).await.unwrap().is_some());
    let mut purged: Vec<_> =
        store.purge_expired_sessions(T0 + 10).await.unwrap().into_iter().map(|s| s.id_hash).collect();
    purged.sort();
    assert_eq!(purged, vec!["g-old", "m-old"]);
    assert!(store.session("m-new", T0 + 10).await.unwrap().is_some());
    assert_eq!(store.avatar(s.id, g).await.unwrap(), None, "the guest left with their session");
    assert!(store.avatar(s.id, a.id).await.unwrap().is_some(), "members stay");
}

pub async fn avatars_of_one_space_only(store: &dyn Store) {
    let one = space(store, "one").await;
    let two = space(store, "two").await;
    let a = member(store, &one, "a@example.com", "Zed").await;
    let b = member(store, &one, "b@example.com", "Amy").await;
    let _c = member(store, &two, "c@example.com", "Cy").await;
    let names: Vec<_> =
        store.avatars(one.id).await.unwrap().into_iter().map(|v| v.display_name.as_str().to_owned()).collect();
    assert_eq!(names, vec!["Amy", "Zed"], "ordered by name, only space one");
    let _d = member(store, &one, "d@example.com", "bea").await;
    let _e = member(store, &one, "e@example.com", "Émile").await;
    let names: Vec<_> =
        store.avatars(one.id).await.unwrap().into_iter().map(|v| v.display_name.as_str().to_owned()).collect();
    assert_eq!(names, vec!["Amy", "bea", "Zed", "Émile"], "case-insensitive, the same in every engine");
    let members: Vec<_> =
        store.members(one.id).await.unwrap().into_iter().map(|m| m.display_name.as_str().to_owned()).collect();
    assert_eq!(members, names);
    assert_eq!(store.avatar(two.id, a.id).await.unwrap(), None);
    let change = AvatarChange { display_name: Some(name("Hacker")), own_emoji: None };
    assert_eq!(store.update_avatar(two.id, b.id, &change, T0).await.unwrap(), None, "no avatar in the other space");
}

/// Applies one presence write for `id` (of `user`), as a group commit of one.
pub(crate) async fn apply_one(
    store: &dyn Store,
    id: ConnectionId,
    user: &str,
    sequence: Option<&str>,
    again: bool,
    presence: Option<&PresenceOverride>,
    now: i64,
) -> kehai_store::Result<Applied> {
    let write = PresenceWrite {
        connection: id,
        external_user: user.to_owned(),
        sequence: sequence.map(str::to_owned),
        again,
        presence: presence.cloned(),
        next_check_at: None,
    };
    let mut applied = store.apply_presences(std::slice::from_ref(&write), now).await?;
    assert_eq!(applied.len(), 1, "one outcome per write");
    Ok(applied.remove(0))
}

mod connections;
mod presences;
mod subscriptions;
pub use connections::*;
pub use presences::*;
pub use subscriptions::*;
