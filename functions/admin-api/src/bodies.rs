//! Every JSON request body the admin API reads, and the checks its handler makes on it before
//! anything is read from or written to storage: the fuzzer's entry point (decision 0042).
//! Each arm calls the very function its handler calls (`parse_json` into the same request
//! type, then the same validation where it is a function of its own); this module adds no
//! rule.

use wappline::edge::{parse_json, ApiError};
use wappline::tenant::ChannelKind;

use crate::{
    api_keys, auth, channels, connection_codes, erasure, exports, plans, settings, suspension,
    tenants, users,
};

/// One kind of request body, by the route that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    SignIn,
    Refresh,
    AcceptInvitation,
    ChangePassword,
    RequestPasswordReset,
    ConfirmPasswordReset,
    CreateTenant,
    Suspend,
    Plan,
    Settings,
    Invite,
    Role,
    ConnectionCode,
    CreateApiKey,
    ConnectWhatsApp,
    ConnectInstagram,
    ConnectBitrix24,
    EraseContact,
    EraseTenant,
    Export,
    ExportLink,
}

impl BodyKind {
    pub const ALL: [BodyKind; 21] = [
        BodyKind::SignIn,
        BodyKind::Refresh,
        BodyKind::AcceptInvitation,
        BodyKind::ChangePassword,
        BodyKind::RequestPasswordReset,
        BodyKind::ConfirmPasswordReset,
        BodyKind::CreateTenant,
        BodyKind::Suspend,
        BodyKind::Plan,
        BodyKind::Settings,
        BodyKind::Invite,
        BodyKind::Role,
        BodyKind::ConnectionCode,
        BodyKind::CreateApiKey,
        BodyKind::ConnectWhatsApp,
        BodyKind::ConnectInstagram,
        BodyKind::ConnectBitrix24,
        BodyKind::EraseContact,
        BodyKind::EraseTenant,
        BodyKind::Export,
        BodyKind::ExportLink,
    ];

    /// A body its handler accepts, in the documented shape (`docs/openapi.yaml`).
    pub fn example(self) -> &'static str {
        match self {
            BodyKind::SignIn => {
                r#"{"account_id":"tn_0123456789abcdef01234567","email":"owner@example.com","password":"correct horse battery"}"#
            }
            BodyKind::Refresh => {
                r#"{"refresh_token":"wpr1.tn_0123456789abcdef01234567.usr_0123456789abcdef0123.abcd.secret"}"#
            }
            BodyKind::AcceptInvitation => {
                r#"{"token":"wpi1.tn_0123456789abcdef01234567.secret","password":"correct horse battery"}"#
            }
            BodyKind::ChangePassword => {
                r#"{"current_password":"correct horse battery","new_password":"another long password"}"#
            }
            BodyKind::RequestPasswordReset => {
                r#"{"account_id":"tn_0123456789abcdef01234567","email":"owner@example.com"}"#
            }
            BodyKind::ConfirmPasswordReset => {
                r#"{"token":"wpp1.tn_0123456789abcdef01234567.secret","new_password":"another long password"}"#
            }
            BodyKind::CreateTenant => r#"{"name":"Acme GmbH","retention_days":90}"#,
            BodyKind::Suspend => r#"{"reason":"unpaid invoice 2026-11"}"#,
            BodyKind::Plan => r#"{"monthly_outbound":10000,"monthly_inbound":null}"#,
            BodyKind::Settings => r#"{"retention_days":30}"#,
            BodyKind::Invite => r#"{"email":"agent@example.com","role":"agent"}"#,
            BodyKind::Role => r#"{"role":"admin"}"#,
            BodyKind::ConnectionCode => r#"{"line_id":7}"#,
            BodyKind::CreateApiKey => r#"{"name":"crm","scope":"send","expires_at":1893456000}"#,
            BodyKind::ConnectWhatsApp => {
                r#"{"phone_number_id":"106540352242922","waba_id":"102290129340398","access_token":"EAAG0123456789abcdef","display_phone_number":"+1 555 078 3881","authorized_by":"218471"}"#
            }
            BodyKind::ConnectInstagram => {
                r#"{"account_id":"17841400008460056","access_token":"IGQV0123456789abcdef","page_id":"106540352242922","username":"acme","authorized_by":"218471"}"#
            }
            BodyKind::ConnectBitrix24 => {
                r#"{"member_id":"a223c6b3710f85df22e9377d6c4f7553","domain":"acme.bitrix24.com","access_token":"c978b990071b0008440001","refresh_token":"b8b7d7e0071b0008440001","application_token":"51856fefc120afa4b628cc82d3935cce","line_id":7}"#
            }
            BodyKind::EraseContact => {
                r#"{"channel":"whatsapp","account_id":"106540352242922","customer":"16505551234"}"#
            }
            BodyKind::EraseTenant => r#"{"grace_days":7}"#,
            BodyKind::Export => {
                r#"{"scope":"contact","channel":"whatsapp","account_id":"106540352242922","customer":"16505551234"}"#
            }
            BodyKind::ExportLink => r#"{"file":"messages.csv","ttl_seconds":3600}"#,
        }
    }
}

/// Reads `body` as its handler does, up to the first use of storage.
pub fn read(kind: BodyKind, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        BodyKind::SignIn => parse_json::<auth::SignInRequest>(body).map(drop),
        BodyKind::Refresh => parse_json::<auth::RefreshRequest>(body).map(drop),
        BodyKind::AcceptInvitation => parse_json::<auth::AcceptRequest>(body).map(drop),
        BodyKind::ChangePassword => parse_json::<auth::ChangePasswordRequest>(body).map(drop),
        BodyKind::RequestPasswordReset => parse_json::<auth::ResetRequest>(body).map(drop),
        BodyKind::ConfirmPasswordReset => parse_json::<auth::ResetConfirmRequest>(body).map(drop),
        BodyKind::CreateTenant => parse_json::<tenants::CreateTenantRequest>(body).map(drop),
        BodyKind::Suspend => parse_json::<suspension::SuspendRequest>(body).map(drop),
        BodyKind::Plan => plans::read_plan(body).map(drop),
        BodyKind::Settings => settings::read_settings(body).map(drop),
        BodyKind::Invite => parse_json::<users::InviteRequest>(body).map(drop),
        BodyKind::Role => parse_json::<users::RoleRequest>(body).map(drop),
        BodyKind::ConnectionCode => {
            parse_json::<connection_codes::ConnectionCodeRequest>(body).map(drop)
        }
        BodyKind::CreateApiKey => parse_json::<api_keys::CreateApiKeyRequest>(body).map(drop),
        BodyKind::ConnectWhatsApp => {
            channels::parse_connection(ChannelKind::WhatsApp, body).map(drop)
        }
        BodyKind::ConnectInstagram => {
            channels::parse_connection(ChannelKind::Instagram, body).map(drop)
        }
        BodyKind::ConnectBitrix24 => {
            channels::parse_connection(ChannelKind::Bitrix24, body).map(drop)
        }
        BodyKind::EraseContact => {
            erasure::subject(&parse_json::<erasure::ContactRequest>(body)?).map(drop)
        }
        BodyKind::EraseTenant => parse_json::<erasure::TenantRequest>(body).map(drop),
        BodyKind::Export => {
            exports::scope_of(&parse_json::<exports::ExportRequest>(body)?).map(drop)
        }
        BodyKind::ExportLink => parse_json::<exports::LinkRequest>(body).map(drop),
    }
}
