//! Writing an export's files: a [`Run`] reads the scope's conversations and messages a page
//! at a time and streams each file through a [`Sink`] into the object store. JSON is written
//! piece by piece with serde_json; CSV with the `csv` crate (RFC 4180: comma separated, CRLF
//! line ends, a cell quoted when it holds a comma, a quote, CR or LF, quotes doubled), made
//! safe against formula injection: a cell starting with `=`, `+`, `-`, `@`, a tab or a CR is
//! prefixed with an apostrophe, so a spreadsheet shows it as text instead of running it.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};

use serde::Serialize;

use super::model::{ExportError, ExportFile, ExportId, ExportScope};
use super::service::Exports;
use crate::clock::now_secs;
use crate::conversation::{
    ConversationId, ConversationMeta, Conversations, Direction, MessageStatus, Origin,
    StoredMessage, TemplateMessage,
};
use crate::ids::TenantId;
use crate::meta::{AccountRef, Content, CustomerId};
use crate::objects::{ObjectKey, ObjectStore, ObjectWriter};
use crate::store::{Key, Query, Table};
use crate::tenant::TenantScope;

/// Bytes gathered before they are handed to the object writer.
const FLUSH_BYTES: usize = 256 * 1024;
const FORMAT: &str = "wappline-export";
const FORMAT_VERSION: u32 = 1;

/// How CSV rows are written: the `csv` crate's writer, configured once per file and opened
/// over the sink's buffer for each row (so rows land in the same buffer as everything else).
pub(super) struct CsvRows(csv::WriterBuilder);

impl CsvRows {
    pub(super) fn new() -> Self {
        let mut builder = csv::WriterBuilder::new();
        builder
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary);
        CsvRows(builder)
    }

    /// Appends one row to `out`: each cell guarded (see [`guard`]) and quoted as needed, and
    /// the CRLF that ends it.
    pub(super) fn push<S: AsRef<str>>(
        &self,
        out: &mut Vec<u8>,
        cells: &[S],
    ) -> Result<(), ExportError> {
        let failed = |e: &dyn std::fmt::Display| ExportError::Corrupt(format!("csv: {e}"));
        let mut writer = self.0.from_writer(out);
        for cell in cells {
            writer
                .write_field(guard(cell.as_ref()).as_bytes())
                .map_err(|e| failed(&e))?;
        }
        writer.write_record(None::<&[u8]>).map_err(|e| failed(&e))?;
        writer.flush().map_err(|e| failed(&e))
    }
}

/// A cell as written: one starting with `=`, `+`, `-`, `@`, a tab or a CR gets an apostrophe
/// in front, so a spreadsheet shows it as text instead of running it as a formula.
fn guard(cell: &str) -> Cow<'_, str> {
    if matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Bytes on their way to an object: gathered up to [`FLUSH_BYTES`], then written.
pub(super) struct Sink {
    writer: Option<Box<dyn ObjectWriter>>,
    buf: Vec<u8>,
    csv: CsvRows,
}

impl Sink {
    pub(super) async fn open(
        objects: &dyn ObjectStore,
        key: &ObjectKey,
    ) -> Result<Self, ExportError> {
        Ok(Sink {
            writer: Some(objects.writer(key).await?),
            buf: Vec::with_capacity(FLUSH_BYTES),
            csv: CsvRows::new(),
        })
    }

    async fn maybe_flush(&mut self) -> Result<(), ExportError> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(&self.buf).await?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Appends one CSV row (see [`CsvRows::push`]).
    fn csv_row<S: AsRef<str>>(&mut self, cells: &[S]) -> Result<(), ExportError> {
        self.csv.push(&mut self.buf, cells)
    }

    fn json<T: Serialize>(&mut self, value: &T) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.buf, value).map_err(|e| ExportError::Corrupt(e.to_string()))
    }

    pub(super) async fn finish(mut self) -> Result<u64, ExportError> {
        self.flush().await?;
        let w = self
            .writer
            .take()
            .ok_or_else(|| ExportError::Corrupt("sink closed".into()))?;
        Ok(w.finish().await?.size)
    }

    pub(super) async fn abort(mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.abort().await;
        }
    }
}

/// One message as exported.
#[derive(Serialize)]
struct MessageOut<'a> {
    conversation_id: &'a str,
    message_id: &'a str,
    at_ms: i64,
    direction: Direction,
    origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<MessageStatus>,
    /// Plain text as the CRM shows it (`[image]`, a caption, a location, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The structured content; absent once the message was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a Content>,
    deleted: bool,
    edited: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a TemplateMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_provider_id: Option<&'a str>,
}

impl<'a> MessageOut<'a> {
    fn of(m: &'a StoredMessage) -> Self {
        MessageOut {
            conversation_id: m.at.conversation.as_str(),
            message_id: &m.provider_message_id,
            at_ms: m.at_ms,
            direction: m.direction,
            origin: m.origin,
            status: m.status,
            text: m.content.as_ref().map(Content::text_for_crm),
            content: m.content.as_ref(),
            deleted: m.deleted,
            edited: m.edited,
            reaction: m.reaction.as_deref(),
            reply_to: m.reply_to.as_deref(),
            template: m.template.as_ref(),
            sent_provider_id: m.sent_provider_id.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct ConversationOut<'a> {
    id: &'a str,
    account: &'a AccountRef,
    customer: &'a crate::meta::CustomerRef,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_inbound_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crm_chat_id: Option<&'a str>,
    /// The customer's profile from the channel (Instagram name, username, picture URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a crate::conversation::CustomerProfile>,
}

impl<'a> ConversationOut<'a> {
    fn of(c: &'a ConversationMeta) -> Self {
        ConversationOut {
            id: c.id.as_str(),
            account: &c.account,
            customer: &c.customer,
            created_at: c.created_at,
            last_inbound_at: c.last_inbound_at,
            crm_chat_id: c.crm_chat_id.as_deref(),
            profile: c.profile.as_ref(),
        }
    }
}

/// The conversations of a scope, read a page at a time.
struct ConversationCursor {
    pending: VecDeque<ConversationId>,
    after: Option<Key>,
    done: bool,
}

/// One run of one export: what every file of it is written from.
pub(super) struct Run<'a> {
    pub(super) exports: &'a Exports,
    pub(super) tenant: &'a TenantId,
    pub(super) id: &'a ExportId,
    pub(super) scope: &'a ExportScope,
    pub(super) conversations: Conversations,
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Run<'_> {
    async fn cursor(&self) -> Result<ConversationCursor, ExportError> {
        Ok(match self.scope {
            ExportScope::Tenant => ConversationCursor {
                pending: VecDeque::new(),
                after: None,
                done: false,
            },
            ExportScope::Contact { account, customer } => {
                let derived =
                    ConversationId::derive(&self.exports.envelope, self.tenant, account, customer)
                        .await?;
                let mut pending = VecDeque::from([derived.clone()]);
                // The conversation the id leads to after a change of identity (decision 0049).
                if let Some(id) = self
                    .conversations
                    .conversation_of(account, customer)
                    .await?
                {
                    if id != derived {
                        pending.push_back(id);
                    }
                }
                ConversationCursor {
                    pending,
                    after: None,
                    done: true,
                }
            }
        })
    }

    /// The next conversation of the scope that still exists, with its details.
    async fn next_conversation(
        &self,
        cursor: &mut ConversationCursor,
    ) -> Result<Option<ConversationMeta>, ExportError> {
        loop {
            if let Some(id) = cursor.pending.pop_front() {
                if let Some(meta) = self.conversations.meta(&id).await? {
                    return Ok(Some(meta));
                }
                continue;
            }
            if cursor.done {
                return Ok(None);
            }
            let pk = self.tenant.sub_partition("CONVS");
            let page = self
                .exports
                .store
                .query(
                    Table::Data,
                    &Query::partition(pk)
                        .limit(self.exports.page_size)
                        .start_after(cursor.after.take()),
                )
                .await?;
            for item in &page.items {
                if let Some(id) = item.key().and_then(|k| ConversationId::parse(&k.sk).ok()) {
                    cursor.pending.push_back(id);
                }
            }
            cursor.after = page.next;
            cursor.done = cursor.after.is_none();
        }
    }

    /// Calls `each` on every message of a conversation, a page at a time.
    async fn for_each_message(
        &self,
        conversation: &ConversationId,
        sink: &mut Sink,
        mut each: impl FnMut(&mut Sink, &StoredMessage) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self
                .conversations
                .messages(conversation, after.as_deref(), self.exports.page_size)
                .await?;
            for m in &page {
                each(sink, m)?;
            }
            sink.maybe_flush().await?;
            match next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    async fn settings_json(&self) -> Result<serde_json::Value, ExportError> {
        Ok(match self.scope {
            ExportScope::Tenant => {
                let scope = TenantScope::new(
                    self.tenant.clone(),
                    self.exports.store.clone(),
                    self.exports.envelope.clone(),
                );
                let mut settings = serde_json::to_value(scope.settings().await?)
                    .map_err(|e| ExportError::Corrupt(e.to_string()))?;
                // The tenant's users are its data too (emails, roles; never password hashes).
                let users =
                    crate::accounts::service::list_users(self.exports.store.as_ref(), self.tenant)
                        .await
                        .map_err(|e| match e {
                            crate::accounts::AccountError::Store(e) => ExportError::Store(e),
                            e => ExportError::Corrupt(e.to_string()),
                        })?;
                settings["users"] =
                    serde_json::to_value(users).map_err(|e| ExportError::Corrupt(e.to_string()))?;
                settings
            }
            // A contact's export is given to that customer: it names the account only.
            ExportScope::Contact { account, .. } => serde_json::json!({ "account": account }),
        })
    }

    pub(super) async fn write(&self, file: ExportFile, sink: &mut Sink) -> Result<(), ExportError> {
        match file {
            ExportFile::SettingsJson => {
                let settings = self.settings_json().await?;
                sink.json(&settings)?;
            }
            ExportFile::ExportJson => self.export_json(sink).await?,
            ExportFile::ContactsCsv => {
                sink.csv_row(&[
                    "customer_id_type",
                    "customer_id",
                    "name",
                    "phone",
                    "username",
                    "parent_user_id",
                ])?;
                // One row per customer (a customer may write to several accounts): only their
                // keys are remembered, never a page of messages.
                let mut seen = HashSet::new();
                let mut cursor = self.cursor().await?;
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    if !seen.insert(c.customer.id.key()) {
                        continue;
                    }
                    let id_type = match &c.customer.id {
                        CustomerId::WhatsAppUser(_) => "whatsapp_user",
                        CustomerId::WhatsAppPhone(_) => "whatsapp_phone",
                        CustomerId::Instagram(_) => "instagram",
                    };
                    sink.csv_row(&[
                        id_type.to_owned(),
                        c.customer.id.as_str().to_owned(),
                        opt(c.customer.name.as_deref()),
                        opt(c.customer.phone.as_ref().map(|p| p.as_str())),
                        opt(c.customer.username.as_deref()),
                        opt(c.customer.parent_user_id.as_ref().map(|p| p.as_str())),
                    ])?;
                    sink.maybe_flush().await?;
                }
            }
            ExportFile::ConversationsCsv => {
                sink.csv_row(&[
                    "conversation_id",
                    "channel",
                    "account_id",
                    "customer_id",
                    "created_at",
                    "last_inbound_at",
                    "crm_chat_id",
                ])?;
                let mut cursor = self.cursor().await?;
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    sink.csv_row(&[
                        c.id.to_string(),
                        c.account.channel().name().to_owned(),
                        c.account.id().to_owned(),
                        c.customer.id.as_str().to_owned(),
                        c.created_at.to_string(),
                        opt(c.last_inbound_at),
                        opt(c.crm_chat_id.as_deref()),
                    ])?;
                    sink.maybe_flush().await?;
                }
            }
            ExportFile::MessagesCsv => {
                sink.csv_row(&[
                    "conversation_id",
                    "message_id",
                    "at_ms",
                    "direction",
                    "origin",
                    "status",
                    "type",
                    "text",
                    "deleted",
                    "edited",
                    "reaction",
                    "reply_to",
                ])?;
                let mut cursor = self.cursor().await?;
                while let Some(c) = self.next_conversation(&mut cursor).await? {
                    self.for_each_message(&c.id, sink, |sink, m| {
                        let out = MessageOut::of(m);
                        let code = |v: &dyn erased::Code| v.code_str();
                        sink.csv_row(&[
                            out.conversation_id.to_owned(),
                            out.message_id.to_owned(),
                            out.at_ms.to_string(),
                            code(&out.direction),
                            code(&out.origin),
                            out.status.map(|s| s.code().to_owned()).unwrap_or_default(),
                            out.content.map(content_type).unwrap_or_default().to_owned(),
                            out.text.unwrap_or_default(),
                            out.deleted.to_string(),
                            out.edited.to_string(),
                            opt(out.reaction),
                            opt(out.reply_to),
                        ])
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn export_json(&self, sink: &mut Sink) -> Result<(), ExportError> {
        let settings = self.settings_json().await?;
        sink.buf.extend_from_slice(b"{\"format\":");
        sink.json(&FORMAT)?;
        sink.buf.extend_from_slice(b",\"version\":");
        sink.json(&FORMAT_VERSION)?;
        sink.buf.extend_from_slice(b",\"export_id\":");
        sink.json(&self.id)?;
        sink.buf.extend_from_slice(b",\"tenant_id\":");
        sink.json(self.tenant)?;
        sink.buf.extend_from_slice(b",\"scope\":");
        sink.json(self.scope)?;
        sink.buf.extend_from_slice(b",\"generated_at\":");
        sink.json(&now_secs())?;
        sink.buf.extend_from_slice(b",\"settings\":");
        sink.json(&settings)?;
        sink.buf.extend_from_slice(b",\"conversations\":[");
        let mut cursor = self.cursor().await?;
        let mut first = true;
        while let Some(c) = self.next_conversation(&mut cursor).await? {
            if !first {
                sink.buf.push(b',');
            }
            first = false;
            // The conversation's fields, then its messages streamed into the same object.
            let head = serde_json::to_value(ConversationOut::of(&c))
                .map_err(|e| ExportError::Corrupt(e.to_string()))?;
            let head =
                serde_json::to_string(&head).map_err(|e| ExportError::Corrupt(e.to_string()))?;
            sink.buf
                .extend_from_slice(head.strip_suffix('}').unwrap_or(&head).as_bytes());
            sink.buf.extend_from_slice(b",\"messages\":[");
            let mut first_message = true;
            self.for_each_message(&c.id, sink, |sink, m| {
                if !first_message {
                    sink.buf.push(b',');
                }
                first_message = false;
                sink.json(&MessageOut::of(m))
            })
            .await?;
            sink.buf.extend_from_slice(b"]}");
            sink.maybe_flush().await?;
        }
        sink.buf.extend_from_slice(b"]}");
        Ok(())
    }
}

/// The content's `type` tag (`text`, `media`, `location`, …).
fn content_type(c: &Content) -> &'static str {
    match c {
        Content::Text { .. } => "text",
        Content::Media(_) => "media",
        Content::Location(_) => "location",
        Content::Contacts { .. } => "contacts",
        Content::InteractiveReply { .. } => "interactive_reply",
        Content::Button { .. } => "button",
        Content::Order(_) => "order",
        Content::System { .. } => "system",
        _ => "other",
    }
}

mod erased {
    //! Serde names of small enums, as CSV cells.
    pub trait Code {
        fn code_str(&self) -> String;
    }
    impl<T: serde::Serialize> Code for T {
        fn code_str(&self) -> String {
            match serde_json::to_value(self) {
                Ok(serde_json::Value::String(s)) => s,
                _ => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> String {
        let mut out = Vec::new();
        CsvRows::new().push(&mut out, cells).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_and_guards() {
        assert_eq!(row(&["a", "b"]), "a,b\r\n");
        assert_eq!(
            row(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(row(&["line\nbreak", ""]), "\"line\nbreak\",\r\n");
        assert_eq!(
            row(&["=1+2", "+x", "-3", "@SUM(A1)"]),
            "'=1+2,'+x,'-3,'@SUM(A1)\r\n"
        );
        assert_eq!(
            row(&["=HYPERLINK(\"http://x\",\"y\")"]),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n"
        );
        assert_eq!(row(&["a=b", "ok-"]), "a=b,ok-\r\n");
        assert_eq!(row(&["\tcmd"]), "'\tcmd\r\n");
    }
}
