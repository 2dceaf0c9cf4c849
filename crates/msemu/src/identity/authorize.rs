//! `/{tenant}/oauth2/v2.0/authorize` and the pages behind it: sign-in (account picker and
//! email/password form), consent, "Need admin approval", and `/{tenant}/v2.0/adminconsent`.
//!
//! The request is validated first. Errors that cannot safely go back to the app (unknown
//! `client_id`, `redirect_uri` not registered) get Microsoft's error page; the rest are sent to
//! the redirect URI as `?error=…&error_description=AADSTS…&state=…`.

use std::{collections::HashMap, sync::Arc};

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Authority,
    errors::{Aadsts, found},
    scopes,
};
use crate::{
    Emulator,
    directory::ConsentPolicy,
    world::{Code, Flow, Inner, now, random_token},
};

/// msemu's browser session cookie ("already signed in at Microsoft").
const SESSION_COOKIE: &str = "msemu_session";
/// Sign-in flows and codes live this long (Microsoft: codes about 10 minutes).
const CODE_LIFETIME: i64 = 600;

fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    client_id: Option<String>,
    response_type: Option<String>,
    redirect_uri: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    login_hint: Option<String>,
    domain_hint: Option<String>,
}

pub async fn start(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    Query(q): Query<AuthorizeQuery>,
    headers: HeaderMap,
) -> Response {
    let mut world = emu.world.lock();
    let Some(_authority) = Authority::parse(&world.directory, &tenant) else {
        return Aadsts::new("invalid_tenant", 90002, format!("Tenant '{tenant}' not found.")).page();
    };
    // Errors that must not be redirected: the redirect URI is not known to be the app's.
    let Some(app) = q.client_id.as_deref().and_then(|id| world.directory.app(id)).cloned() else {
        return Aadsts::new(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory.",
                q.client_id.as_deref().unwrap_or("")
            ),
        )
        .page();
    };
    let redirect_uri = q.redirect_uri.clone().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return Aadsts::new(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'.",
                app.client_id
            ),
        )
        .page();
    }
    let state = q.state.as_deref();
    let fail = |e: Aadsts| e.redirect(&redirect_uri, state);
    if q.response_type.as_deref() != Some("code") {
        return fail(Aadsts::new(
            "unsupported_response_type",
            700054,
            "response_type 'code' is the only one enabled for the application.",
        ));
    }
    if !matches!(q.response_mode.as_deref(), None | Some("query")) {
        return fail(Aadsts::new("invalid_request", 900144, "msemu supports response_mode=query only."));
    }
    let Some(scope) = q.scope.as_deref().filter(|s| !s.trim().is_empty()) else {
        return fail(Aadsts::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    };
    let scopes = match scopes::parse(scope) {
        Ok(s) => s,
        Err(unknown) => {
            return fail(Aadsts::new(
                "invalid_scope",
                70011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid: '{unknown}'."
                ),
            ));
        }
    };
    let Some(challenge) = q.code_challenge.clone().filter(|c| !c.is_empty()) else {
        return fail(Aadsts::new(
            "invalid_request",
            9002325,
            "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
        ));
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return fail(Aadsts::new(
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter or code_challenge_method not S256.",
        ));
    }
    if let Some(p) = q.prompt.as_deref()
        && !matches!(p, "login" | "none" | "consent" | "select_account")
    {
        return fail(Aadsts::new("invalid_request", 90023, format!("Invalid prompt value '{p}'.")));
    }
    let flow = Flow {
        tenant_path: tenant.clone(),
        client_id: app.client_id,
        redirect_uri: redirect_uri.clone(),
        scopes,
        state: q.state.clone(),
        nonce: q.nonce.clone(),
        code_challenge: challenge,
        prompt: q.prompt.clone(),
        login_hint: q.login_hint.clone(),
        domain_hint: q.domain_hint.clone(),
        user: None,
        created: now(),
    };
    let session_user = cookie(&headers, SESSION_COOKIE).and_then(|s| world.sessions.get(&s).copied());
    let flow_id = random_token();
    world.flows.retain(|_, f| now() - f.created < CODE_LIFETIME);
    world.flows.insert(flow_id.clone(), flow.clone());
    match (flow.prompt.as_deref(), session_user) {
        // Already signed in at "Microsoft": no page unless the app asked for one.
        (None | Some("none") | Some("consent"), Some(user)) => continue_flow(&mut world, &flow_id, user),
        (Some("none"), None) => {
            world.flows.remove(&flow_id);
            fail(Aadsts::new("login_required", 50058, "A silent sign-in request was sent but no user is signed in."))
        }
        _ => sign_in_page(&world, &tenant, &flow_id, None, StatusCode::OK),
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    tenant: &'a str,
    flow: &'a str,
    app_name: &'a str,
    login_hint: &'a str,
    accounts: Vec<(String, String, String)>,
    error: Option<&'a str>,
}

fn sign_in_page(world: &Inner, tenant: &str, flow_id: &str, error: Option<&str>, status: StatusCode) -> Response {
    let Some(flow) = world.flows.get(flow_id) else {
        return expired_flow();
    };
    let app_name = world.directory.app(&flow.client_id.to_string()).map_or("the application", |a| a.name.as_str());
    // prompt=login asks for credentials: no account picker then.
    let accounts = if flow.prompt.as_deref() == Some("login") {
        Vec::new()
    } else {
        // domain_hint: only that organization's accounts (its tenant domain or email domain).
        let hinted = |u: &&crate::directory::User| match &flow.domain_hint {
            None => true,
            Some(d) => {
                let d = d.to_ascii_lowercase();
                world.directory.tenant_of(u).domain == d || u.email.to_ascii_lowercase().ends_with(&format!("@{d}"))
            }
        };
        world
            .directory
            .users
            .iter()
            .filter(hinted)
            .map(|u| (u.id.to_string(), u.email.clone(), u.display_name.clone()))
            .collect()
    };
    render(
        &SignInPage {
            tenant,
            flow: flow_id,
            app_name,
            login_hint: flow.login_hint.as_deref().unwrap_or(""),
            accounts,
            error,
        },
        status,
    )
}

fn expired_flow() -> Response {
    Aadsts::new(
        "invalid_request",
        50089,
        "Flow token expired - Authentication Failed. Have the user try signing-in again.",
    )
    .page()
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    flow: String,
    account: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

pub async fn sign_in(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    Form(form): Form<SignInForm>,
) -> Response {
    let mut world = emu.world.lock();
    if !world.flows.contains_key(&form.flow) {
        return expired_flow();
    }
    let user = match (&form.account, &form.email) {
        // The account picker: someone already known to this browser.
        (Some(id), _) => Uuid::parse_str(id).ok().and_then(|id| world.directory.user(id)).map(|u| u.id),
        (None, Some(email)) => world.directory.user_by_email(email).and_then(|u| {
            let given = form.password.as_deref().unwrap_or("");
            (u.password.as_deref().unwrap_or("") == given).then_some(u.id)
        }),
        (None, None) => None,
    };
    let Some(user) = user else {
        let message =
            "AADSTS50126: Your account or password is incorrect. If you don't remember your password, reset it now.";
        return sign_in_page(&world, &tenant, &form.flow, Some(message), StatusCode::OK);
    };
    let session = random_token();
    world.sessions.insert(session.clone(), user);
    let mut response = continue_flow(&mut world, &form.flow, user);
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    tenant: &'a str,
    flow: &'a str,
    app_name: &'a str,
    email: &'a str,
    permissions: Vec<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage<'a> {
    tenant: &'a str,
    flow: &'a str,
    app_name: &'a str,
    email: &'a str,
}

/// After sign-in: the account must suit the authority, then consent, then a code.
fn continue_flow(world: &mut Inner, flow_id: &str, user_id: Uuid) -> Response {
    let Some(flow) = world.flows.get_mut(flow_id) else {
        return expired_flow();
    };
    flow.user = Some(user_id);
    let flow = flow.clone();
    let state = flow.state.as_deref();
    let Some(user) = world.directory.user(user_id).cloned() else {
        return expired_flow();
    };
    let tenant = world.directory.tenant_of(&user).clone();
    let authority = Authority::parse(&world.directory, &flow.tenant_path).unwrap_or(Authority::Common);
    if let Err(code) = authority.admits(&tenant) {
        world.flows.remove(flow_id);
        let e = match code {
            500208 => Aadsts::new(
                "invalid_request",
                500208,
                format!(
                    "The domain is not a valid login domain for the account type. User account '{}' is a personal Microsoft account; this application accepts work or school accounts only.",
                    user.email
                ),
            ),
            _ => Aadsts::new(
                "access_denied",
                50020,
                format!(
                    "User account '{}' from identity provider '{}' does not exist in tenant '{}' and cannot access the application '{}' in that tenant.",
                    user.email, tenant.domain, flow.tenant_path, flow.client_id
                ),
            ),
        };
        return e.redirect(&flow.redirect_uri, state);
    }
    let app_name = world.directory.app(&flow.client_id.to_string()).map(|a| a.name.clone()).unwrap_or_default();
    let silent = flow.prompt.as_deref() == Some("none");
    // Consent covers scopes: asking for more than was consented asks again.
    let asked: Vec<String> = scopes::graph(&flow.scopes).iter().map(|s| (*s).to_owned()).collect();
    let consented = world.consented(user.id, flow.client_id, &asked);
    if tenant.consent == ConsentPolicy::Admin && !consented {
        if silent {
            world.flows.remove(flow_id);
            return Aadsts::new("consent_required", 65001, admin_only_message(&app_name))
                .redirect(&flow.redirect_uri, state);
        }
        return render(
            &ApprovalPage { tenant: &flow.tenant_path, flow: flow_id, app_name: &app_name, email: &user.email },
            StatusCode::OK,
        );
    }
    let ask = !consented || (tenant.consent == ConsentPolicy::User && flow.prompt.as_deref() == Some("consent"));
    if ask {
        if silent {
            world.flows.remove(flow_id);
            return Aadsts::new(
                "consent_required",
                65001,
                format!("The user or administrator has not consented to use the application with ID '{}' named '{app_name}'. Send an interactive authorization request for this user and resource.", flow.client_id),
            )
            .redirect(&flow.redirect_uri, state);
        }
        let permissions = flow.scopes.iter().map(|s| (s.clone(), scopes::describe(s))).collect();
        return render(
            &ConsentPage {
                tenant: &flow.tenant_path,
                flow: flow_id,
                app_name: &app_name,
                email: &user.email,
                permissions,
            },
            StatusCode::OK,
        );
    }
    issue_code(world, flow_id)
}

fn admin_only_message(app_name: &str) -> String {
    format!(
        "{app_name} needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it."
    )
}

/// Ends the flow with a code, redirected to the app.
fn issue_code(world: &mut Inner, flow_id: &str) -> Response {
    let Some(flow) = world.flows.remove(flow_id) else {
        return expired_flow();
    };
    let Some(user) = flow.user else {
        return expired_flow();
    };
    let code = random_token();
    world.codes.retain(|_, c| now() - c.created < CODE_LIFETIME);
    world.codes.insert(code.clone(), Code { flow: flow.clone(), user, created: now(), redeemed: false });
    let Ok(mut url) = url::Url::parse(&flow.redirect_uri) else {
        return expired_flow();
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &flow.state {
            q.append_pair("state", state);
        }
        q.append_pair("session_state", &Uuid::new_v4().to_string());
    }
    found(url.as_str())
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    flow: String,
    decision: String,
}

pub async fn consent(State(emu): State<Arc<Emulator>>, Form(form): Form<ConsentForm>) -> Response {
    let mut world = emu.world.lock();
    let Some(flow) = world.flows.get(&form.flow).cloned() else {
        return expired_flow();
    };
    let Some(user_id) = flow.user else {
        return expired_flow();
    };
    let state = flow.state.as_deref();
    let app_name = world.directory.app(&flow.client_id.to_string()).map(|a| a.name.clone()).unwrap_or_default();
    match form.decision.as_str() {
        "accept" => {
            let admin_tenant = world
                .directory
                .user(user_id)
                .map(|u| world.directory.tenant_of(u).consent == ConsentPolicy::Admin)
                .unwrap_or(false);
            if admin_tenant {
                // Users of an admin-consent tenant cannot consent themselves.
                return StatusCode::FORBIDDEN.into_response();
            }
            world.consents.entry((user_id, flow.client_id)).or_default().extend(flow.scopes.iter().cloned());
            issue_code(&mut world, &form.flow)
        }
        "back" => {
            world.flows.remove(&form.flow);
            Aadsts::new("consent_required", 90094, admin_only_message(&app_name)).redirect(&flow.redirect_uri, state)
        }
        _ => {
            world.flows.remove(&form.flow);
            let mut response = Aadsts::new("access_denied", 65004, "User declined to consent to access the app.")
                .redirect(&flow.redirect_uri, state);
            // Microsoft adds error_subcode=cancel when the person cancels.
            if let Some(location) = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()) {
                let with_subcode = format!("{location}&error_subcode=cancel");
                if let Ok(v) = HeaderValue::from_str(&with_subcode) {
                    response.headers_mut().insert(header::LOCATION, v);
                }
            }
            response
        }
    }
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

#[derive(Template)]
#[template(path = "adminconsent.html")]
struct AdminConsentPage<'a> {
    tenant: &'a str,
    request: &'a str,
    app_name: &'a str,
    permissions: Vec<(String, &'static str)>,
    error: Option<&'a str>,
}

/// A checked admin-consent request (`client_id`, `scope`, `redirect_uri`, `state`).
struct AdminConsentRequest {
    app: crate::directory::App,
    authority: Authority,
    redirect_uri: String,
    scope: String,
    scopes: Vec<String>,
    state: Option<String>,
}

/// Checks an admin-consent request, or answers Microsoft's error page. The admin-consent endpoint
/// takes a tenant or `organizations` as `{tenant}`, never `common`
/// (<https://learn.microsoft.com/entra/identity-platform/v2-admin-consent>).
#[allow(clippy::result_large_err)] // the error is the answer itself, built once per request
fn admin_consent_request(
    world: &Inner,
    tenant: &str,
    q: &HashMap<String, String>,
) -> Result<AdminConsentRequest, Response> {
    let authority = match Authority::parse(&world.directory, tenant) {
        None => {
            return Err(Aadsts::new("invalid_tenant", 90002, format!("Tenant '{tenant}' not found.")).page());
        }
        Some(Authority::Common | Authority::Consumers) => {
            return Err(Aadsts::new("invalid_request", 90130, "Admin consent is not supported on the /common or /consumers endpoints. Use /organizations or a tenant.").page());
        }
        Some(a) => a,
    };
    let app = q.get("client_id").and_then(|id| world.directory.app(id)).cloned().ok_or_else(|| {
        Aadsts::new("unauthorized_client", 700016, "Application was not found in the directory.").page()
    })?;
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return Err(Aadsts::new("invalid_request", 50011, "The redirect URI specified in the request does not match the redirect URIs configured for the application.").page());
    }
    let state = q.get("state").cloned();
    let scope = q.get("scope").cloned().unwrap_or_default();
    let scopes = scopes::parse(&scope).map_err(|bad| {
        Aadsts::new(
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid: '{bad}'."),
        )
        .redirect(&redirect_uri, state.as_deref())
    })?;
    Ok(AdminConsentRequest { app, authority, redirect_uri, scope, scopes, state })
}

fn admin_consent_page(tenant: &str, request: &str, r: &AdminConsentRequest, error: Option<&str>) -> Response {
    let permissions = r.scopes.iter().map(|s| (s.clone(), scopes::describe(s))).collect();
    render(&AdminConsentPage { tenant, request, app_name: &r.app.name, permissions, error }, StatusCode::OK)
}

/// `GET /{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state`: an administrator grants
/// the app's permissions for their whole organization.
pub async fn admin_consent(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let world = emu.world.lock();
    match admin_consent_request(&world, &tenant, &q) {
        Ok(r) => admin_consent_page(&tenant, &serde_json::to_string(&q).unwrap_or_default(), &r, None),
        Err(page) => page,
    }
}

#[derive(Debug, Deserialize)]
pub struct AdminConsentForm {
    request: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    decision: String,
}

pub async fn admin_consent_decision(
    State(emu): State<Arc<Emulator>>,
    Path(tenant_path): Path<String>,
    Form(form): Form<AdminConsentForm>,
) -> Response {
    let Ok(q) = serde_json::from_str::<HashMap<String, String>>(&form.request) else {
        return expired_flow();
    };
    let mut world = emu.world.lock();
    let r = match admin_consent_request(&world, &tenant_path, &q) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let back = |pairs: &[(&str, &str)]| {
        let Ok(mut url) = url::Url::parse(&r.redirect_uri) else {
            return expired_flow();
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("admin_consent", "True");
            q.extend_pairs(pairs);
            if let Some(state) = &r.state {
                q.append_pair("state", state);
            }
        }
        found(url.as_str())
    };
    if form.decision != "accept" {
        // As Microsoft documents it, a declined admin consent comes back as consent_required with
        // AADSTS65004.
        let e = Aadsts::new("consent_required", 65004, "The administrator declined to consent to access the app.");
        return back(&[("error", e.error), ("error_description", &e.description())]);
    }
    // Only an administrator of the tenant in question may consent for it.
    let admin = world
        .directory
        .user_by_email(&form.email)
        .filter(|u| u.password.as_deref().unwrap_or("") == form.password)
        .cloned();
    let refusal = match &admin {
        None => Some("AADSTS50126: Your account or password is incorrect."),
        Some(u) if !u.admin => {
            Some("AADSTS90093: This account is not an administrator of its organization and cannot consent for it.")
        }
        Some(u)
            if r.authority.admits(world.directory.tenant_of(u)).is_err() || world.directory.tenant_of(u).personal =>
        {
            Some("AADSTS50020: This account is not from the organization this consent is for.")
        }
        Some(_) => None,
    };
    if let Some(message) = refusal {
        return admin_consent_page(&tenant_path, &form.request, &r, Some(message));
    }
    let Some(admin) = admin else {
        return expired_flow();
    };
    let tenant_id = world.directory.tenant_of(&admin).id;
    let granted: Vec<String> = scopes::graph(&r.scopes).iter().map(|s| (*s).to_owned()).collect();
    world.admin_consents.entry((tenant_id, r.app.client_id)).or_default().extend(granted);
    back(&[("tenant", &tenant_id.to_string()), ("scope", &r.scope)])
}
