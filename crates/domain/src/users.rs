//! The people who work in the admin app: their roles, what each role may see and do, and the
//! rules for signing in.

use serde::{Deserialize, Serialize};

use crate::validation::{Check, Invalid};

/// What a person does for the merchant; it decides what the admin app shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the business: everything, including staff accounts, API keys and webhook endpoints.
    Owner,
    /// Runs the shop day to day: everything but staff accounts, API keys and webhook endpoints.
    Manager,
    /// Answers customers: the inbox, and customers and orders to look things up.
    Agent,
    /// Works in one store: its pick-up desk and its stock.
    StoreStaff,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Manager, Role::Agent, Role::StoreStaff];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Agent => "agent",
            Role::StoreStaff => "store_staff",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// The name shown to people.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Manager => "Manager",
            Role::Agent => "Agent",
            Role::StoreStaff => "Store staff",
        }
    }

    /// Store staff belong to one store; nobody else is bound to a location.
    pub const fn needs_location(self) -> bool {
        matches!(self, Role::StoreStaff)
    }

    /// How far this role reaches into an area of the admin app.
    pub const fn access(self, area: Area) -> Access {
        use Access::{Nothing, Read, Write};
        match (self, area) {
            (Role::Owner, _) => Write,
            (Role::Manager, Area::Staff | Area::ApiKeys) => Nothing,
            (Role::Manager, _) => Write,
            (Role::Agent, Area::Inbox) => Write,
            (Role::Agent, Area::Orders | Area::Customers) => Read,
            (Role::Agent, _) => Nothing,
            (Role::StoreStaff, Area::PickupDesk) => Write,
            (Role::StoreStaff, Area::Inventory) => Read,
            (Role::StoreStaff, _) => Nothing,
        }
    }

    pub const fn may_see(self, area: Area) -> bool {
        !matches!(self.access(area), Access::Nothing)
    }

    pub const fn may_change(self, area: Area) -> bool {
        matches!(self.access(area), Access::Write)
    }

    /// The page a person lands on after signing in: where their day starts.
    pub const fn home(self) -> Area {
        match self {
            Role::Owner | Role::Manager => Area::Dashboard,
            Role::Agent => Area::Inbox,
            Role::StoreStaff => Area::PickupDesk,
        }
    }
}

/// A part of the admin app that a role may or may not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    Dashboard,
    Orders,
    PickupDesk,
    Inventory,
    Catalog,
    Customers,
    Inbox,
    /// Sales channels, locations and messaging inboxes.
    Settings,
    /// Staff accounts.
    Staff,
    /// What other systems reach the shop with: API keys and webhook endpoints.
    ApiKeys,
}

/// How far a role reaches into an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Nothing,
    Read,
    Write,
}

/// How long sign-in attempts are counted for: a counter's window opens with its first
/// attempt, and once over its limit attempts are refused unchecked until the window has passed.
pub const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;

/// What sign-in attempts are counted under, each with its own limit per window. Attempts are
/// counted before the password is checked, so parallel guesses cannot slip past the limit; a
/// successful one is taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCounter {
    /// One e-mail address from one client address: the owner mistyping, or a guesser.
    AccountFromAddress,
    /// Every address tried from one client: one guesser trying many accounts. Loose enough
    /// for an office behind one address.
    Address,
    /// One e-mail address from anywhere: guessers spread over many addresses. Loose enough
    /// that strangers cannot easily lock the person out.
    Account,
}

impl LoginCounter {
    pub const ALL: [LoginCounter; 3] = [
        LoginCounter::AccountFromAddress,
        LoginCounter::Address,
        LoginCounter::Account,
    ];

    /// Attempts allowed per window.
    pub const fn limit(self) -> i64 {
        match self {
            LoginCounter::AccountFromAddress => 5,
            LoginCounter::Address => 30,
            LoginCounter::Account => 50,
        }
    }

    /// The text this counter counts an attempt under (to be hashed: no address is kept in
    /// clear); the e-mail address as typed counts as it signs in.
    pub fn subject(self, email: &str, client: &str) -> String {
        let email = normalize_email(email);
        match self {
            LoginCounter::AccountFromAddress => format!("{email}\n{client}"),
            LoginCounter::Address => format!("address\n{client}"),
            LoginCounter::Account => format!("account\n{email}"),
        }
    }
}

/// When a counter of `attempts` (this one included) whose window opened at `window_start_ms`
/// refuses it: the seconds until its window has passed, at least one.
pub fn login_retry_after(counter: LoginCounter, attempts: i64, window_start_ms: i64, now_ms: i64) -> Option<i64> {
    (attempts > counter.limit()).then(|| ((window_start_ms + LOGIN_WINDOW_SECONDS * 1000 - now_ms) / 1000).max(1))
}

/// A signed-in session lasts a working day and a bit; then the person signs in again.
pub const SESSION_SECONDS: i64 = 12 * 60 * 60;

/// Long enough that guessing is hopeless with the login limit; no composition rules, which
/// only make people write passwords down.
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_CHARS: usize = 200;

/// What an owner gives to open an account for someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDraft {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The store of store staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

impl UserDraft {
    /// Checks the draft and answers it with the e-mail address in the form it is stored and
    /// matched in (trimmed, lower case).
    pub fn validate(&self, password: &str) -> Result<UserDraft, Invalid> {
        let mut check = Check::new();
        let email = normalize_email(&self.email);
        if !looks_like_email(&email) {
            check.fail("email", "invalid", "must be an e-mail address such as ann@example.com");
        }
        check.text("name", &self.name, 200);
        match (self.role.needs_location(), &self.location_id) {
            (true, None) => check.fail("location_id", "required", "store staff belong to a store"),
            (false, Some(_)) => check.fail("location_id", "invalid", "only store staff belong to a store"),
            _ => {}
        }
        check_password("password", password, &mut check);
        check.done()?;
        Ok(UserDraft {
            email,
            name: self.name.trim().to_owned(),
            ..self.clone()
        })
    }
}

/// E-mail addresses sign in however they are typed.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && email.len() <= 254
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

pub fn check_password(field: &str, password: &str, check: &mut Check) {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        check.fail(
            field,
            "too_short",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        );
    } else if chars > MAX_PASSWORD_CHARS {
        check.fail(
            field,
            "too_long",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(role: Role, location: Option<&str>) -> UserDraft {
        UserDraft {
            email: "  Ann@Example.COM ".into(),
            name: " Ann ".into(),
            role,
            location_id: location.map(str::to_owned),
        }
    }

    #[test]
    fn each_role_reaches_only_its_areas() {
        assert!(Role::Owner.may_change(Area::Staff));
        assert!(Role::Manager.may_change(Area::Inventory));
        assert!(!Role::Manager.may_see(Area::Staff));
        assert!(!Role::Manager.may_see(Area::ApiKeys));
        assert!(Role::Agent.may_see(Area::Orders));
        assert!(!Role::Agent.may_change(Area::Orders));
        assert!(!Role::Agent.may_see(Area::Inventory));
        assert!(Role::StoreStaff.may_change(Area::PickupDesk));
        assert!(Role::StoreStaff.may_see(Area::Inventory));
        assert!(!Role::StoreStaff.may_change(Area::Inventory));
        assert!(!Role::StoreStaff.may_see(Area::Orders));
        for role in Role::ALL {
            assert!(role.may_see(role.home()), "{role:?} lands where it may be");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn a_draft_is_normalised_and_store_staff_need_a_store() {
        let ok = draft(Role::Manager, None).validate("correct horse battery").unwrap();
        assert_eq!(ok.email, "ann@example.com");
        assert_eq!(ok.name, "Ann");
        assert!(
            draft(Role::StoreStaff, Some("loc_1"))
                .validate("correct horse battery")
                .is_ok()
        );
        let Invalid(errors) = draft(Role::StoreStaff, None).validate("short").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["location_id", "password"]);
        assert!(
            draft(Role::Agent, Some("loc_1"))
                .validate("correct horse battery")
                .is_err()
        );
    }

    #[test]
    fn login_counters_refuse_past_their_limit_until_the_window_passes() {
        let counter = LoginCounter::AccountFromAddress;
        assert_eq!(login_retry_after(counter, 5, 0, 1_000), None);
        assert_eq!(login_retry_after(counter, 6, 0, 0), Some(LOGIN_WINDOW_SECONDS));
        assert_eq!(login_retry_after(counter, 6, 0, 899_500), Some(1));
        assert!(LoginCounter::Address.limit() > counter.limit());
        assert_eq!(login_retry_after(LoginCounter::Address, 6, 0, 0), None);
        let subjects: std::collections::HashSet<_> = LoginCounter::ALL
            .iter()
            .map(|c| c.subject(" Ann@Example.com", "10.0.0.1"))
            .collect();
        assert_eq!(subjects.len(), 3, "each counter counts under its own subject");
        assert_eq!(
            counter.subject("ANN@example.com", "x"),
            counter.subject("ann@example.com ", "x")
        );
    }

    #[test]
    fn e_mail_addresses_are_checked() {
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a nn@example.com"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
        assert!(looks_like_email("ann.b+shop@example.co.uk"));
    }
}
