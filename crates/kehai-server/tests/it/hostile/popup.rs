//! A provider's sign-in popup (Teams', Google's): connect links, callbacks replayed or made up,
//! guests.

use super::{Case, Code::*, case};
use crate::support::{Client, TestApp};

/// Who tries the popup: Alice, who connected (her callback kept), a guest, a stranger; the
/// connect tokens of Alice's and Bob's pages.
pub(super) struct Popup<'a> {
    pub app: &'a TestApp,
    pub alice: &'a Client,
    pub guest: &'a Client,
    pub anonymous: &'a Client,
    pub alice_token: &'a str,
    pub bob_token: &'a str,
    pub callback: &'a str,
}

pub(super) fn cases(provider: &str, popup: &Popup<'_>) -> Vec<Case> {
    let Popup { app, alice, guest, anonymous, alice_token, bob_token, callback } = *popup;
    let connect = |query: &str| app.url(&format!("/integrations/{provider}/connect?{query}&connect={alice_token}"));
    let url = |path: &str| app.url(&format!("/integrations/{provider}/{path}"));
    let what = |what: &str| format!("{provider}: {what}");
    vec![
        case(what("a replayed OAuth callback"), alice.http.get(callback), 400, Outcome("expired")),
        case(
            what("a callback with a made-up state"),
            alice.http.get(url("callback?state=made-up&code=stolen")),
            400,
            Outcome("expired"),
        ),
        case(what("a callback without state"), alice.http.get(url("callback?code=stolen")), 400, Outcome("expired")),
        case(
            what("a callback with script in its error"),
            alice.http.get(url("callback?state=x&error=%3Cscript%3Ealert(1)%3C/script%3E")),
            400,
            Outcome("expired"),
        ),
        case(
            what("a callback with two states"),
            alice.http.get(url("callback?state=a&state=b&code=c")),
            400,
            Outcome("expired"),
        ),
        case(
            what("connecting to two spaces at once"),
            alice.http.get(connect("space=alpha&space=beta")),
            404,
            Page("space_not_found"),
        ),
        case(
            what("a callback without session"),
            anonymous.http.get(url(&format!("callback?{}", callback.split_once('?').unwrap().1))),
            400,
            Outcome("expired"),
        ),
        case(what("connecting to another space"), alice.http.get(connect("space=beta")), 403, Page("forbidden")),
        case(
            what("connecting to a space that does not exist"),
            alice.http.get(connect("space=%3Cscript%3E")),
            404,
            Page("space_not_found"),
        ),
        case(
            what("connecting from a link elsewhere (no token)"),
            alice.http.get(url("connect?space=alpha")),
            400,
            Outcome("expired"),
        ),
        case(
            what("connecting with another session's token"),
            alice.http.get(url(&format!("connect?space=alpha&connect={bob_token}"))),
            400,
            Outcome("expired"),
        ),
        case(
            what("connecting with the token given twice"),
            alice.http.get(url(&format!("connect?space=alpha&connect={alice_token}&connect={alice_token}"))),
            400,
            Outcome("expired"),
        ),
        case(what("connecting as a guest"), guest.http.get(url("connect?space=alpha")), 403, Outcome("members-only")),
    ]
}
