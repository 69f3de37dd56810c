//! What the agent sees beside a thread, so that the customer never repeats themselves: who
//! they are on every channel, the cart they left anywhere, their latest orders, their points
//! and their conversations on other channels.

use omnihub_domain::conversations::Conversation;
use omnihub_domain::orders::Cart;
use omnihub_store::{ConversationFilter, OrderFilter, Page};

use crate::customers::name_of;
use crate::names::Names;
use crate::orders::status_class;
use crate::page::PageError;
use crate::{Admin, show};

/// How many of the customer's latest orders and other conversations are shown.
const LATEST: i64 = 5;

pub struct OrderView {
    pub id: String,
    pub number: String,
    pub placed: String,
    pub total: String,
    pub status: &'static str,
    pub class: &'static str,
}

pub struct CartView {
    pub channel: String,
    pub total: String,
    pub lines: Vec<String>,
}

pub struct OtherConversation {
    pub id: String,
    pub channel: &'static str,
    pub status: &'static str,
}

pub struct Context {
    pub customer_id: String,
    pub name: String,
    pub identities: Vec<String>,
    /// The e-mail a web chat visitor typed: unverified, for the agent to confirm.
    pub claimed_email: Option<String>,
    /// A phone number shared in the chat (a Viber contact card): unverified too.
    pub claimed_phone: Option<String>,
    pub points: i64,
    pub cart: Option<CartView>,
    pub orders: Vec<OrderView>,
    pub elsewhere: Vec<OtherConversation>,
}

fn first(limit: i64) -> Page {
    Page { after: None, limit }
}

fn cart_view(cart: &Cart, names: &Names) -> CartView {
    CartView {
        channel: names.channel(&cart.channel_id),
        total: show::money(&cart.totals.total),
        lines: cart
            .lines
            .iter()
            .map(|l| format!("{} × {}", l.quantity, l.sku))
            .collect(),
    }
}

async fn orders(admin: &Admin, customer_id: &str) -> Result<Vec<OrderView>, PageError> {
    let filter = OrderFilter {
        customer_id: Some(customer_id.to_owned()),
        ..OrderFilter::default()
    };
    let (orders, _) = admin.store.orders(&filter, &first(LATEST)).await?;
    Ok(orders
        .iter()
        .map(|o| OrderView {
            id: o.id.clone(),
            number: o.number.clone(),
            placed: show::when(o.created_at),
            total: show::money(&o.totals.total),
            status: show::status(o.status),
            class: status_class(o.status),
        })
        .collect())
}

/// The customer's conversations in other inboxes.
async fn elsewhere(admin: &Admin, shown: &Conversation) -> Result<Vec<OtherConversation>, PageError> {
    let filter = ConversationFilter {
        customer_id: Some(shown.customer_id.clone()),
        ..ConversationFilter::default()
    };
    let (conversations, _) = admin.store.conversations(&filter, &first(LATEST + 1)).await?;
    Ok(conversations
        .iter()
        .filter(|c| c.id != shown.id)
        .take(LATEST as usize)
        .map(|c| OtherConversation {
            id: c.id.clone(),
            channel: c.inbox_kind.as_str(),
            status: c.status.as_str(),
        })
        .collect())
}

pub async fn context(admin: &Admin, conversation: &Conversation, names: &Names) -> Result<Context, PageError> {
    let customer_id = conversation.customer_id.as_str();
    let customer = admin.store.customer(customer_id).await?;
    let standing = admin.store.loyalty_standing(customer_id).await?;
    let cart = match admin.store.customer_cart(customer_id).await {
        Ok(cart) => Some(cart_view(&admin.store.priced_cart(cart).await?, names)),
        Err(omnihub_store::Error::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    Ok(Context {
        customer_id: customer_id.to_owned(),
        name: name_of(&customer),
        identities: customer
            .identities
            .iter()
            .map(|i| format!("{}: {}", i.kind.as_str(), i.value))
            .collect(),
        claimed_email: conversation.claimed_email.clone(),
        claimed_phone: conversation.claimed_phone.clone(),
        points: standing.balance,
        cart,
        orders: orders(admin, customer_id).await?,
        elsewhere: elsewhere(admin, conversation).await?,
    })
}
