//! The accounts of the people who sign in, the owner's alone: opened, deactivated, and given a
//! new password when someone has forgotten theirs.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use omnihub_domain::users::{Access, Area, Role, UserDraft};

use super::{ShownOnce, answer, settings_page};
use crate::Admin;
use crate::forms::{Fields, field, given};
use crate::names::Names;
use crate::orders::Choice;
use crate::page::{Feedback, PageError};
use crate::session::Staff;

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/settings/users", post(create_user))
        .route("/admin/settings/users/{id}/deactivate", post(deactivate_user))
        .route("/admin/settings/users/{id}/password", post(set_password))
}

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub store: String,
    pub active: bool,
    pub is_me: bool,
    /// The name of the form that sets this account's password.
    pub password_form: String,
}

pub struct People {
    pub users: Vec<UserRow>,
    pub roles: Vec<Choice>,
    pub stores: Vec<Choice>,
}

pub async fn view(admin: &Admin, staff: &Staff, names: &Names, feedback: &Feedback) -> Result<People, PageError> {
    let chosen_role = feedback.value("user", "role");
    let chosen_store = feedback.value("user", "location_id");
    Ok(People {
        users: admin
            .store
            .users()
            .await?
            .iter()
            .map(|u| UserRow {
                id: u.id.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                role: u.role.label(),
                store: u.location_id.as_deref().map(|l| names.location(l)).unwrap_or_default(),
                active: u.active,
                is_me: u.id == staff.user.id,
                password_form: format!("password:{}", u.id),
            })
            .collect(),
        roles: Role::ALL
            .iter()
            .map(|r| Choice::new(r.as_str(), r.label(), Some(chosen_role)))
            .collect(),
        stores: names
            .stores()
            .map(|l| Choice::new(&l.id, &l.draft.name, Some(chosen_store)))
            .collect(),
    })
}

/// The password as typed: spaces count.
fn password(fields: &Fields) -> &str {
    fields
        .iter()
        .find(|(k, _)| k == "password")
        .map_or("", |(_, v)| v.as_str())
}

/// A password is never shown again, not even after a mistake.
fn without_password(fields: &Fields) -> Fields {
    fields.iter().filter(|(k, _)| k != "password").cloned().collect()
}

async fn refuse_own_account(
    admin: &Admin,
    staff: &Staff,
    form: &str,
    field: &str,
    message: &str,
) -> Result<Response, PageError> {
    let feedback = Feedback::invalid(form, field, message, Vec::new());
    settings_page(admin, staff, feedback, ShownOnce::default(), None).await
}

async fn create_user(
    State(admin): State<Admin>,
    staff: Staff,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Staff, Access::Write)?;
    let values = without_password(&fields);
    let Some(role) = Role::parse(field(&fields, "role")) else {
        let feedback = Feedback::invalid("user", "role", "choose a role", values);
        return settings_page(&admin, &staff, feedback, ShownOnce::default(), None).await;
    };
    let draft = UserDraft {
        email: field(&fields, "email").to_owned(),
        name: field(&fields, "name").to_owned(),
        role,
        location_id: given(&fields, "location_id").filter(|_| role.needs_location()),
    };
    let outcome = admin.store.create_user(draft, password(&fields)).await.map(drop);
    answer(&admin, &staff, "user", outcome, values, "user").await
}

async fn deactivate_user(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    staff.require(Area::Staff, Access::Write)?;
    if id == staff.user.id {
        return refuse_own_account(&admin, &staff, "users", "", "you cannot deactivate your own account").await;
    }
    let outcome = admin.store.deactivate_user(&id).await.map(drop);
    answer(&admin, &staff, "users", outcome, Vec::new(), "deactivated").await
}

/// Sets a new password for someone who has forgotten theirs; they are signed out everywhere
/// and sign in with the new one, which the owner tells them.
async fn set_password(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Staff, Access::Write)?;
    let form = format!("password:{id}");
    if id == staff.user.id {
        let message = "this sets other people's passwords, not your own";
        return refuse_own_account(&admin, &staff, "users", "", message).await;
    }
    let outcome = admin.store.set_password(&id, password(&fields)).await.map(drop);
    answer(&admin, &staff, &form, outcome, Vec::new(), "password").await
}
