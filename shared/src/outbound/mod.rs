//! The outbound relay: operator replies (and public-API sends) to the customer, through the
//! WhatsApp Cloud API or the Instagram Send API. One name end to end: the `outbound.fifo`
//! queue, the outbound-worker function, this module.
//!
//! - [`intake`]: stores a reply encrypted and queues an [`OutboundJob`] ([`job`]); run by
//!   the bitrix-webhook function (operator replies) and the public API.
//! - [`worker`]: the [`OutboundWorker`], run by the outbound-worker function.
//!
//! For each [`OutboundJob`] the [`OutboundWorker`]:
//! 1. takes an idempotency record (scope `OUT`, per job), so a redelivered job never sends
//!    twice; a message whose provider id is already recorded is not sent again either;
//! 2. loads the conversation and the message (decrypted) and skips what must never go out
//!    (echoes of the business's own app, customer messages, deleted or failed messages);
//! 3. decrypts the channel's access token;
//! 4. applies the channel's window from the conversation's last inbound time
//!    ([`window`]): outside it the message is marked failed and the operator gets a note in
//!    the Bitrix24 chat explaining why (a `SyncAction::Status { Failed }` job);
//! 5. turns the content into sends ([`plan`]): Bitrix24 BB-code converted for the channel,
//!    long text split, files downloaded from Bitrix24 and uploaded to the Cloud API
//!    ([`files`]), templates as they were given;
//! 6. paces per business number and per recipient ([`crate::pacing`]) and sends, each send
//!    preceded by a recorded attempt whose tag it carries ([`attempt`], decision 0055) and
//!    followed by its provider id, recorded before anything else and retried in place (so
//!    Meta's statuses find the message and a retry finds it sent); a redelivery that finds
//!    an attempt without an outcome waits for Meta's status of that tag before it decides;
//! 7. marks the message `Sent` and queues a status job, so Bitrix24 shows the operator's
//!    message delivered; Meta's later `delivered`/`read` webhooks move it further
//!    (inbound worker).
//!
//! Errors ([`reasons`]): rate limits and outages are retried later through the queue with
//! growing delays ([`OutboundRetryPolicy`]), never in a loop; refusals are not retried, the message
//! is marked failed and the operator told the code and reason.

mod acknowledge;
pub mod attempt;
mod config;
pub mod files;
mod format;
mod handover;
pub mod intake;
pub mod job;
pub mod plan;
pub mod private_reply;
mod progress;
pub mod quote;
pub mod reasons;
pub mod window;
pub mod worker;

pub use config::{
    instagram_config, OutboundClients, OutboundConfig, OutboundConfigError, OutboundPacing,
    OutboundRetryPolicy, COEXISTENCE_MPS, DEFAULT_INSTAGRAM_BASE_URL, ENV_INSTAGRAM_BASE_URL,
    ENV_MAX_FILE_BYTES, ENV_WHATSAPP_MPS,
};
pub use files::{FetchedFile, FileError, FileFetcher};
pub use format::for_channel;
pub use intake::{
    Accepted, ApiMessage, OperatorFile, OperatorMessage, OutboundError, OutboundIntake,
};
pub use job::{OutboundJob, OUTBOUND_JOB_VERSION};
pub use progress::key as progress_key;
pub use progress::{ProgressError, SendProgress};
pub use worker::OutboundWorker;

/// What stops sends on `channel` now, from the account status Meta reported (decision
/// 0051): a ban or a restriction on replies stops every send, a restriction on
/// business-initiated messages only templates.
pub(crate) async fn blocked(
    scope: &crate::tenant::TenantScope,
    channel: &crate::tenant::ChannelRef,
    template: bool,
) -> Result<Option<crate::tenant::meta_account::SendBlock>, crate::tenant::TenantError> {
    use crate::tenant::meta_account::SendBlock;
    let Some(status) = scope.meta_account(channel).await? else {
        return Ok(None);
    };
    Ok(status
        .send_block(crate::clock::now_secs())
        .filter(|b| template || !matches!(b, SendBlock::BusinessInitiated(_))))
}
