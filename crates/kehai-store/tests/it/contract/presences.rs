//! The contract cases of several providers' presences on one avatar: the strongest shows, and
//! taking one off shows the other again — also when both providers write at once.

use super::{connections::connection, *};

/// `provider`'s presence of `kind`, shown as `e`, since `since`.
fn presence(provider: &str, kind: Kind, e: &str, since: i64) -> PresenceOverride {
    PresenceOverride {
        provider: provider.into(),
        availability: format!("{kind:?}"),
        activity: format!("{kind:?}"),
        label: format!("{provider}: {kind:?}"),
        emoji: emoji(e),
        kind,
        since,
    }
}

pub async fn an_avatar_shows_the_strongest_of_its_providers_presences(store: &dyn Store) {
    let s = space(store, "office").await;
    let quiet = space(store, "quiet").await;
    let a = member(store, &s, "a@example.com", "Alice").await;
    store
        .add_member(&Membership { space_id: quiet.id, account_id: a.id, role: Role::Member }, &name("Alice"), T0)
        .await
        .unwrap();
    let teams = connection(a.id, "ms-user-a");
    let calendar = Connection { id: ConnectionId::new(), provider: "gcal".into(), ..connection(a.id, "g-sub-a") };
    for c in [&teams, &calendar] {
        store.save_connection(c).await.unwrap();
        store.set_connection_space(c.id, s.id, true).await.unwrap();
    }
    // Teams is ON in the quiet space, the calendar is not.
    store.set_connection_space(teams.id, quiet.id, true).await.unwrap();
    let shown = |applied: Applied| match applied {
        Applied::Shown(avatars) => avatars
            .iter()
            .map(|v| (v.space_id, v.presence.as_ref().map(|p| (p.provider.clone(), p.emoji.as_str().to_owned()))))
            .collect::<Vec<_>>(),
        other => panic!("not shown: {other:?}"),
    };
    let shows = |provider: &str, e: &str| Some((provider.to_owned(), e.to_owned()));
    let in_space = |list: Vec<(SpaceId, Option<(String, String)>)>, space: SpaceId| {
        list.into_iter().find(|(id, _)| *id == space).map(|(_, p)| p).expect("that space's avatar")
    };

    let busy = presence("msteams", Kind::Busy, "🔴", T0 + 1);
    let applied = shown(apply_one(store, teams.id, "ms-user-a", Some("1"), false, Some(&busy), T0 + 1).await.unwrap());
    assert_eq!(in_space(applied.clone(), s.id), shows("msteams", "🔴"));
    assert_eq!(in_space(applied, quiet.id), shows("msteams", "🔴"));

    // A calendar meeting outranks Teams' Busy where the calendar is ON, and only there.
    let meeting = presence("gcal", Kind::InAMeeting, "📅", T0 + 2);
    let applied = shown(apply_one(store, calendar.id, "g-sub-a", None, false, Some(&meeting), T0 + 2).await.unwrap());
    assert_eq!(applied, vec![(s.id, shows("gcal", "📅"))], "the calendar's avatars only");
    assert_eq!(store.avatar(quiet.id, a.id).await.unwrap().unwrap().presence, Some(busy.clone()));

    // Teams going Available (no presence) leaves the meeting shown; going In a call outranks it.
    let applied = shown(apply_one(store, teams.id, "ms-user-a", Some("2"), false, None, T0 + 3).await.unwrap());
    assert_eq!(in_space(applied.clone(), s.id), shows("gcal", "📅"));
    assert_eq!(in_space(applied, quiet.id), None);
    let call = presence("msteams", Kind::InACall, "📞", T0 + 4);
    let applied = shown(apply_one(store, teams.id, "ms-user-a", Some("3"), false, Some(&call), T0 + 4).await.unwrap());
    assert_eq!(in_space(applied, s.id), shows("msteams", "📞"));

    // Two alike: the one shown first stays, even when the other is written again later.
    let teams_meeting = presence("msteams", Kind::InAMeeting, "📅", T0 + 5);
    shown(apply_one(store, teams.id, "ms-user-a", Some("4"), false, Some(&teams_meeting), T0 + 5).await.unwrap());
    let again = presence("gcal", Kind::InAMeeting, "📅", T0 + 6);
    let applied = shown(apply_one(store, calendar.id, "g-sub-a", None, false, Some(&again), T0 + 6).await.unwrap());
    assert_eq!(in_space(applied, s.id), shows("gcal", "📅"), "the calendar's meeting began first (T0 + 2)");
    let v = store.avatar(s.id, a.id).await.unwrap().unwrap();
    assert_eq!(v.presence.as_ref().map(|p| p.since), Some(T0 + 2), "since: when that kind began");

    // Taking the calendar's off shows Teams' again; taking Teams' off too shows the own emoji.
    let v = store.clear_presence(s.id, a.id, "gcal", T0 + 7).await.unwrap().expect("cleared");
    assert_eq!(v.presence.as_ref().map(|p| p.provider.as_str()), Some("msteams"));
    let v = store.clear_presence(s.id, a.id, "msteams", T0 + 8).await.unwrap().expect("cleared");
    assert_eq!(v.presence, None);
    assert_eq!(store.clear_presence(s.id, a.id, "msteams", T0 + 9).await.unwrap(), None, "nothing left");
    assert!(store.avatar(quiet.id, a.id).await.unwrap().unwrap().presence.is_some(), "another space's stays");
}

pub async fn two_providers_writing_at_once_leave_the_strongest_shown(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "Alice").await;
    let teams = connection(a.id, "ms-user-a");
    let calendar = Connection { id: ConnectionId::new(), provider: "gcal".into(), ..connection(a.id, "g-sub-a") };
    for c in [&teams, &calendar] {
        store.save_connection(c).await.unwrap();
        store.set_connection_space(c.id, s.id, true).await.unwrap();
    }
    // Teams: nothing, Busy (weaker than a meeting), In a call (stronger); the calendar: nothing
    // or a meeting. Each round writes one of each at once, started in either order; the avatar
    // must show the stronger of the two written, whichever transaction ends last. (SQLite runs
    // one writer at a time: the race is PostgreSQL's.)
    let teams_says =
        [None, Some(presence("msteams", Kind::Busy, "🔴", T0)), Some(presence("msteams", Kind::InACall, "📞", T0))];
    let calendar_says = [None, Some(presence("gcal", Kind::InAMeeting, "📅", T0))];
    for round in 0..60_usize {
        let t = teams_says[round % 3].clone();
        let c = calendar_says[(round / 3) % 2].clone();
        let sequence = format!("{round:04}");
        let now = T0 + i64::try_from(round).unwrap() + 1;
        let from_teams = apply_one(store, teams.id, "ms-user-a", Some(&sequence), false, t.as_ref(), now);
        let from_calendar = apply_one(store, calendar.id, "g-sub-a", Some(&sequence), false, c.as_ref(), now);
        // Started in one order, then in the other.
        let (one, other) = if round % 2 == 0 {
            tokio::join!(from_teams, from_calendar)
        } else {
            let (other, one) = tokio::join!(from_calendar, from_teams);
            (one, other)
        };
        assert!(matches!(one.unwrap(), Applied::Shown(_)) && matches!(other.unwrap(), Applied::Shown(_)));
        let strongest = [&t, &c].into_iter().flatten().min_by_key(|p| p.kind).map(|p| p.emoji.as_str().to_owned());
        let shown = store.avatar(s.id, a.id).await.unwrap().unwrap().presence.map(|p| p.emoji.as_str().to_owned());
        assert_eq!(shown, strongest, "round {round}: Teams {t:?}, the calendar {c:?}");
    }
}
