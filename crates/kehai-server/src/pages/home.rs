//! `/`: a member's spaces; visitors without a session go to the login page.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};

use super::{PageError, render, see_other};
use crate::{
    auth::Visitor,
    i18n::{Catalog, Lang},
    state::AppState,
};

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    t: &'a Catalog,
    csrf: String,
    spaces: Vec<(String, String)>,
}

pub async fn show(State(state): State<AppState>, Lang(lang): Lang, visitor: Option<Visitor>) -> Response {
    let t = state.catalogs.get(lang);
    let Some(visitor) = visitor else {
        return see_other("/login");
    };
    if let (true, Some(space)) = (visitor.is_guest(), visitor.session.space_id) {
        // A guest's only place is their space.
        return match state.store.space_by_id(space).await {
            Ok(Some(space)) => see_other(&format!("/s/{}", space.slug)),
            _ => see_other("/login"),
        };
    }
    match state.store.spaces_of(visitor.person_id()).await {
        Ok(spaces) => {
            let spaces = spaces.into_iter().map(|s| (s.slug.to_string(), s.name.as_str().to_owned())).collect();
            render(StatusCode::OK, &HomePage { t, csrf: visitor.cookie.csrf_token(), spaces })
        }
        Err(e) => {
            tracing::error!(error = %e, "could not list spaces");
            PageError::Internal.render(t)
        }
    }
}
