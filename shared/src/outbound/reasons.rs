//! What to do about a failed send, and what to tell the operator.
//!
//! Meta advises building error handling on `code` (WhatsApp Cloud API "Error codes"; Graph
//! API "Handling errors"). [`crate::graph::GraphError`] already sorts answers into rate
//! limits, outages and refusals; here they become a queue decision and, for refusals, the
//! note the operator reads in the Bitrix24 chat (`"<code>: <reason>"`, never message content
//! or tokens).
//!
//! | code | Meta's meaning | here |
//! |---|---|---|
//! | 130429 | Cloud API throughput reached | retry later, whole number paced down |
//! | 131056 | (business, consumer) pair rate limit | retry later, that recipient paced down |
//! | 80007, 4, 17, 32, 613, HTTP 429 | account / app / call-rate limits | retry later |
//! | 1, 2, 131000, 131016, HTTP 5xx, network | Meta's side | retry, growing delay, then DLQ |
//! | 131047 | re-engagement: over 24 h since the customer wrote | not retried; template needed |
//! | 131026 | message undeliverable | not retried |
//! | 131051 | unsupported message type | not retried |
//! | 131053 | media upload error | not retried |
//! | 131062 | BSUID recipients not supported for this message | not retried |
//! | 100 | invalid parameter | not retried |
//! | 190, 0, 102 | access token expired, revoked or invalid | not retried; reconnect |
//! | 10, 200–299 | permission missing (Instagram 10/2018278: outside the window) | not retried |
//! | 131031, 368, 131042, 131048, 131049, 132000–132016, 133010 | account, policy, payment, template problems | not retried |

use std::time::Duration;

use super::files::FileError;
use crate::graph::{GraphApiError, GraphError};
use crate::tenant::ChannelKind;

/// What the worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Our own pacing has no token for this long: retry after it.
    Paced(Duration),
    /// Too many messages to this recipient: retry later, pace the recipient down.
    PairRate(Option<Duration>),
    /// A throughput limit: retry later, pace the account down.
    RateLimited(Option<Duration>),
    /// Meta or the file host is unavailable: retry with a growing delay.
    Transient,
    /// Not retried: the message is marked failed and the operator told why.
    Permanent(String),
}

/// The note for an authentication template to a customer known only by their BSUID: refused
/// before the call, with the code Meta would answer (131062, "Business-scoped user IDs").
pub fn authentication_template_to_bsuid() -> String {
    "131062: authentication templates cannot be sent to a customer known only by their \
     WhatsApp user id (no phone number is known for them)"
        .into()
}

/// Meta's meaning of the codes operators are likely to meet.
fn meaning(channel: ChannelKind, code: i64, subcode: Option<i64>) -> Option<&'static str> {
    Some(match (code, subcode) {
        (10, Some(2018278)) if channel == ChannelKind::Instagram => {
            "sent outside Instagram's allowed messaging window"
        }
        (100, Some(2018001)) if channel == ChannelKind::Instagram => {
            "no matching Instagram user (the customer may have deleted their account)"
        }
        (551, _) => "this person isn't available right now",
        (131047, _) => {
            "more than 24 hours since the customer's last message: send an approved template"
        }
        (131026, _) => {
            "message undeliverable (the number may not be on WhatsApp, or the customer's app \
             is outdated or has not accepted WhatsApp's terms)"
        }
        (131051, _) => "unsupported message type",
        (131052, _) | (131053, _) => {
            "the media file could not be processed by WhatsApp (check its type and size)"
        }
        (131062, _) => {
            "this message cannot be sent to a customer known only by their WhatsApp user id"
        }
        (131008, _) => "a required parameter is missing",
        (131009, _) => "a parameter value is not valid",
        (131021, _) => "the recipient cannot be the sender",
        (131031, _) => "the WhatsApp Business Account is locked",
        (131042, _) => "a payment problem on the WhatsApp Business Account",
        (131045, _) | (133010, _) => "the business phone number is not registered",
        (131048, _) => "spam rate limit: too many earlier messages were blocked or flagged",
        (131049, _) => "Meta chose not to deliver this message (per-user marketing limit)",
        (130472, _) => "the customer's number is part of a Meta experiment",
        (132000, _) => "the template's parameter count does not match its definition",
        (132001, _) => "the template does not exist in this language, or is not approved",
        (132005, _) => "the template text is too long once filled in",
        (132007, _) => "the template's content breaks a formatting policy",
        (132012, _) => "a template parameter has the wrong format",
        (132015, _) => "the template is paused for low quality",
        (132016, _) => "the template is disabled",
        (368, _) => "the account is temporarily blocked for policy violations",
        (190, _) | (0, _) | (102, _) => {
            "the channel's access token is expired or invalid: reconnect the channel"
        }
        (10, _) | (200..=299, _) => {
            "the app lacks permission to send from this account: reconnect the channel"
        }
        (100, _) => "invalid parameter",
        _ => return None,
    })
}

/// `"<code>: <reason>"` for a Meta error.
pub fn describe(channel: ChannelKind, e: &GraphApiError) -> String {
    match e.code {
        Some(code) => match meaning(channel, code, e.subcode) {
            Some(m) if code == 100 && !e.message.is_empty() => {
                format!("{code}: {m} ({})", e.message)
            }
            Some(m) => format!("{code}: {m}"),
            None if !e.message.is_empty() => format!("{code}: {}", e.message),
            None => format!("{code}: refused by Meta"),
        },
        None if !e.message.is_empty() => format!("HTTP {}: {}", e.status, e.message),
        None => format!("HTTP {}: refused by Meta", e.status),
    }
}

/// The disposition of a Graph API error.
pub fn of_graph(channel: ChannelKind, e: &GraphError) -> Disposition {
    match e {
        GraphError::RateLimited { error, retry_after } => {
            if error.code == Some(131056) {
                Disposition::PairRate(*retry_after)
            } else {
                Disposition::RateLimited(*retry_after)
            }
        }
        GraphError::Unavailable { .. } => Disposition::Transient,
        GraphError::Unauthorized(a) | GraphError::NotFound(a) | GraphError::Rejected(a) => {
            Disposition::Permanent(describe(channel, a))
        }
        GraphError::TooLarge { limit } => {
            Disposition::Permanent(format!("Meta's answer was larger than {limit} bytes"))
        }
        GraphError::Refused(why) => Disposition::Permanent(format!("not sent: {why}")),
        // A 2xx we could not read: Meta may have sent it, so never send again.
        GraphError::Protocol(why) => Disposition::Permanent(format!(
            "Meta's answer could not be read ({why}); the message may not have been sent"
        )),
    }
}

/// The disposition of a failed download of an operator's file.
pub fn of_file(e: &FileError) -> Disposition {
    match e {
        FileError::Unavailable(_) => Disposition::Transient,
        FileError::TooLarge { limit } => Disposition::Permanent(format!(
            "the file is larger than {} MB, the most that can be sent",
            limit / (1024 * 1024)
        )),
        FileError::Gone { status } => Disposition::Permanent(format!(
            "the file could not be downloaded from Bitrix24 (HTTP {status})"
        )),
        FileError::Refused(why) => {
            Disposition::Permanent(format!("the file's address was refused ({why})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, sub: Option<i64>, msg: &str) -> Box<GraphApiError> {
        Box::new(GraphApiError {
            status: 400,
            code: Some(code),
            subcode: sub,
            error_type: Some("OAuthException".into()),
            message: msg.into(),
            fbtrace_id: None,
            is_transient: false,
        })
    }

    #[test]
    fn rate_limits_pair_and_throughput() {
        let pair = GraphError::RateLimited {
            error: api(131056, None, "(#131056) pair rate limit hit"),
            retry_after: None,
        };
        assert_eq!(
            of_graph(ChannelKind::WhatsApp, &pair),
            Disposition::PairRate(None)
        );
        let tp = GraphError::RateLimited {
            error: api(130429, None, "Rate limit hit"),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            of_graph(ChannelKind::WhatsApp, &tp),
            Disposition::RateLimited(Some(Duration::from_secs(3)))
        );
    }

    #[test]
    fn permanent_errors_explain_themselves() {
        let e = GraphError::Rejected(api(131047, None, "Re-engagement message"));
        match of_graph(ChannelKind::WhatsApp, &e) {
            Disposition::Permanent(r) => {
                assert!(r.starts_with("131047: more than 24 hours"), "{r}")
            }
            other => panic!("{other:?}"),
        }
        let e = GraphError::Unauthorized(api(190, Some(463), "Error validating access token"));
        assert_eq!(
            of_graph(ChannelKind::WhatsApp, &e),
            Disposition::Permanent(
                "190: the channel's access token is expired or invalid: reconnect the channel"
                    .into()
            )
        );
        let e = GraphError::Unauthorized(api(10, Some(2018278), "outside window"));
        match of_graph(ChannelKind::Instagram, &e) {
            Disposition::Permanent(r) => assert!(r.contains("window"), "{r}"),
            other => panic!("{other:?}"),
        }
        let e = GraphError::Rejected(api(100, None, "(#100) Invalid parameter"));
        match of_graph(ChannelKind::WhatsApp, &e) {
            Disposition::Permanent(r) => {
                assert_eq!(r, "100: invalid parameter ((#100) Invalid parameter)")
            }
            other => panic!("{other:?}"),
        }
        let e = GraphError::Rejected(api(999_999, None, "Something new"));
        assert_eq!(
            of_graph(ChannelKind::WhatsApp, &e),
            Disposition::Permanent("999999: Something new".into())
        );
    }

    #[test]
    fn outages_are_transient_and_unreadable_answers_are_not_resent() {
        let e = GraphError::Unavailable {
            status: Some(503),
            detail: "x".into(),
        };
        assert_eq!(of_graph(ChannelKind::WhatsApp, &e), Disposition::Transient);
        let e = GraphError::Protocol("HTTP 200 with an unreadable body".into());
        assert!(matches!(
            of_graph(ChannelKind::WhatsApp, &e),
            Disposition::Permanent(_)
        ));
        assert_eq!(
            of_file(&FileError::Unavailable("HTTP 503".into())),
            Disposition::Transient
        );
        assert!(matches!(
            of_file(&FileError::Gone { status: 404 }),
            Disposition::Permanent(_)
        ));
    }
}
