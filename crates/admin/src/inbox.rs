//! The inbox, where agents spend their day: the conversations of every messaging channel,
//! filtered by inbox, status and assignee, with what is still unread; the thread of the one
//! chosen with the forms to reply, add a note, assign and resolve; and the customer's commerce
//! context beside it. Replies go out through the store's one reply path, as the API's do.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use omnihub_domain::conversations::{
    Conversation, ConversationStatus, Direction, Message, MessageStatus, Reply, ReplyDraft, SenderKind,
    Template as MessageTemplate, check_reply, reply_window,
};
use omnihub_domain::users::{Access, Area};
use omnihub_store::{ConversationFilter, Page, User};
use serde::Deserialize;

use crate::forms::{Fields, chosen, field, given};
use crate::names::Names;
use crate::orders::Choice;
use crate::page::{Feedback, Layout, PageError, Query, done, render_with, status_of};
use crate::session::Staff;
use crate::{Admin, show};

mod context;

use context::{Context, context};

/// How many conversations the list shows: the newest first.
const LISTED: i64 = 50;
/// Inboxes and canned replies a merchant has: a handful to a few hundred.
const ALL: Page = Page {
    after: None,
    limit: 500,
};

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/inbox", get(inbox))
        .route("/admin/inbox/{id}/{action}", post(act))
}

/// The list's filters, the conversation shown, and a canned reply to put in the reply box.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxQuery {
    inbox: Option<String>,
    status: Option<String>,
    /// `me`, `unassigned`, or anyone when not given.
    assignee: Option<String>,
    /// The conversation shown in the middle.
    c: Option<String>,
    canned: Option<String>,
    done: Option<String>,
}

impl InboxQuery {
    fn status(&self) -> String {
        chosen(&self.status).unwrap_or_else(|| "open".to_owned())
    }

    /// The filters given, to keep them across links, forms and actions.
    fn kept(&self) -> Vec<(&'static str, String)> {
        [
            ("inbox", &self.inbox),
            ("status", &self.status),
            ("assignee", &self.assignee),
        ]
        .into_iter()
        .filter_map(|(key, value)| chosen(value).map(|v| (key, v)))
        .collect()
    }

    fn filters(&self) -> String {
        serde_urlencoded::to_string(self.kept()).unwrap_or_default()
    }

    /// The inbox with these filters, showing conversation `id`.
    fn showing(&self, id: &str) -> String {
        let mut pairs = self.kept();
        pairs.push(("c", id.to_owned()));
        format!(
            "/admin/inbox?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    }

    fn filter(&self, staff: &Staff) -> ConversationFilter {
        let assignee = chosen(&self.assignee);
        ConversationFilter {
            status: Some(self.status()).filter(|s| s != "all"),
            inbox_id: chosen(&self.inbox),
            assignee_id: (assignee.as_deref() == Some("me")).then(|| staff.user.id.clone()),
            unassigned: assignee.as_deref() == Some("unassigned"),
            ..ConversationFilter::default()
        }
    }
}

pub struct ConversationRow {
    pub href: String,
    pub channel: &'static str,
    pub customer: String,
    pub status: &'static str,
    pub assignee: Option<String>,
    pub unread: i64,
    pub last: String,
    pub selected: bool,
}

pub struct MessageView {
    pub from_customer: bool,
    pub who: String,
    pub text: String,
    pub when: String,
    pub private: bool,
    /// How far an outgoing message got (`sent`, `failed` …), with why it failed.
    pub status: Option<&'static str>,
    pub error: Option<String>,
}

/// The conversation in the middle pane, with what may be done to it.
pub struct Thread {
    pub id: String,
    pub inbox: String,
    pub channel: &'static str,
    pub status: &'static str,
    pub resolved: bool,
    pub assignee: Option<String>,
    pub messages: Vec<MessageView>,
    pub may_act: bool,
    /// The reply window takes free text; else `templates` tells whether a template may go.
    pub free_text: bool,
    pub templates: bool,
    /// What the reply box holds: what was typed before an error, or a canned reply.
    pub draft: String,
    pub canned: Vec<Choice>,
    pub people: Vec<Choice>,
    /// The list's filters, as the query of every form's action: they stay after it.
    pub address: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    layout: Layout,
    inboxes: Vec<Choice>,
    statuses: Vec<Choice>,
    assignees: Vec<Choice>,
    /// The filters as hidden fields of forms that read the page again.
    kept: Vec<(&'static str, String)>,
    conversations: Vec<ConversationRow>,
    unread: i64,
    thread: Option<Thread>,
    context: Option<Context>,
    feedback: Feedback,
}

/// The people who answer customers, to assign conversations to and to name senders.
struct People(Vec<User>);

impl People {
    async fn load(admin: &Admin) -> Result<People, omnihub_store::Error> {
        let users = admin.store.users().await?;
        Ok(People(
            users
                .into_iter()
                .filter(|u| u.active && u.role.may_change(Area::Inbox))
                .collect(),
        ))
    }

    /// A person's name; an id of someone else (an API key) as it is.
    fn name(&self, id: &str) -> String {
        self.0
            .iter()
            .find(|u| u.id == id)
            .map_or_else(|| id.to_owned(), |u| u.name.clone())
    }

    fn has(&self, id: &str) -> bool {
        self.0.iter().any(|u| u.id == id)
    }
}

fn message_view(message: &Message, people: &People) -> MessageView {
    let who = match (message.sender_kind, &message.sender_id) {
        (SenderKind::Customer, _) => "Customer".to_owned(),
        (SenderKind::Bot, _) => "Bot".to_owned(),
        (SenderKind::Agent, Some(id)) => people.name(id),
        (SenderKind::Agent, None) => "Agent".to_owned(),
    };
    let text = match (&message.text, &message.template) {
        (Some(text), _) => text.clone(),
        (None, Some(template)) => format!("Template {} ({})", template.name, template.params.join(", ")),
        (None, None) => String::new(),
    };
    let outgoing = message.direction == Direction::Out;
    MessageView {
        from_customer: !outgoing,
        who,
        text,
        when: show::when(message.created_at),
        private: message.private,
        status: message.status.filter(|_| outgoing).map(|s| s.as_str()),
        error: message.error.clone(),
    }
}

/// Customer messages since the last reply, per conversation of the list.
async fn unread(admin: &Admin, listed: &[Conversation]) -> Result<Vec<(String, i64)>, PageError> {
    // The list is newest first: its ids run from the last to the first.
    match (listed.last(), listed.first()) {
        (Some(oldest), Some(newest)) => Ok(admin.store.unread_counts(&oldest.id, &newest.id).await?),
        _ => Ok(Vec::new()),
    }
}

async fn row(
    admin: &Admin,
    conversation: &Conversation,
    query: &InboxQuery,
    unread: &[(String, i64)],
    people: &People,
) -> Result<ConversationRow, PageError> {
    let customer = admin.store.customer(&conversation.customer_id).await?;
    let id = conversation.id.as_str();
    Ok(ConversationRow {
        href: query.showing(id),
        channel: conversation.inbox_kind.as_str(),
        customer: crate::customers::name_of(&customer),
        status: conversation.status.as_str(),
        assignee: conversation.assignee_id.as_deref().map(|a| people.name(a)),
        unread: unread.iter().find(|(c, _)| c == id).map_or(0, |(_, n)| *n),
        last: conversation.last_message_at.map(show::when).unwrap_or_default(),
        selected: query.c.as_deref() == Some(id),
    })
}

/// The reply box's text: typed before an error, or the canned reply asked for.
async fn draft(admin: &Admin, query: &InboxQuery, feedback: &Feedback) -> Result<String, PageError> {
    let typed = feedback.value("reply", "text");
    if !typed.is_empty() {
        return Ok(typed.to_owned());
    }
    let Some(code) = chosen(&query.canned) else {
        return Ok(String::new());
    };
    match admin.store.canned_text(&code).await {
        Ok(text) => Ok(text),
        Err(omnihub_store::Error::NotFound(_)) => Ok(String::new()),
        Err(error) => Err(error.into()),
    }
}

async fn thread(
    admin: &Admin,
    staff: &Staff,
    conversation: &Conversation,
    query: &InboxQuery,
    people: &People,
    feedback: &Feedback,
) -> Result<Thread, PageError> {
    let messages = admin.store.conversation_messages(&conversation.id).await?;
    let inbox = admin.store.inbox(&conversation.inbox_id).await?;
    let window = reply_window(inbox.kind, conversation.last_customer_message_at, admin.store.now());
    let (canned, _) = admin.store.canned_replies(&ALL).await?;
    let mut choices = vec![Choice::new("", "Nobody", None)];
    choices.extend(
        people
            .0
            .iter()
            .map(|u| Choice::new(&u.id, &u.name, conversation.assignee_id.as_deref())),
    );
    Ok(Thread {
        id: conversation.id.clone(),
        inbox: inbox.name,
        channel: conversation.inbox_kind.as_str(),
        status: conversation.status.as_str(),
        resolved: conversation.status == ConversationStatus::Resolved,
        assignee: conversation.assignee_id.as_deref().map(|a| people.name(a)),
        messages: messages.iter().map(|m| message_view(m, people)).collect(),
        may_act: staff.may_change(Area::Inbox),
        free_text: check_reply(inbox.kind, window, false).is_ok(),
        templates: check_reply(inbox.kind, window, true).is_ok(),
        draft: draft(admin, query, feedback).await?,
        canned: canned
            .iter()
            .map(|c| Choice::new(&c.short_code, format!("{}: {}", c.short_code, c.text), None))
            .collect(),
        people: choices,
        address: query.filters(),
    })
}

fn filter_choices(query: &InboxQuery, inboxes: &[omnihub_domain::conversations::Inbox]) -> [Vec<Choice>; 3] {
    let inbox = chosen(&query.inbox);
    let mut inbox_choices = vec![Choice::new("", "Every inbox", inbox.as_deref())];
    inbox_choices.extend(
        inboxes
            .iter()
            .map(|i| Choice::new(&i.id, format!("{} ({})", i.name, i.kind.as_str()), inbox.as_deref())),
    );
    let status = query.status();
    let statuses = ["open", "pending", "resolved", "all"]
        .into_iter()
        .map(|s| Choice::new(s, s, Some(status.as_str())))
        .collect();
    let assignee = chosen(&query.assignee);
    let assignees = [("", "Anyone"), ("me", "Me"), ("unassigned", "Nobody yet")]
        .into_iter()
        .map(|(value, label)| Choice::new(value, label, Some(assignee.as_deref().unwrap_or(""))))
        .collect();
    [inbox_choices, statuses, assignees]
}

async fn inbox_page(
    admin: &Admin,
    staff: &Staff,
    query: &InboxQuery,
    feedback: Feedback,
) -> Result<Response, PageError> {
    let listing = Page {
        after: None,
        limit: LISTED,
    };
    let (listed, _) = admin.store.conversations(&query.filter(staff), &listing).await?;
    // Without one chosen, the newest conversation is shown.
    let query = &InboxQuery {
        c: chosen(&query.c).or_else(|| listed.first().map(|c| c.id.clone())),
        ..query.clone()
    };
    let people = People::load(admin).await?;
    let unread = unread(admin, &listed).await?;
    let mut conversations = Vec::with_capacity(listed.len());
    for conversation in &listed {
        conversations.push(row(admin, conversation, query, &unread, &people).await?);
    }
    let (thread, context) = match &query.c {
        Some(id) => {
            let conversation = admin.store.conversation(id).await?;
            let names = Names::load(&admin.store).await?;
            let shown = thread(admin, staff, &conversation, query, &people, &feedback).await?;
            (Some(shown), Some(context(admin, &conversation, &names).await?))
        }
        None => (None, None),
    };
    let (inboxes, _) = admin.store.inboxes(&ALL).await?;
    let [inboxes, statuses, assignees] = filter_choices(query, &inboxes);
    let live_from = query
        .c
        .as_deref()
        .map_or_else(|| "/admin/inbox".to_owned(), |c| query.showing(c));
    let page = InboxPage {
        layout: Layout::new(staff, Area::Inbox, "Inbox")
            .live("inbox")
            .live_from(live_from)
            .done(query.done.as_deref()),
        inboxes,
        statuses,
        assignees,
        kept: query.kept(),
        unread: conversations.iter().map(|c| c.unread).sum(),
        conversations,
        thread,
        context,
        feedback,
    };
    Ok(render_with(status_of(&page.feedback), &page))
}

async fn inbox(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<InboxQuery>,
) -> Result<Response, PageError> {
    staff.require(Area::Inbox, Access::Read)?;
    inbox_page(&admin, &staff, &query, Feedback::none()).await
}

// ───────────────────────────── actions ─────────────────────────────

/// An action on conversation `id` (`reply`, `note`, `assign`, `status`): back to it with a
/// confirmation, or the page again with what went wrong next to the action's form.
async fn act(
    State(admin): State<Admin>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Query(query): Query<InboxQuery>,
    Form(fields): Form<Fields>,
) -> Result<Response, PageError> {
    staff.require(Area::Inbox, Access::Write)?;
    let result = match action.as_str() {
        "reply" => write(&admin, &staff, &id, reply_of(&fields)).await,
        "note" => write(&admin, &staff, &id, note_of(&fields)).await,
        "assign" => assign(&admin, &staff, &id, &fields).await,
        "status" => set_status(&admin, &id, &fields).await,
        _ => return Err(PageError::NotFound("action")),
    };
    let feedback = match result {
        Ok(code) => return Ok(done(&query.showing(&id), code)),
        // Outside the window only a template goes, and the template picker is what is shown.
        Err(omnihub_store::Error::WindowClosed(message)) => Feedback::invalid(action, "template", &message, fields),
        Err(error) => Feedback::from_error(action, error, fields)?,
    };
    let query = InboxQuery { c: Some(id), ..query };
    inbox_page(&admin, &staff, &query, feedback).await
}

/// The reply a form asks for: a template when the template picker was sent, else the text.
fn reply_of(fields: &Fields) -> Result<Reply, omnihub_store::Error> {
    let draft = if fields.iter().any(|(name, _)| name == "template") {
        let template = MessageTemplate {
            name: field(fields, "template").to_owned(),
            language: given(fields, "language").unwrap_or_else(|| "en_US".to_owned()),
            params: field(fields, "params")
                .lines()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        ReplyDraft {
            template: Some(template),
            ..ReplyDraft::default()
        }
    } else {
        ReplyDraft {
            text: Some(field(fields, "text").to_owned()),
            ..ReplyDraft::default()
        }
    };
    Ok(draft.validate()?)
}

/// What the note form wrote.
fn note_of(fields: &Fields) -> Result<Reply, omnihub_store::Error> {
    let draft = ReplyDraft {
        note: Some(field(fields, "note").to_owned()),
        ..ReplyDraft::default()
    };
    Ok(draft.validate()?)
}

/// Writes a reply or a note into the conversation through the one path of replies, the API's.
async fn write(
    admin: &Admin,
    staff: &Staff,
    id: &str,
    written: Result<Reply, omnihub_store::Error>,
) -> Result<&'static str, omnihub_store::Error> {
    let sent = admin
        .store
        .send_reply(id, written?, &staff.user.id, admin.courier.as_ref())
        .await?;
    Ok(match (sent.private, sent.status) {
        (true, _) => "noted",
        (false, Some(MessageStatus::Failed)) => "reply_failed",
        (false, _) => "replied",
    })
}

/// Changes the conversation from what it is now.
async fn change(
    admin: &Admin,
    id: &str,
    change: impl FnOnce(&mut omnihub_domain::conversations::ConversationDraft),
) -> Result<Conversation, omnihub_store::Error> {
    let current = admin.store.conversation(id).await?;
    let mut draft = current.to_draft();
    change(&mut draft);
    admin.store.update_conversation(id, draft, current.version).await
}

/// Gives the conversation to `me`, to someone who answers customers, or to nobody.
async fn assign(admin: &Admin, staff: &Staff, id: &str, fields: &Fields) -> Result<&'static str, omnihub_store::Error> {
    let assignee = match field(fields, "assignee") {
        "me" => Some(staff.user.id.clone()),
        "" => None,
        other => Some(other.to_owned()),
    };
    let people = People::load(admin).await?;
    if assignee.as_deref().is_some_and(|someone| !people.has(someone)) {
        let invalid = omnihub_domain::Invalid::one("assignee", "invalid", "choose someone who answers customers");
        return Err(invalid.into());
    }
    change(admin, id, |draft| draft.assignee_id = assignee).await?;
    Ok("assigned")
}

/// Resolves, reopens, or sets the conversation pending.
async fn set_status(admin: &Admin, id: &str, fields: &Fields) -> Result<&'static str, omnihub_store::Error> {
    let Some(status) = ConversationStatus::parse(field(fields, "status")) else {
        let invalid = omnihub_domain::Invalid::one("status", "invalid", "choose open, pending or resolved");
        return Err(invalid.into());
    };
    change(admin, id, |draft| draft.status = status).await?;
    Ok(match status {
        ConversationStatus::Open => "reopened",
        ConversationStatus::Pending => "pending",
        ConversationStatus::Resolved => "resolved",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::tests::form;

    #[test]
    fn the_form_sent_decides_between_text_and_template() {
        assert_eq!(
            reply_of(&form(&[("text", " Hello ")])).ok(),
            Some(Reply::Text("Hello".into()))
        );
        let template = reply_of(&form(&[("template", "order_update"), ("params", "Ann\n#1001")])).ok();
        assert_eq!(
            template,
            Some(Reply::Template(MessageTemplate {
                name: "order_update".into(),
                language: "en_US".into(),
                params: vec!["Ann".into(), "#1001".into()],
            }))
        );
        assert!(reply_of(&form(&[("text", "  ")])).is_err(), "an empty reply");
        assert!(reply_of(&form(&[("template", "")])).is_err(), "no template chosen");
    }

    #[test]
    fn filters_are_kept_in_addresses() {
        let query = InboxQuery {
            status: Some("pending".into()),
            assignee: Some("me".into()),
            inbox: Some(" ".into()),
            ..InboxQuery::default()
        };
        assert_eq!(
            query.showing("cnv_1"),
            "/admin/inbox?status=pending&assignee=me&c=cnv_1"
        );
    }
}
