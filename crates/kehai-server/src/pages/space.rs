//! `/s/{slug}`: the space page. The avatars themselves arrive over the event stream; this page
//! carries the viewer's identity, CSRF token and script strings as JSON.

use std::collections::BTreeMap;

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use kehai_core::Role;
use serde::Serialize;

use super::{PageError, render, see_other};
use crate::{
    access::{self, Refusal},
    auth::Visitor,
    i18n::{Catalog, Lang},
    state::AppState,
};

/// The emoji offered in the picker (any other single emoji can be typed).
const EMOJI_CHOICES: &[&str] = &[
    "😀", "😊", "😎", "🤓", "🤔", "😴", "🤒", "🥳", "😅", "🙂", "🙃", "😇", "🤫", "🤐", "😷", "🥱", "👍", "👋", "🙏",
    "💪", "👀", "🧠", "✍️", "🙋", "💻", "🖥️", "⌨️", "📱", "📞", "📅", "📝", "📚", "📦", "🔧", "🔍", "💡", "📊", "🎧",
    "🎤", "🎨", "☕", "🍵", "🍱", "🍙", "🍜", "🍰", "🍺", "🍷", "🏠", "🏢", "🚃", "🚗", "✈️", "🏖️", "🏝️", "🏃", "🚶",
    "🧘", "🌸", "🌿", "☀️", "🌙", "⭐", "🔥", "❤️", "💙", "💚", "💛", "✅", "❌", "⚠️", "⛔", "🔴", "🟢", "🟡", "⏳",
    "💤", "🎉", "🎂", "🐱",
];

#[derive(Template)]
#[template(path = "space.html")]
struct SpacePage<'a> {
    t: &'a Catalog,
    slug: String,
    space_name: &'a str,
    my_name: String,
    csrf: String,
    is_guest: bool,
    /// One card per provider kehai knows, in the Status section.
    cards: Vec<Card>,
    /// Told once: the providers whose connection needs a new sign-in.
    notices: Vec<Notice>,
    /// For the space's admins, where guests may join: that they see everyone's status.
    guests_notice: Option<&'a str>,
    emoji_choices: Vec<(&'static str, &'static str)>,
    page_data: String,
}

/// A provider's card, in the visitor's language.
struct Card {
    id: &'static str,
    /// Whether this server offers it (else the card says it is not configured here).
    configured: bool,
    name: String,
    what: String,
    not_configured: String,
}

/// That a provider's connection needs a new sign-in.
struct Notice {
    id: &'static str,
    text: String,
}

#[derive(Serialize)]
struct PageData<'a> {
    space: &'a str,
    me: String,
    kind: &'a str,
    csrf: &'a str,
    /// What the Connect buttons' links carry.
    connect: String,
    lang: &'a str,
    strings: BTreeMap<&'a str, &'a str>,
    /// Each provider's card: whether it is offered, and its words.
    integrations: Vec<IntegrationData<'a>>,
}

#[derive(Serialize)]
struct IntegrationData<'a> {
    id: &'a str,
    configured: bool,
    strings: BTreeMap<&'a str, &'a str>,
}

/// JSON that is safe inside `<script type="application/json">`: no `<`, so no `</script>`.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into()).replace('<', "\\u003c")
}

pub async fn show(
    State(state): State<AppState>,
    Lang(lang): Lang,
    Path(slug): Path<String>,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    let Some(visitor) = visitor else {
        return match access::space(&state, &slug).await {
            Ok(Some(space)) => see_other(&format!("/login?next=/s/{}", space.slug)),
            Ok(None) => PageError::NoSpace.render(t),
            Err(_) => PageError::Internal.render(t),
        };
    };
    let admitted = match access::admit(&state, &slug, visitor).await {
        Ok(a) => a,
        Err(Refusal::NoSuchSpace) => return PageError::NoSpace.render(t),
        Err(Refusal::Forbidden) => return PageError::Forbidden.render(t),
        Err(Refusal::Failed(_)) => return PageError::Internal.render(t),
    };
    let me = admitted.visitor.person_id();
    let my_name = match state.store.avatar(admitted.space.id, me).await {
        Ok(Some(a)) => a.display_name.as_str().to_owned(),
        Ok(None) => return PageError::Forbidden.render(t),
        Err(_) => return PageError::Internal.render(t),
    };
    let csrf = admitted.visitor.cookie.csrf_token();
    let is_guest = admitted.visitor.is_guest();
    let slug = admitted.space.slug.to_string();
    let known = state.presence.known();
    let integrations = known
        .iter()
        .map(|k| {
            let mut strings = t.section(&format!("{}.card", k.id));
            if let Some(words) = t.section(k.id).get("not_configured") {
                strings.insert("not_configured", words);
            }
            IntegrationData { id: k.id, configured: k.offered.is_some(), strings }
        })
        .collect();
    let page_data = script_json(&PageData {
        space: &slug,
        me: me.to_string(),
        kind: if is_guest { "guest" } else { "member" },
        csrf: &csrf,
        connect: admitted.visitor.cookie.connect_token(),
        lang: lang.code(),
        strings: t.script_strings(),
        integrations,
    });
    let words = |id: &str, key: &str| t.get(&format!("{id}.{key}")).to_owned();
    let cards = known
        .iter()
        .map(|k| Card {
            id: k.id,
            configured: k.offered.is_some(),
            name: words(k.id, "card.name"),
            what: words(k.id, "card.what"),
            not_configured: words(k.id, "not_configured"),
        })
        .collect();
    // Taken when shown: a notice appears on one page load, the Status section keeps the state.
    // Only those of providers offered here: another's waits until it is.
    let mut notices = Vec::new();
    for k in known.iter().filter(|k| k.offered.is_some() && !is_guest) {
        match state.store.take_connection_notice(me, k.id).await {
            Ok(true) => notices.push(Notice { id: k.id, text: words(k.id, "card.notice") }),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the member's connection notice"),
        }
    }
    let guests_notice = match (admitted.role, admitted.space.allow_guests) {
        (Some(Role::Admin), true) => Some(match state.store.guest_link_hash(admitted.space.id).await {
            Ok(Some(_)) => t.get("space.guests_by_link"),
            _ => t.get("space.guests_open"),
        }),
        _ => None,
    };
    let emoji_choices = EMOJI_CHOICES.iter().map(|e| (*e, emojis::get(e).map(|x| x.name()).unwrap_or(e))).collect();
    render(
        StatusCode::OK,
        &SpacePage {
            t,
            space_name: admitted.space.name.as_str(),
            slug,
            my_name,
            csrf,
            is_guest,
            cards,
            notices,
            guests_notice,
            emoji_choices,
            page_data,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_is_a_valid_emoji() {
        for e in EMOJI_CHOICES {
            let parsed = kehai_core::Emoji::parse(e).unwrap_or_else(|_| panic!("{e} is not an emoji"));
            assert_eq!(parsed.as_str(), *e, "{e} is not in its stored form, so the picker would not mark it");
        }
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        assert!(!script_json(&"</script><script>alert(1)</script>").contains('<'));
    }
}
