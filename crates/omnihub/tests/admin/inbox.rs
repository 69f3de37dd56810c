//! The inbox's actions: agents reply through WhatsApp (a local fake of its API), add notes,
//! assign and resolve; store staff and forms without their CSRF token change nothing; bad
//! input is answered next to its field.

use omnihub_domain::conversations::{Conversation, ConversationStatus};
use omnihub_domain::users::Role;

use crate::client::Browser;
use crate::fake_provider::{ANN_WA_ID, Fake, whatsapp_accepted};
use crate::on_both_backends;
use crate::shop::Shop;

on_both_backends!(
    an_agent_replies_notes_assigns_and_resolves,
    store_staff_may_not_answer_and_nothing_changes,
    bad_input_is_answered_next_to_its_field_and_changes_nothing,
    forms_without_the_csrf_token_are_refused,
);

/// A fake WhatsApp, the shop's inbox on it, and Ann's first message there.
async fn ann_writes(shop: &Shop) -> (Fake, Conversation) {
    let fake = Fake::start(whatsapp_accepted("wamid.OUT1")).await;
    let inbox = shop.whatsapp_inbox(&fake.base).await;
    shop.whatsapp_message(&inbox, "wamid.IN1", "Is the blue one in stock?")
        .await;
    (fake, shop.conversation_in(&inbox).await)
}

async fn signed_in(shop: &Shop, role: Role) -> Browser {
    let mut browser = Browser::new(&shop.base);
    let (email, password) = shop.login(role);
    assert_eq!(browser.log_in(email, password).await.status, 303);
    browser
}

async fn message_count(shop: &Shop, conversation: &Conversation) -> usize {
    let messages = shop.store().conversation_messages(&conversation.id).await;
    messages.expect("messages").len()
}

async fn user_id(shop: &Shop, role: Role) -> String {
    let users = shop.store().users().await.expect("users");
    users.into_iter().find(|u| u.role == role).expect("a user").id
}

async fn an_agent_replies_notes_assigns_and_resolves(shop: Shop) {
    let (fake, conversation) = ann_writes(&shop).await;
    let id = conversation.id.as_str();
    let mut agent = signed_in(&shop, Role::Agent).await;
    let page = format!("/admin/inbox?c={id}");
    let inbox = agent.get(&page).await;
    assert_eq!(inbox.status, 200);
    assert!(
        inbox.has("Is the blue one in stock?") && inbox.has("1 unread"),
        "{}",
        inbox.body
    );
    assert!(
        inbox.has(&format!("phone: +{ANN_WA_ID}")),
        "Ann's identity beside the thread"
    );

    let replied = agent
        .submit(
            &page,
            &format!("/admin/inbox/{id}/reply"),
            &[("text", "Yes, in every size.")],
        )
        .await;
    assert_eq!(replied.status, 303, "{}", replied.body);
    assert_eq!(
        replied.location.as_deref(),
        Some(&*format!("/admin/inbox?c={id}&done=replied"))
    );
    let call = fake.last();
    assert_eq!(call.target, "/v20.0/106540352242922/messages");
    assert_eq!(call.body["to"], ANN_WA_ID);
    assert_eq!(call.body["text"]["body"], "Yes, in every size.");
    let after = agent.get(&format!("{page}&done=replied")).await;
    assert!(after.has("Reply sent.") && after.has("Yes, in every size."));
    assert!(!after.has("1 unread"), "answered is read");

    let noted = agent
        .submit(
            &page,
            &format!("/admin/inbox/{id}/note"),
            &[("note", "Offered the blue one.")],
        )
        .await;
    assert_eq!(noted.status, 303);
    let messages = shop.store().conversation_messages(id).await.expect("messages");
    let note = messages.last().expect("the note");
    assert!(note.private && note.text.as_deref() == Some("Offered the blue one."));
    assert_eq!(fake.seen().len(), 1, "a note never reaches the customer");

    let assigned = agent
        .submit(&page, &format!("/admin/inbox/{id}/assign"), &[("assignee", "me")])
        .await;
    assert_eq!(assigned.status, 303);
    let now = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(now.assignee_id, Some(user_id(&shop, Role::Agent).await));
    let mine = agent.get("/admin/inbox?assignee=me").await;
    assert!(mine.has(&format!("c={id}")), "the agent's own list has it");
    let nobody = agent.get("/admin/inbox?assignee=unassigned").await;
    assert!(nobody.has("No conversations."));

    let manager = user_id(&shop, Role::Manager).await;
    let handed = agent
        .submit(&page, &format!("/admin/inbox/{id}/assign"), &[("assignee", &manager)])
        .await;
    assert_eq!(handed.status, 303);
    let now = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(now.assignee_id.as_deref(), Some(manager.as_str()));

    let resolved = agent
        .submit(&page, &format!("/admin/inbox/{id}/status"), &[("status", "resolved")])
        .await;
    assert_eq!(resolved.status, 303);
    let now = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(now.status, ConversationStatus::Resolved);
    assert!(agent.get(&page).await.has("Reopen"));
    let reopened = agent
        .submit(&page, &format!("/admin/inbox/{id}/status"), &[("status", "open")])
        .await;
    assert_eq!(
        reopened.location.as_deref(),
        Some(&*format!("/admin/inbox?c={id}&done=reopened"))
    );
    let now = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(now.status, ConversationStatus::Open);
}

async fn store_staff_may_not_answer_and_nothing_changes(shop: Shop) {
    let (fake, conversation) = ann_writes(&shop).await;
    let id = conversation.id.as_str();
    let mut staff = signed_in(&shop, Role::StoreStaff).await;
    assert_eq!(staff.get(&format!("/admin/inbox?c={id}")).await.status, 403);
    let before = message_count(&shop, &conversation).await;
    let actions = [
        ("reply", ("text", "Hello from the store")),
        ("note", ("note", "A note")),
        ("assign", ("assignee", "me")),
        ("status", ("status", "resolved")),
    ];
    for (action, field) in actions {
        // The desk is theirs: its token is a valid one for their session.
        let refused = staff
            .submit("/admin/desk", &format!("/admin/inbox/{id}/{action}"), &[field])
            .await;
        assert_eq!(refused.status, 403, "{action}");
    }
    let after = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(after, conversation, "the conversation is as it was");
    assert_eq!(message_count(&shop, &conversation).await, before);
    assert!(fake.seen().is_empty(), "nothing reached WhatsApp");
}

async fn bad_input_is_answered_next_to_its_field_and_changes_nothing(shop: Shop) {
    let (fake, conversation) = ann_writes(&shop).await;
    let id = conversation.id.as_str();
    let mut agent = signed_in(&shop, Role::Agent).await;
    let page = format!("/admin/inbox?c={id}");
    let before = message_count(&shop, &conversation).await;

    let empty = agent
        .submit(&page, &format!("/admin/inbox/{id}/reply"), &[("text", "  ")])
        .await;
    assert_eq!(empty.status, 422);
    assert!(empty.has("id=\"reply-text-error\">must not be blank"), "{}", empty.body);
    assert!(empty.has("aria-invalid=\"true\""));
    let unknown = agent
        .submit(&page, "/admin/inbox/cnv_unknown/reply", &[("text", "Hello")])
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.has("The conversation was not found."));
    let nobody = agent
        .submit(
            &page,
            &format!("/admin/inbox/{id}/assign"),
            &[("assignee", "usr_stranger")],
        )
        .await;
    assert_eq!(nobody.status, 422);
    assert!(nobody.has("choose someone who answers customers"));

    // A day later WhatsApp's window has closed: the page offers templates, and a text is refused.
    shop.clock.advance_seconds(25 * 60 * 60);
    let mut agent = signed_in(&shop, Role::Agent).await;
    let closed = agent.get(&page).await;
    assert!(closed.has("id=\"reply-template\"") && !closed.has("id=\"reply-text\""));
    let text = agent
        .submit(&page, &format!("/admin/inbox/{id}/reply"), &[("text", "Still there?")])
        .await;
    assert_eq!(text.status, 422);
    assert!(
        text.has("id=\"reply-template-error\">the reply window is closed"),
        "{}",
        text.body
    );
    let no_template = agent
        .submit(
            &page,
            &format!("/admin/inbox/{id}/reply"),
            &[("template", ""), ("params", "")],
        )
        .await;
    assert_eq!(no_template.status, 422);
    assert!(no_template.has("id=\"reply-template-error\">must not be blank"));
    assert_eq!(
        message_count(&shop, &conversation).await,
        before,
        "nothing was recorded"
    );
    assert!(fake.seen().is_empty(), "nothing reached WhatsApp");

    let template = agent
        .submit(
            &page,
            &format!("/admin/inbox/{id}/reply"),
            &[
                ("template", "order_update"),
                ("language", "de"),
                ("params", "Ann\n#1001"),
            ],
        )
        .await;
    assert_eq!(template.status, 303, "{}", template.body);
    let sent = fake.last().body;
    assert_eq!(sent["template"]["name"], "order_update");
    assert_eq!(sent["template"]["language"]["code"], "de");
}

async fn forms_without_the_csrf_token_are_refused(shop: Shop) {
    let (fake, conversation) = ann_writes(&shop).await;
    let id = conversation.id.as_str();
    let mut agent = signed_in(&shop, Role::Agent).await;
    let refused = agent
        .post(&format!("/admin/inbox/{id}/reply"), &[("text", "Hello")])
        .await;
    assert_eq!(refused.status, 403);
    let forged = agent
        .post(
            &format!("/admin/inbox/{id}/status"),
            &[("_csrf", "forged"), ("status", "resolved")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let after = shop.store().conversation(id).await.expect("conversation");
    assert_eq!(after, conversation);
    assert!(fake.seen().is_empty());
}
