//! Operators write Bitrix24 chat BB-code; customers see their channel's formatting
//! (WhatsApp's `*bold*` markup, plain text on Instagram). The conversion itself lives in
//! [`crate::bitrix::bbcode`]; only operator text is converted (API sends are sent as given).

use crate::bitrix::bbcode;
use crate::conversation::Origin;
use crate::tenant::ChannelKind;

/// `text` as the customer should see it on `channel`.
pub fn for_channel(channel: ChannelKind, origin: Origin, text: &str) -> String {
    if origin != Origin::Operator {
        return text.to_owned();
    }
    match channel {
        ChannelKind::Instagram => bbcode::to_plain(text),
        _ => bbcode::to_whatsapp(text),
    }
}
