//! One planned part of an operator's or API message, sent: WhatsApp (files downloaded from
//! Bitrix24 and uploaded to the Cloud API first) or Instagram. A child of the send worker.

use super::{whatsapp_recipient, Context, OutboundWorker, PartResult};
use crate::conversation::StoredComment;
use crate::graph::{
    InstagramAttachmentType, InstagramContent, InstagramMessage, InstagramPrivateReply,
    InstagramTiming, MediaUpload, WhatsAppContent, WhatsAppMediaType, WhatsAppMessage,
    WhatsAppRecipient,
};
use crate::ids::PhoneNumberId;
use crate::meta::{CustomerId, Media};
use crate::outbound::attempt::Attempt;
use crate::outbound::files::{instagram_kind, mime_from_name, usable_mime, whatsapp_kind};
use crate::outbound::plan::Part;
use crate::outbound::private_reply::{self, CommentRoute};
use crate::outbound::reasons::{self, Disposition};
use crate::outbound::window::{self, Allowed};
use crate::tenant::{ChannelKind, Secret};

impl OutboundWorker {
    pub(super) async fn send_whatsapp(
        &self,
        cx: &Context<'_>,
        number: &PhoneNumberId,
        part: &Part,
        index: usize,
        prior: Option<&Attempt>,
    ) -> PartResult {
        let Some(to) = whatsapp_recipient(&cx.meta.customer) else {
            return PartResult::Stop(Disposition::Permanent(
                "the customer has no WhatsApp id to send to".into(),
            ));
        };
        let content = match part {
            Part::Text(body) => WhatsAppContent::Text {
                preview_url: body.contains("https://") || body.contains("http://"),
                body: body.clone(),
            },
            // Meta refuses these for BSUID recipients (131062): told without the call.
            Part::Template(t)
                if t.is_authentication() && matches!(to, WhatsAppRecipient::User(_)) =>
            {
                return PartResult::Stop(Disposition::Permanent(
                    reasons::authentication_template_to_bsuid(),
                ));
            }
            Part::Template(t) => WhatsAppContent::Template(t.clone()),
            Part::Media { media, caption } => {
                match self.whatsapp_media(number, &cx.token, media, caption).await {
                    Ok(c) => c,
                    Err(d) => return PartResult::Stop(d),
                }
            }
        };
        if let Err(wait) = self
            .pace(&cx.meta.account, cx.meta, false, cx.coexistence)
            .await
        {
            return PartResult::Stop(Disposition::Paced(wait));
        }
        // Recorded right before the call, and carried by it: Meta's statuses of this send
        // come back with its tag (decision 0055).
        let attempt = match self.begin_attempt(cx, index, prior).await {
            Ok(a) => a,
            Err(result) => return result,
        };
        let message = WhatsAppMessage {
            to,
            // The reply context goes on the first part only.
            reply_to: cx.message.reply_to.clone().filter(|_| index == 0),
            content,
            callback: Some(attempt.tag.clone()),
        };
        let graph = &self.clients.graph;
        // Meta sends marketing templates through the Marketing Messages API (decision 0050).
        let sent = if cx.marketing && matches!(part, Part::Template(_)) {
            graph
                .send_whatsapp_marketing(number, &message, &cx.token)
                .await
        } else {
            graph.send_whatsapp(number, &message, &cx.token).await
        };
        match sent {
            Ok(sent) => PartResult::Sent(
                sent.message_id().unwrap_or_default().to_owned(),
                Some(attempt),
            ),
            Err(e) => {
                log_graph_error(cx, &e);
                let disposition = reasons::of_graph(ChannelKind::WhatsApp, &e);
                self.failed_send(cx, &attempt, &e, disposition).await
            }
        }
    }

    /// Downloads the operator's file, uploads it to the Cloud API and returns the media
    /// message for it. A type WhatsApp does not take as image/audio/video/sticker (or too
    /// large for it) goes as a document.
    async fn whatsapp_media(
        &self,
        number: &PhoneNumberId,
        token: &Secret,
        media: &Media,
        caption: &Option<String>,
    ) -> Result<WhatsAppContent, Disposition> {
        let mut kind = whatsapp_kind(media.kind);
        if let Some(id) = media.media_id.as_ref().filter(|id| !id.is_empty()) {
            return Ok(WhatsAppContent::Media {
                kind,
                id: id.clone(),
                caption: caption.clone(),
                filename: media.filename.clone(),
            });
        }
        let Some(url) = media.url.as_deref() else {
            return Err(Disposition::Permanent(
                "the file has no address to download it from".into(),
            ));
        };
        let limit = self
            .config
            .max_file_bytes
            .min(WhatsAppMediaType::Document.max_bytes());
        let file = self
            .clients
            .files
            .fetch(url, limit)
            .await
            .map_err(|e| reasons::of_file(&e))?;
        let mime = usable_mime(media.mime_type.as_deref())
            .or_else(|| usable_mime(file.content_type.as_deref()))
            .or_else(|| {
                media
                    .filename
                    .as_deref()
                    .and_then(mime_from_name)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        if !kind.accepts(&mime) || file.bytes.len() > kind.max_bytes() {
            kind = WhatsAppMediaType::Document;
        }
        if file.bytes.len() > kind.max_bytes() {
            return Err(Disposition::Permanent(format!(
                "the file is larger than WhatsApp's {} MB limit",
                kind.max_bytes() / (1024 * 1024)
            )));
        }
        let filename = media
            .filename
            .clone()
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| format!("file.{}", mime.rsplit('/').next().unwrap_or("bin")));
        let upload = MediaUpload {
            bytes: file.bytes,
            mime_type: mime,
            filename: filename.clone(),
        };
        let id = self
            .clients
            .graph
            .upload_whatsapp_media(number, &upload, token)
            .await
            .map_err(|e| {
                tracing::warn!(kind = e.kind(), code = ?e.code(), "media upload failed");
                reasons::of_graph(ChannelKind::WhatsApp, &e)
            })?;
        Ok(WhatsAppContent::Media {
            kind,
            id,
            caption: caption.clone(),
            filename: Some(filename),
        })
    }

    pub(super) async fn send_instagram(
        &self,
        cx: &Context<'_>,
        part: &Part,
        index: usize,
        prior: Option<&Attempt>,
    ) -> PartResult {
        let CustomerId::Instagram(recipient) = &cx.meta.customer.id else {
            return PartResult::Stop(Disposition::Permanent(
                "the customer has no Instagram id to send to".into(),
            ));
        };
        let (content, media) = match part {
            Part::Text(t) => (InstagramContent::Text(t.clone()), false),
            Part::Media { media, .. } => {
                let Some(url) = media.url.clone() else {
                    return PartResult::Stop(Disposition::Permanent(
                        "the file has no address Instagram can fetch it from".into(),
                    ));
                };
                let kind = instagram_kind(media.kind);
                (
                    InstagramContent::Attachment { kind, url },
                    matches!(
                        kind,
                        InstagramAttachmentType::Audio | InstagramAttachmentType::Video
                    ),
                )
            }
            Part::Template(_) => {
                return PartResult::Stop(Disposition::Permanent(
                    window::NO_INSTAGRAM_TEMPLATES.into(),
                ))
            }
        };
        if let Err(wait) = self
            .pace(&cx.meta.account, cx.meta, media, cx.coexistence)
            .await
        {
            return PartResult::Stop(Disposition::Paced(wait));
        }
        if let CommentRoute::PrivateReply(comment) = &cx.comment {
            return self
                .send_private_reply(cx, comment, part, index, prior)
                .await;
        }
        let message = InstagramMessage {
            // The reply context goes on the first part only, as on WhatsApp; never one that
            // names a comment (decision 0062).
            reply_to: cx
                .message
                .reply_to
                .clone()
                .filter(|_| index == 0 && cx.comment != CommentRoute::DirectUnquoted),
            recipient: recipient.clone(),
            timing: match cx.timing {
                Allowed::Standard => InstagramTiming::Response,
                Allowed::InstagramHumanAgent => InstagramTiming::HumanAgent,
            },
            content,
        };
        // The Instagram Send API takes no tag of ours, but the record still tells a
        // redelivery that a send may have gone out (decision 0055).
        let attempt = match self.begin_attempt(cx, index, prior).await {
            Ok(a) => a,
            Err(result) => return result,
        };
        let client = self.clients.for_instagram(&cx.instagram_sender);
        match client
            .send_instagram(&cx.instagram_sender, &message, &cx.token)
            .await
        {
            Ok(sent) => PartResult::Sent(sent.message_id, Some(attempt)),
            Err(e) => {
                log_graph_error(cx, &e);
                let disposition = reasons::of_graph(ChannelKind::Instagram, &e);
                self.failed_send(cx, &attempt, &e, disposition).await
            }
        }
    }
}

impl OutboundWorker {
    /// The one private reply to an Instagram comment (decision 0062): a single text, which
    /// [`crate::outbound::private_reply::route`] checked. Its attempt is recorded before the
    /// call like every send's (decision 0136): the person's erasure is read once it is
    /// (decision 0122), and a lost answer makes the redelivery wait out the reconcile window
    /// before the reply is tried again (decision 0055).
    async fn send_private_reply(
        &self,
        cx: &Context<'_>,
        comment: &StoredComment,
        part: &Part,
        index: usize,
        prior: Option<&Attempt>,
    ) -> PartResult {
        let Part::Text(text) = part else {
            return PartResult::Stop(Disposition::Permanent(private_reply::TEXT_ONLY.into()));
        };
        let reply = InstagramPrivateReply {
            comment_id: comment.comment_id.clone(),
            text: text.clone(),
        };
        let attempt = match self.begin_attempt(cx, index, prior).await {
            Ok(a) => a,
            Err(result) => return result,
        };
        let client = self.clients.for_instagram(&cx.instagram_sender);
        match client
            .send_instagram_private_reply(&cx.instagram_sender, &reply, &cx.token)
            .await
        {
            Ok(sent) => PartResult::Sent(sent.message_id, Some(attempt)),
            Err(e) => {
                log_graph_error(cx, &e);
                let disposition = match e.code() {
                    // A live comment's broadcast ended: Meta refuses with the messages edge's
                    // "cannot reply to this activity" (decision 0067).
                    Some(LIVE_REFUSED) if comment.live => {
                        Disposition::Permanent(private_reply::LIVE_OVER.into())
                    }
                    // The comment has its reply, and our claim says no other message of ours
                    // took it: the earlier attempt whose answer was lost went (decision 0136).
                    Some(ALREADY_REPLIED) if prior.is_some_and(|p| p.part == index) => {
                        Disposition::Permanent(private_reply::EARLIER_ATTEMPT_WENT.into())
                    }
                    _ => reasons::of_graph(ChannelKind::Instagram, &e),
                };
                self.failed_send(cx, &attempt, &e, disposition).await
            }
        }
    }
}

/// The Graph API's code for a second private reply to one comment (`10900`, "Activity
/// already replied to", among the messages edge's errors).
const ALREADY_REPLIED: i64 = 10900;

/// The Graph API's code for a private reply the activity no longer takes (`10903`, "This
/// user cant reply to this activity", among the messages edge's errors).
const LIVE_REFUSED: i64 = 10903;

fn log_graph_error(cx: &Context<'_>, e: &crate::graph::GraphError) {
    tracing::warn!(
        tenant = %cx.job.tenant_id,
        conversation = %cx.job.conversation,
        kind = e.kind(),
        code = ?e.code(),
        "Graph API send failed"
    );
}
