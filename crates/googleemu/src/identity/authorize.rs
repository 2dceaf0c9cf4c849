//! `GET /o/oauth2/v2/auth` and the pages behind it: the account chooser (accounts "known to
//! this browser" as buttons, and an email/password form) and the consent page (granular: every
//! scope beyond sign-in has a ticked checkbox the person may untick).
//!
//! The request is checked first. What cannot safely go back to the app — an unknown client, a
//! redirect URI not registered exactly, a malformed request — gets Google's error screen; a
//! refusal (`access_denied`) and `prompt=none` failures (`login_required`, `consent_required`)
//! are redirected. Every form carries the flow id and a nonce fresh for each page shown; a post
//! without the page's nonce is refused (a replayed or forged form).

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Query, RawForm, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;

use super::errors::{page, redirect_error, redirect_with};
use crate::{
    Emulator,
    scopes::{self, Scopes},
    world::{Code, Flow, Inner, random_hex, random_token},
};

/// googleemu's browser session cookie ("signed in at Google").
const SESSION_COOKIE: &str = "googleemu_session";
/// Flows and codes live ten minutes.
pub const CODE_LIFETIME_MS: i64 = 600_000;

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    access_type: Option<String>,
    prompt: Option<String>,
    include_granted_scopes: Option<String>,
    login_hint: Option<String>,
    hd: Option<String>,
}

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn invalid_request(message: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "invalid_request", "Access blocked: this app's request is invalid", message)
}

/// PKCE per RFC 7636: 43–128 unreserved characters.
fn valid_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Checks an authorization request into a [`Flow`], or answers the error screen.
#[allow(clippy::result_large_err)] // the error is the answer itself, built once per request
fn check(world: &Inner, q: AuthorizeQuery, now: i64) -> Result<Flow, Response> {
    let client_id = q.client_id.unwrap_or_default();
    let Some(client) = world.directory.client(&client_id) else {
        return Err(page(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Access blocked: authorization error",
            "The OAuth client was not found.",
        ));
    };
    let redirect_uri = q.redirect_uri.unwrap_or_default();
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            &format!("Access blocked: {}'s request is invalid", client.name),
            &format!(
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. If you're the app developer, register the redirect URI in the Google Cloud Console. Request details: redirect_uri={redirect_uri}"
            ),
        ));
    }
    match q.response_type.as_deref() {
        Some("code") => {}
        None => return Err(invalid_request("Required parameter is missing: response_type")),
        Some(other) => {
            return Err(page(
                StatusCode::BAD_REQUEST,
                "unsupported_response_type",
                "Access blocked: this app's request is invalid",
                &format!("Invalid response_type: {other}"),
            ));
        }
    }
    let scope =
        q.scope.filter(|s| !s.trim().is_empty()).ok_or_else(|| invalid_request("Missing required parameter: scope"))?;
    let scopes = scopes::parse(&scope).map_err(|unknown| {
        page(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Access blocked: this app's request is invalid",
            &format!("Some requested scopes were invalid. {{invalid=[{}]}}", unknown.join(", ")),
        )
    })?;
    let prompt: Vec<String> = q.prompt.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = prompt.iter().find(|p| !matches!(p.as_str(), "none" | "consent" | "select_account")) {
        return Err(invalid_request(&format!("Invalid parameter value for prompt: Invalid prompt: {bad}")));
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(invalid_request("Invalid parameter value for prompt: None must be the only value"));
    }
    let offline = match q.access_type.as_deref() {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => return Err(invalid_request(&format!("Invalid access_type: {other}"))),
    };
    let challenge = match (q.code_challenge, q.code_challenge_method) {
        (None, None) => None,
        (None, Some(_)) => return Err(invalid_request("Missing code_challenge parameter.")),
        (Some(c), method) => {
            let method = method.unwrap_or_else(|| "plain".to_owned());
            if method != "S256" && method != "plain" {
                return Err(invalid_request(&format!("Invalid code_challenge_method value: {method}")));
            }
            if !valid_pkce_value(&c) {
                return Err(invalid_request("Invalid code_challenge."));
            }
            Some((c, method))
        }
    };
    Ok(Flow {
        client_id,
        redirect_uri,
        scopes,
        state: q.state,
        nonce: q.nonce,
        challenge,
        offline,
        prompt,
        include_granted_scopes: q.include_granted_scopes.as_deref() == Some("true"),
        login_hint: q.login_hint,
        hd: q.hd,
        user: None,
        csrf: random_hex(),
        created: now,
    })
}

pub async fn start(State(emu): State<Arc<Emulator>>, headers: HeaderMap, Query(q): Query<AuthorizeQuery>) -> Response {
    let now = emu.clock.now_ms();
    let mut world = emu.world.lock();
    let flow = match check(&world, q, now) {
        Ok(flow) => flow,
        Err(response) => return response,
    };
    let session_user = cookie(&headers, SESSION_COOKIE).and_then(|s| world.sessions.get(&s).cloned());
    let hinted = flow.login_hint.as_deref().and_then(|h| world.directory.user(h)).map(|u| u.email.to_lowercase());
    let flow_id = random_token(32);
    world.flows.retain(|_, f| now - f.created < CODE_LIFETIME_MS);
    world.flows.insert(flow_id.clone(), flow.clone());
    // The session's account goes on without the chooser unless the app asked for it, or hinted
    // at another account.
    let signed_in = session_user.filter(|u| hinted.as_ref().is_none_or(|h| h == u));
    if flow.prompts("none") {
        let Some(user) = signed_in else {
            world.flows.remove(&flow_id);
            return redirect_error(&flow.redirect_uri, "login_required", flow.state.as_deref());
        };
        return after_account(&emu, &mut world, &flow_id, &user);
    }
    match signed_in {
        Some(user) if !flow.prompts("select_account") => after_account(&emu, &mut world, &flow_id, &user),
        _ => chooser(&mut world, &flow_id, None),
    }
}

struct Account {
    email: String,
    name: String,
}

#[derive(Template)]
#[template(path = "chooser.html")]
struct ChooserPage<'a> {
    flow: &'a str,
    csrf: &'a str,
    app_name: &'a str,
    accounts: Vec<Account>,
    login_hint: &'a str,
    error: Option<&'a str>,
}

/// The account chooser, with a fresh form nonce. The `hd` hint narrows the listed accounts to
/// that organization (`*`: any organization) — only the list: the email form takes anyone.
fn chooser(world: &mut Inner, flow_id: &str, error: Option<&str>) -> Response {
    let csrf = random_hex();
    let Some(flow) = world.flows.get_mut(flow_id) else {
        return expired();
    };
    flow.csrf = csrf.clone();
    let flow = flow.clone();
    let app_name = world.directory.client(&flow.client_id).map_or("the app", |c| c.name.as_str());
    let accounts = world
        .directory
        .users
        .iter()
        .filter(|u| match flow.hd.as_deref() {
            None => true,
            Some("*") => u.hd.is_some(),
            Some(domain) => u.hd.as_deref().is_some_and(|hd| hd.eq_ignore_ascii_case(domain)),
        })
        .map(|u| Account { email: u.email.clone(), name: u.name.clone() })
        .collect();
    render(&ChooserPage {
        flow: flow_id,
        csrf: &csrf,
        app_name,
        accounts,
        login_hint: flow.login_hint.as_deref().unwrap_or(""),
        error,
    })
}

fn expired() -> Response {
    invalid_request("This sign-in page has expired or was already used. Go back to the app and try again.")
}

/// The fields of a posted form (several `scope` values among them).
fn form_fields(form: &RawForm) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&form.0).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The flow a form belongs to, if the form carries the nonce of the page last shown for it (which
/// is then used up).
fn posted_flow(world: &mut Inner, fields: &[(String, String)], now: i64) -> Option<String> {
    let flow_id = field(fields, "flow")?;
    let flow = world.flows.get_mut(flow_id).filter(|f| now - f.created < CODE_LIFETIME_MS)?;
    if field(fields, "csrf") != Some(flow.csrf.as_str()) {
        return None;
    }
    flow.csrf = random_hex();
    Some(flow_id.to_owned())
}

/// `POST /o/oauth2/v2/auth/signin`: an account button of the chooser, or email and password.
pub async fn sign_in(State(emu): State<Arc<Emulator>>, form: RawForm) -> Response {
    let fields = form_fields(&form);
    let mut world = emu.world.lock();
    let Some(flow_id) = posted_flow(&mut world, &fields, emu.clock.now_ms()) else {
        return expired();
    };
    let user = match (field(&fields, "account"), field(&fields, "email")) {
        (Some(account), _) => world.directory.user(account).map(|u| u.email.to_lowercase()),
        (None, Some(email)) => match world.directory.user(email) {
            None => return chooser(&mut world, &flow_id, Some("Couldn't find your Google Account")),
            Some(u) if field(&fields, "password") != Some(u.password.as_str()) => {
                return chooser(
                    &mut world,
                    &flow_id,
                    Some("Wrong password. Try again or click Forgot password to reset it."),
                );
            }
            Some(u) => Some(u.email.to_lowercase()),
        },
        (None, None) => None,
    };
    let Some(user) = user else {
        return chooser(&mut world, &flow_id, Some("Enter an email or phone number"));
    };
    let session = random_token(40);
    world.sessions.insert(session.clone(), user.clone());
    let mut response = after_account(&emu, &mut world, &flow_id, &user);
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

struct ScopeLine {
    scope: String,
    text: String,
    /// Sign-in scopes are always shared; the others have a checkbox.
    basic: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    flow: &'a str,
    csrf: &'a str,
    app_name: &'a str,
    email: &'a str,
    scopes: Vec<ScopeLine>,
}

/// Once the account is known: the client's and the organization's rules, then consent (asked
/// when the app asks for a scope not yet granted, or with `prompt=consent`), then the code.
fn after_account(emu: &Emulator, world: &mut Inner, flow_id: &str, user: &str) -> Response {
    let Some(flow) = world.flows.get_mut(flow_id) else {
        return expired();
    };
    flow.user = Some(user.to_owned());
    let flow = flow.clone();
    let (Some(client), Some(account)) =
        (world.directory.client(&flow.client_id).cloned(), world.directory.user(user).cloned())
    else {
        return expired();
    };
    let silent = flow.prompts("none");
    if client.internal && account.hd.as_deref() != client.organization.as_deref() {
        world.flows.remove(flow_id);
        if silent {
            return redirect_error(&flow.redirect_uri, "access_denied", flow.state.as_deref());
        }
        return page(
            StatusCode::FORBIDDEN,
            "org_internal",
            &format!("Access blocked: {} can only be used within its organization", client.name),
            &format!(
                "{} is restricted to users within its organization. Sign in with an account of {}.",
                client.name,
                client.organization.as_deref().unwrap_or("that organization")
            ),
        );
    }
    if world.admin_policy_enforced(user, &client.client_id) {
        world.flows.remove(flow_id);
        if silent {
            return redirect_error(&flow.redirect_uri, "access_denied", flow.state.as_deref());
        }
        return page(
            StatusCode::BAD_REQUEST,
            "admin_policy_enforced",
            &format!("Access blocked: {}", client.name),
            &format!(
                "Your organization's administrator has restricted access to {} for {}. Contact your administrator.",
                client.name, account.email
            ),
        );
    }
    let granted = world.consents.get(&(user.to_owned(), flow.client_id.clone())).cloned().unwrap_or_default();
    let needs_consent = flow.prompts("consent") || !flow.scopes.is_subset(&granted);
    if !needs_consent {
        return issue_code(emu, world, flow_id, flow.scopes.clone(), false);
    }
    if silent {
        world.flows.remove(flow_id);
        return redirect_error(&flow.redirect_uri, "consent_required", flow.state.as_deref());
    }
    let csrf = random_hex();
    if let Some(f) = world.flows.get_mut(flow_id) {
        f.csrf = csrf.clone();
    }
    let scopes = flow
        .scopes
        .iter()
        .map(|s| ScopeLine { scope: s.clone(), text: scopes::describe(s), basic: scopes::is_basic(s) })
        .collect();
    render(&ConsentPage { flow: flow_id, csrf: &csrf, app_name: &client.name, email: &account.email, scopes })
}

/// `POST /o/oauth2/v2/auth/consent`: Allow (with the ticked scopes) or Cancel.
pub async fn consent(State(emu): State<Arc<Emulator>>, form: RawForm) -> Response {
    let fields = form_fields(&form);
    let mut world = emu.world.lock();
    let Some(flow_id) = posted_flow(&mut world, &fields, emu.clock.now_ms()) else {
        return expired();
    };
    let Some(flow) = world.flows.get(&flow_id).cloned() else {
        return expired();
    };
    let Some(user) = flow.user.clone() else {
        return expired();
    };
    if field(&fields, "decision") != Some("allow") {
        world.flows.remove(&flow_id);
        return redirect_error(&flow.redirect_uri, "access_denied", flow.state.as_deref());
    }
    // Sign-in scopes are always granted; the others only if still ticked.
    let ticked: Vec<&str> = fields.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()).collect();
    let granted: Scopes =
        flow.scopes.iter().filter(|s| scopes::is_basic(s) || ticked.contains(&s.as_str())).cloned().collect();
    world.consents.entry((user, flow.client_id.clone())).or_default().extend(granted.iter().cloned());
    issue_code(&emu, &mut world, &flow_id, granted, true)
}

/// Ends the flow: a code for `granted` (plus what was granted before, with
/// `include_granted_scopes=true`), redirected to the app as Google does
/// (`?state&code&scope&authuser&hd&prompt`).
fn issue_code(emu: &Emulator, world: &mut Inner, flow_id: &str, granted: Scopes, consent_shown: bool) -> Response {
    let Some(flow) = world.flows.remove(flow_id) else {
        return expired();
    };
    let Some(user) = flow.user.clone() else {
        return expired();
    };
    let mut scopes = granted;
    if flow.include_granted_scopes
        && let Some(before) = world.consents.get(&(user.clone(), flow.client_id.clone()))
    {
        scopes.extend(before.iter().cloned());
    }
    let now = emu.clock.now_ms();
    let code = format!("4/0A{}", random_token(70));
    world.codes.retain(|_, c| now - c.created < CODE_LIFETIME_MS);
    world.codes.insert(
        code.clone(),
        Code {
            client_id: flow.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            user: user.clone(),
            scopes: scopes.clone(),
            nonce: flow.nonce.clone(),
            challenge: flow.challenge.clone(),
            // A refresh token comes with offline access when the person consented on screen —
            // the first time, or again because of prompt=consent or new scopes.
            refresh: flow.offline && consent_shown,
            created: now,
            used: false,
        },
    );
    let hd = world.directory.user(&user).and_then(|u| u.hd.clone());
    let scope = scopes::join(&scopes);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(state) = flow.state.as_deref() {
        pairs.push(("state", state));
    }
    pairs.extend([("code", code.as_str()), ("scope", scope.as_str()), ("authuser", "0")]);
    if let Some(hd) = hd.as_deref() {
        pairs.push(("hd", hd));
    }
    pairs.push(("prompt", if consent_shown { "consent" } else { "none" }));
    redirect_with(&flow.redirect_uri, &pairs)
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
