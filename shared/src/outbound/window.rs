//! When a business may message a customer, from the conversation's last inbound time.
//!
//! - WhatsApp ("Cloud API > Messages: customer service windows"): free-form messages only
//!   within 24 hours of the customer's last message; approved templates at any time. Outside
//!   the window Meta refuses free-form messages with 131047 ("Re-engagement message"); we do
//!   not even try.
//! - Instagram ("Instagram API > Send Messages", "Messenger Platform > Message Tags"): replies
//!   within 24 hours (`messaging_type: RESPONSE`); a human agent may reply up to 7 days after
//!   the customer's last message with the `HUMAN_AGENT` tag, never an automated sender.
//!   Operators in Bitrix24 are human agents; sends through the public API are not.

use crate::conversation::Origin;
use crate::tenant::ChannelKind;

/// WhatsApp's customer service window.
pub const WHATSAPP_WINDOW_SECS: i64 = 24 * 3600;
/// Instagram's standard messaging window.
pub const INSTAGRAM_WINDOW_SECS: i64 = 24 * 3600;
/// Instagram's window for human agents with the `HUMAN_AGENT` tag.
pub const INSTAGRAM_HUMAN_AGENT_SECS: i64 = 7 * 24 * 3600;

/// The operator's note when a WhatsApp reply falls outside the window.
pub const WHATSAPP_OUTSIDE: &str =
    "outside WhatsApp's 24-hour customer service window: send an approved template";
/// The note when an Instagram reply falls outside even the human agent window.
pub const INSTAGRAM_OUTSIDE: &str = "outside Instagram's messaging window (24 hours, 7 days for \
     a human agent's reply) since the customer's last message: the customer must write first";
/// The note when an automated Instagram send falls outside the 24-hour window.
pub const INSTAGRAM_OUTSIDE_AUTOMATED: &str = "outside Instagram's 24-hour messaging window: \
     after 24 hours only a human agent may reply (up to 7 days)";
/// Templates are a WhatsApp feature.
pub const NO_INSTAGRAM_TEMPLATES: &str = "Instagram has no message templates";

/// How a message may go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Inside the standard window (or a WhatsApp template).
    Standard,
    /// Instagram, after 24 hours: with the `HUMAN_AGENT` tag.
    InstagramHumanAgent,
}

/// Decides whether a message may be sent now; `Err` holds the operator's explanation.
pub fn decide(
    channel: ChannelKind,
    origin: Origin,
    is_template: bool,
    last_inbound_at: Option<i64>,
    now: i64,
) -> Result<Allowed, &'static str> {
    let elapsed = last_inbound_at.map(|at| now.saturating_sub(at).max(0));
    let within = |limit: i64| elapsed.is_some_and(|e| e < limit);
    match channel {
        ChannelKind::Instagram => {
            if is_template {
                return Err(NO_INSTAGRAM_TEMPLATES);
            }
            if within(INSTAGRAM_WINDOW_SECS) {
                Ok(Allowed::Standard)
            } else if origin != Origin::Operator {
                Err(INSTAGRAM_OUTSIDE_AUTOMATED)
            } else if within(INSTAGRAM_HUMAN_AGENT_SECS) {
                Ok(Allowed::InstagramHumanAgent)
            } else {
                Err(INSTAGRAM_OUTSIDE)
            }
        }
        _ => {
            if is_template || within(WHATSAPP_WINDOW_SECS) {
                Ok(Allowed::Standard)
            } else {
                Err(WHATSAPP_OUTSIDE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const H: i64 = 3600;

    #[test]
    fn whatsapp_free_form_needs_the_window_templates_do_not() {
        let wa = |at, template| decide(ChannelKind::WhatsApp, Origin::Operator, template, at, NOW);
        assert_eq!(wa(Some(NOW - 23 * H), false), Ok(Allowed::Standard));
        assert_eq!(wa(Some(NOW - 24 * H + 1), false), Ok(Allowed::Standard));
        assert_eq!(wa(Some(NOW - 24 * H), false), Err(WHATSAPP_OUTSIDE));
        assert_eq!(wa(None, false), Err(WHATSAPP_OUTSIDE));
        assert_eq!(wa(Some(NOW - 400 * H), true), Ok(Allowed::Standard));
        assert_eq!(wa(None, true), Ok(Allowed::Standard));
        // A clock that runs behind the inbound time counts as "just now".
        assert_eq!(wa(Some(NOW + 60), false), Ok(Allowed::Standard));
    }

    #[test]
    fn instagram_human_agents_get_seven_days() {
        let ig = |origin, at| decide(ChannelKind::Instagram, origin, false, at, NOW);
        assert_eq!(ig(Origin::Operator, Some(NOW - H)), Ok(Allowed::Standard));
        assert_eq!(
            ig(Origin::Operator, Some(NOW - 3 * 24 * H)),
            Ok(Allowed::InstagramHumanAgent)
        );
        assert_eq!(
            ig(Origin::Operator, Some(NOW - 7 * 24 * H)),
            Err(INSTAGRAM_OUTSIDE)
        );
        assert_eq!(ig(Origin::Api, Some(NOW - H)), Ok(Allowed::Standard));
        assert_eq!(
            ig(Origin::Api, Some(NOW - 2 * 24 * H)),
            Err(INSTAGRAM_OUTSIDE_AUTOMATED)
        );
        assert_eq!(ig(Origin::Operator, None), Err(INSTAGRAM_OUTSIDE));
        assert_eq!(
            decide(ChannelKind::Instagram, Origin::Api, true, Some(NOW), NOW),
            Err(NO_INSTAGRAM_TEMPLATES)
        );
    }
}
