//! kehai's Google client against googleemu, over HTTP on loopback: the sign-in with the
//! browser's part played by walking googleemu's chooser and consent pages, and the Calendar
//! calls as googleemu records them.

#![allow(clippy::unwrap_used)]

mod calendar;
mod identity;

use std::{collections::HashMap, time::Duration};

use googleemu::{Config, Directory, Emulator, PushTiming, Running};
use kehai_google::{Calendar, GoogleConfig, Identity, Tokens};
use reqwest::StatusCode;
use secrecy::SecretString;

const REDIRECT: &str = "http://kehai.test/integrations/gcal/callback";

async fn googleemu() -> Running {
    let mut directory = Directory::default();
    directory.clients[0].redirect_uris.push(REDIRECT.to_owned());
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_push: true,
        push: PushTiming { timeout: Duration::from_secs(2), retry_base: Duration::from_millis(50), max_attempts: 3 },
        ..Config::default()
    };
    Emulator::start(config).await.unwrap()
}

fn config(emu: &Running) -> GoogleConfig {
    let client = emu.emulator.world.lock().directory.clients[0].clone();
    GoogleConfig {
        issuer: emu.issuer().parse().unwrap(),
        calendar_url: emu.url("/calendar/v3").parse().unwrap(),
        client_id: client.client_id,
        client_secret: SecretString::from(client.client_secret),
    }
}

fn input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let from = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[from..from + html[from..].find('"').unwrap()].to_owned()
}

/// What the browser ends on: the redirect back to kehai (its query), or a page of googleemu's.
enum Landing {
    Back(HashMap<String, String>),
    Page(StatusCode, String),
}

async fn landing(response: reqwest::Response) -> Landing {
    if response.status() == StatusCode::FOUND {
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT), "{location}");
        Landing::Back(location.query_pairs().into_owned().collect())
    } else {
        Landing::Page(response.status(), response.text().await.unwrap())
    }
}

/// Walks googleemu's pages as a person would: signs in as `email`, then on the consent page
/// ticks only the scopes `keep` allows; returns where the browser ends.
async fn walk(emu: &Running, url: &url::Url, email: &str, password: &str, keep: impl Fn(&str) -> bool) -> Landing {
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let chooser = browser.get(url.as_str()).send().await.unwrap().text().await.unwrap();
    let form = [
        ("flow", input(&chooser, "flow")),
        ("csrf", input(&chooser, "csrf")),
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ];
    let signed_in = browser.post(emu.url("/o/oauth2/v2/auth/signin")).form(&form).send().await.unwrap();
    let Landing::Page(StatusCode::OK, consent) = landing(signed_in).await else { panic!("no consent page") };
    let mut form =
        vec![("flow", input(&consent, "flow")), ("csrf", input(&consent, "csrf")), ("decision", "allow".to_owned())];
    for scope in consent.split("type=\"checkbox\" name=\"scope\" value=\"").skip(1) {
        let scope = &scope[..scope.find('"').unwrap()];
        if keep(scope) {
            form.push(("scope", scope.to_owned()));
        }
    }
    landing(browser.post(emu.url("/o/oauth2/v2/auth/consent")).form(&form).send().await.unwrap()).await
}

/// `email` signed in through kehai's client, every scope allowed: the tokens.
async fn connected(emu: &Running, email: &str, password: &str) -> Tokens {
    let identity = Identity::new(config(emu));
    let request = identity.authorization_request(REDIRECT, None).await.unwrap();
    let Landing::Back(query) = walk(emu, &request.url, email, password, |_| true).await else { panic!("not back") };
    identity.exchange_code(&query["code"], &request.pkce_verifier, REDIRECT).await.unwrap()
}

fn calendar(emu: &Running) -> Calendar {
    Calendar::new(config(emu))
}
