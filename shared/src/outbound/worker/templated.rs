//! Templates in the send worker (decision 0050): an operator's `/template` command becomes a
//! template message checked against the tenant's copy of the number's templates; a
//! marketing template goes through the Marketing Messages API; and the note for a reply
//! outside WhatsApp's window lists the approved templates.

use super::{OutboundWorker, SendError};
use crate::conversation::{Origin, StoredMessage, TemplateMessage};
use crate::meta::{AccountRef, Content};
use crate::templates::{command, sync::WABA_DETAIL, TemplateBook};
use crate::tenant::{ChannelRef, TenantScope};

/// The template a message sends, and how.
pub(super) struct Resolved {
    pub template: Option<TemplateMessage>,
    /// A marketing template: sent through `marketing_messages`.
    pub marketing: bool,
}

impl OutboundWorker {
    fn book(&self) -> TemplateBook {
        TemplateBook::new(self.store.clone())
    }

    /// The business account of a WhatsApp number, from its channel.
    async fn waba_of(
        &self,
        scope: &TenantScope,
        account: &AccountRef,
    ) -> Result<Option<String>, SendError> {
        let AccountRef::WhatsApp(n) = account else {
            return Ok(None);
        };
        Ok(scope
            .channel(&ChannelRef::WhatsApp(n.clone()))
            .await?
            .and_then(|c| c.details.get(WABA_DETAIL).cloned()))
    }

    /// The message's own template (public API), or the one an operator's `/template` command
    /// names, built from the stored definition; `Ok(Err(reason))` when the command cannot be
    /// sent (unknown template, wrong parameters), so nothing is sent and the operator is told.
    pub(super) async fn resolve_template(
        &self,
        scope: &TenantScope,
        account: &AccountRef,
        message: &StoredMessage,
    ) -> Result<Result<Resolved, String>, SendError> {
        let waba = self.waba_of(scope, account).await?;
        let tenant = scope.tenant();
        if let Some(t) = &message.template {
            let marketing = match &waba {
                Some(w) => self
                    .book()
                    .find(tenant, w, &t.name, &t.language)
                    .await?
                    .is_some_and(|s| s.is_marketing()),
                None => false,
            };
            return Ok(Ok(Resolved {
                template: Some(t.clone()),
                marketing,
            }));
        }
        let text = match (&message.origin, &message.content) {
            (Origin::Operator, Some(Content::Text { body })) => body.as_str(),
            _ => return Ok(Ok(none())),
        };
        let Some(parsed) = command::parse(text) else {
            return Ok(Ok(none()));
        };
        let Some(waba) = waba else {
            return Ok(Err(
                "templates are a WhatsApp feature; this channel has none".into(),
            ));
        };
        let cmd = match parsed {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let approved = self.book().approved(tenant, &waba).await?;
        let chosen = match command::choose(&approved, &cmd) {
            Ok(t) => t,
            Err(why) => return Ok(Err(why)),
        };
        Ok(command::build(chosen, &cmd).map(|template| Resolved {
            template: Some(template),
            marketing: chosen.is_marketing(),
        }))
    }

    /// The window refusal for the operator; on WhatsApp with the approved templates to
    /// choose from and the command that sends one.
    pub(super) async fn outside_window_note(
        &self,
        scope: &TenantScope,
        account: &AccountRef,
        reason: &str,
    ) -> Result<String, SendError> {
        let Some(waba) = self.waba_of(scope, account).await? else {
            return Ok(reason.to_owned());
        };
        let approved = self.book().approved(scope.tenant(), &waba).await?;
        Ok(format!("{reason}; {}", command::listing(&approved)))
    }
}

/// Whether `message`, sent, went out as a template: one the API named, or an operator's
/// template command (which is sent only once it resolved to one).
pub(super) fn went_as_template(message: &StoredMessage) -> bool {
    message.template.is_some()
        || matches!(
            (&message.origin, &message.content),
            (Origin::Operator, Some(Content::Text { body })) if command::parse(body).is_some()
        )
}

fn none() -> Resolved {
    Resolved {
        template: None,
        marketing: false,
    }
}
