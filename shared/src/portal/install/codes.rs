//! Connection codes: what a tenant's admin hands to the portal's installer so the install
//! lands on that tenant (shown once, stored only as a hash, single use, 24 hours).

use super::*;

/// A freshly issued code: shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub code: Secret,
    pub tenant: TenantId,
    pub line: OpenLineId,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("tenant", &self.tenant)
            .field("line", &self.line)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedCode {
    /// `<base>/bitrix/install?code=<code>`.
    pub fn install_url(&self, public_base: &EndpointUrl) -> String {
        format!(
            "{}{INSTALL_PATH}?code={}",
            public_base.base(),
            self.code.expose()
        )
    }
}

/// A code that was found valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub tenant: TenantId,
    pub line: OpenLineId,
    pub expires_at: i64,
}

/// Single-use, expiring connection codes in the routes table, keyed by their SHA-256.
#[derive(Clone)]
pub struct ConnectionCodes {
    store: Arc<dyn TableStore>,
    ttl: Duration,
}

/// Accepts only what [`ConnectionCodes::issue`] makes: the prefix and 40 lowercase hex
/// digits. Anything else is refused without a store read.
pub(super) fn well_formed(code: &str) -> bool {
    code.strip_prefix(CODE_PREFIX).is_some_and(|hex| {
        hex.len() == CODE_RANDOM_BYTES * 2
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn code_key(code: &str) -> Key {
    let digest = hex::encode(Sha256::digest(code.as_bytes()));
    Key::new(format!("B24CODE#{digest}"), CODE_SK)
}

/// Prefix of a code's pointer in its tenant's root partition (`T#<t>` / `B24CODE#<digest>`),
/// written with the code so the account erasure finds the code's route by key.
const POINTER_PREFIX: &str = "B24CODE#";

/// The route of the code a pointer's sort key names, if `sk` is such a pointer.
pub fn code_route_of_pointer(sk: &str) -> Option<Key> {
    let digest = sk.strip_prefix(POINTER_PREFIX)?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Key::new(format!("B24CODE#{digest}"), CODE_SK))
}

impl ConnectionCodes {
    pub fn new(store: Arc<dyn TableStore>) -> Self {
        ConnectionCodes {
            store,
            ttl: CODE_TTL,
        }
    }

    /// Changes the validity (tests).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Issues a code for `tenant` (which the caller has checked exists) and `line`.
    pub async fn issue(
        &self,
        tenant: &TenantId,
        line: OpenLineId,
    ) -> Result<IssuedCode, StoreError> {
        let mut bytes = [0u8; CODE_RANDOM_BYTES];
        crate::crypto::random_bytes(&mut bytes)
            .map_err(|e| StoreError::Backend(format!("random source: {e}")))?;
        let code = format!("{CODE_PREFIX}{}", hex::encode(bytes));
        let now = now_secs();
        let expires_at = now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let route = code_key(&code);
        // The pointer first: a code whose route exists always has one (a pointer without its
        // route, after a failed put, only expires).
        let pointer = Key::new(
            tenant.partition(),
            format!(
                "{POINTER_PREFIX}{}",
                route.pk.trim_start_matches("B24CODE#")
            ),
        );
        self.store
            .put(
                Table::Data,
                Item::new(&pointer).with(TTL_ATTR, expires_at),
                None,
            )
            .await?;
        let item = Item::new(&route)
            .with("tenant_id", tenant.as_str())
            .with("line_id", i64::try_from(line.get()).unwrap_or(i64::MAX))
            .with("created_at", now)
            .with(TTL_ATTR, expires_at);
        self.store
            .put(Table::Routes, item, Some(Condition::NotExists))
            .await?;
        Ok(IssuedCode {
            code: Secret::from_decrypted(code),
            tenant: tenant.clone(),
            line,
            expires_at,
        })
    }

    /// The code's tenant and line, if it is valid now (expired counts as absent).
    pub async fn peek(&self, code: &str) -> Result<Option<PendingCode>, StoreError> {
        if !well_formed(code) {
            return Ok(None);
        }
        let Some(item) = self.store.get(Table::Routes, &code_key(code)).await? else {
            return Ok(None);
        };
        let tenant = item
            .get_s("tenant_id")
            .and_then(|t| TenantId::parse(t).ok());
        let line = item
            .get_n("line_id")
            .and_then(|l| u64::try_from(l).ok())
            .and_then(|l| OpenLineId::new(l).ok());
        Ok(match (tenant, line) {
            (Some(tenant), Some(line)) => Some(PendingCode {
                tenant,
                line,
                expires_at: item.get_n(TTL_ATTR).unwrap_or(0),
            }),
            _ => None,
        })
    }

    /// Uses the code up: a delete conditioned on the live item still naming `tenant`, so of
    /// two concurrent consumers exactly one gets `true`.
    pub async fn consume(&self, code: &str, tenant: &TenantId) -> Result<bool, StoreError> {
        if !well_formed(code) {
            return Ok(false);
        }
        match self
            .store
            .delete(
                Table::Routes,
                &code_key(code),
                Some(Condition::And(vec![
                    Condition::Exists,
                    Condition::Equals("tenant_id".into(), tenant.as_str().into()),
                ])),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
