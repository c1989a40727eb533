//! The conversation that collects an Instagram account's @mentions (decision 0067): the
//! mentioner is not identified, so the counterpart is the account itself (its own id in the
//! customer's place, which no customer's Instagram-scoped id equals). The inbound worker
//! stores mentions there; the CRM sync asks no profile of it; the send worker refuses to
//! send from it.

use crate::ids::InstagramAccountId;
use crate::meta::{AccountRef, CustomerId, CustomerRef, InstagramUserId};

/// The chat's name in Bitrix24.
pub const MENTIONS_CHAT_NAME: &str = "Instagram mentions";

/// The mentions conversation's counterpart on `account`: the account itself.
pub fn mentions_customer(account: &InstagramAccountId) -> Option<CustomerRef> {
    let id = InstagramUserId::parse(account.as_str()).ok()?;
    let mut customer = CustomerRef::new(CustomerId::Instagram(id));
    customer.name = Some(MENTIONS_CHAT_NAME.to_owned());
    Some(customer)
}

/// Whether `customer` on `account` is the account's mentions conversation.
pub fn is_mentions_chat(account: &AccountRef, customer: &CustomerId) -> bool {
    matches!((account, customer), (AccountRef::Instagram(a), CustomerId::Instagram(c)) if a.as_str() == c.as_str())
}
