//! Posts a portal's staged operations (decision 0023): whichever process holds the portal's
//! lease takes up to [`FlushConfig::max_per_call`] ready operations, of every conversation,
//! and sends them as one Bitrix24 `batch` request, one command per operation, so that one
//! operation's refusal neither blocks nor repeats the others. Each request waits for the
//! portal's shared budget; the attempt is recorded on the operations before the request goes
//! out. Posts whose earlier attempt ended ambiguously are first looked up in their chat
//! (`im.dialog.messages.get`, by `CONNECTOR_MID`) and only posted when absent.
//!
//! Media links are made here, just before each request (decision 0048): Bitrix24 downloads a
//! post's files while it runs the call, so a link only has to outlive one request, however
//! long the post waited in the outbox before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attempts_here::{AttemptsHere, FlushAttempts};
use super::deaths;
use super::gate::{PortalLease, PortalLimiter};
use super::outbox::{
    killed_outcome, CrmOp, MissingFiles, OpOutcome, Outbox, OutboxError, StagedOp,
};
use super::settled::Settlements;
use super::worker::MediaLinker;
use crate::bitrix::{im, imconnector, BatchCommand, BitrixClient, BitrixError, PortalSession};
use crate::idempotency::holder_token;
use crate::ids::TenantId;
use crate::portal::{Portal, PortalError, PortalTokens};
use crate::store::StoreError;
use crate::tenant::TenantScope;

/// The clock the sync stage reads (Unix ms); tests drive it to simulate hours.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How a flush behaves.
#[derive(Clone, Copy, Debug)]
pub struct FlushConfig {
    /// Operations per `batch` request (Bitrix24 runs at most 50 commands per batch).
    pub max_per_call: usize,
    /// Time a flush keeps taking new requests; one request may still run after it (bounded
    /// by the client's request timeout).
    pub budget: Duration,
    /// How long a claim protects an operation from another flusher, and how long the
    /// portal's lease lasts past its last renewal (it is renewed before each request):
    /// longer than a request (the client's 20 s timeout) and its settling. A flusher
    /// lengthens a shorter one to four thirds of its client's timeout (decision 0110).
    pub claim: Duration,
    /// The shared budget per portal: requests per second and burst. Under Bitrix24's
    /// documented 2/s and 50, to leave room for the install and event paths.
    pub per_second: f64,
    pub burst: u32,
    /// Messages read back from a chat to find an ambiguous post.
    pub lookup_limit: u32,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            max_per_call: 50,
            budget: Duration::from_secs(8),
            claim: Duration::from_secs(30),
            per_second: 2.0,
            burst: 40,
            lookup_limit: 50,
        }
    }
}

/// What one flush did (for logs and the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub requests: u32,
    pub sent: u32,
    pub failed: u32,
    pub found_by_lookup: u32,
    pub rate_limited: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Portal(#[from] PortalError),
}

impl FlushError {
    /// The store was briefly unavailable (throttled, an answer lost): the next flush may
    /// well succeed.
    pub fn is_transient(&self) -> bool {
        use StoreError::Unavailable;
        matches!(
            self,
            FlushError::Store(Unavailable(_))
                | FlushError::Outbox(OutboxError::Store(Unavailable(_)))
        )
    }
}

/// Flushes portals' outboxes. Build once per process.
#[derive(Clone)]
pub struct PortalFlusher {
    outbox: Outbox,
    lease: PortalLease,
    limiter: PortalLimiter,
    client: BitrixClient,
    config: FlushConfig,
    clock: Clock,
    media: Option<Arc<dyn MediaLinker>>,
    /// The jobs of this process waiting on operations, told each outcome this flusher
    /// writes (decision 0084).
    settlements: Settlements,
    /// The flush attempts of this process, going or ended alive (decision 0117).
    attempts_here: AttemptsHere,
}

impl PortalFlusher {
    pub fn new(
        outbox: Outbox,
        store: Arc<dyn crate::store::TableStore>,
        client: BitrixClient,
        mut config: FlushConfig,
        clock: Clock,
    ) -> Self {
        config.claim = config.claim.max(claim_for(client.config().request_timeout));
        PortalFlusher {
            outbox,
            lease: PortalLease::new(store.clone()),
            limiter: PortalLimiter::new(store, config.per_second, config.burst),
            client,
            config,
            clock,
            media: None,
            settlements: Settlements::default(),
            attempts_here: AttemptsHere::default(),
        }
    }

    /// Links the files of staged posts (`CrmOp::files`) with `media`, just before each
    /// request. Without it, files are left out of the posts.
    pub fn with_media_links(mut self, media: Option<Arc<dyn MediaLinker>>) -> Self {
        self.media = media;
        self
    }

    pub fn config(&self) -> &FlushConfig {
        &self.config
    }

    /// Where the jobs of this process listen for the outcomes this flusher (and its clones)
    /// write.
    pub(crate) fn settlements(&self) -> &Settlements {
        &self.settlements
    }

    /// Records the outcomes of one attempt (each only while the attempt still claims its
    /// operation) and tells the jobs of this process that wait on them what was written.
    async fn settle(
        &self,
        attempt: &str,
        mut outcomes: Vec<(crate::store::Key, OpOutcome, bool)>,
    ) -> Result<(), OutboxError> {
        self.settle_rest(attempt, &mut outcomes).await
    }

    /// Ends an attempt that posts nothing more: gives back `unposted` (claimed, not sent)
    /// and writes `outcomes`. Left claimed, they would come back only when their claim ran
    /// out, each counted as a death of its flusher (decision 0091).
    async fn let_go(
        &self,
        attempt: &str,
        unposted: &[StagedOp],
        outcomes: Vec<(crate::store::Key, OpOutcome, bool)>,
    ) -> Result<(), OutboxError> {
        self.outbox.release(unposted, attempt).await;
        self.settle(attempt, outcomes).await
    }

    /// As [`PortalFlusher::settle`]; on a store failure, `outcomes` keeps those still to
    /// write (the others were written and told).
    async fn settle_rest(
        &self,
        attempt: &str,
        outcomes: &mut Vec<(crate::store::Key, OpOutcome, bool)>,
    ) -> Result<(), OutboxError> {
        let settled = self.outbox.settle(attempt, std::mem::take(outcomes)).await;
        for (key, outcome) in &settled.written {
            self.settlements.settled(key, outcome);
        }
        *outcomes = settled.unwritten;
        match settled.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The parameters of `op` as they go out now: its files linked at this moment, with the
    /// links' short lifetime starting now (decision 0048). Also which of `op.files` went out
    /// (index, link), to compare with the files Bitrix24 answers it kept (decision 0066).
    async fn params_now(
        &self,
        tenant: &TenantId,
        op: &CrmOp,
    ) -> (serde_json::Value, Vec<(u32, String)>) {
        let mut params = op.params.clone();
        let Some(linker) = self.media.as_ref().filter(|_| !op.files.is_empty()) else {
            return (params, Vec::new());
        };
        let mut files = Vec::with_capacity(op.files.len());
        let mut sent = Vec::with_capacity(op.files.len());
        for (i, f) in op.files.iter().enumerate() {
            if let Some(file) = linker
                .link_in(tenant, &f.account, &f.conversation, &f.media)
                .await
            {
                sent.push((i as u32, file.url.clone()));
                files.push(file);
            }
        }
        imconnector::set_message_files(&mut params, &files);
        (params, sent)
    }

    /// Posts the tenant's ready operations while there are any and the budget lasts, unless
    /// another process holds the portal's lease (then it returns at once: that process
    /// posts them).
    pub async fn flush(&self, scope: &TenantScope) -> Result<FlushReport, FlushError> {
        let tenant = scope.tenant();
        let holder = holder_token();
        let mut report = FlushReport::default();
        let lease_ttl = self.config.claim;
        // From before the lease is taken until it is given up: the jobs of this process
        // waiting on the portal wait for word of their outcomes meanwhile (decision 0084).
        let _flushing = self.settlements.flushing(tenant);
        if !self
            .lease
            .acquire(tenant, &holder, (self.clock)(), lease_ttl)
            .await?
        {
            return Ok(report);
        }
        let mut attempts = self.attempts_here.flush();
        let result = self
            .flush_held(scope, &holder, &mut report, &mut attempts)
            .await;
        // A flush that returned, or failed for a while (a store briefly unavailable), left
        // the process alive: its run-out claims are no deaths (decision 0117).
        attempts.end(result.as_ref().is_err_and(|e| !e.is_transient()));
        if let Err(e) = self.lease.release(tenant, &holder).await {
            tracing::warn!(error = %e, "could not release a portal lease");
        }
        result.map(|()| report)
    }

    async fn flush_held(
        &self,
        scope: &TenantScope,
        holder: &str,
        report: &mut FlushReport,
        attempts: &mut FlushAttempts,
    ) -> Result<(), FlushError> {
        let tenant = scope.tenant();
        let started = Instant::now();
        let mut portal: Option<Portal> = None;
        // Requests alternate between clean operations and a suspect alone when both are
        // ready (decision 0091); clean ones first.
        let mut suspects_turn = false;
        while started.elapsed() < self.config.budget {
            let now = (self.clock)();
            let ready = self
                .outbox
                .ready(tenant, now, self.config.max_per_call)
                .await?;
            let ready = self.attempts_here.spare_the_living(ready);
            if ready.is_empty() {
                return Ok(());
            }
            // Keep the lease while we work.
            if !self
                .lease
                .acquire(tenant, holder, now, self.config.claim)
                .await?
            {
                return Ok(());
            }
            let ready = self.retire_killers(tenant, ready, now).await?;
            if ready.is_empty() {
                continue;
            }
            let (ready, alone) = deaths::next_request(ready, suspects_turn);
            suspects_turn = !alone;
            if !self.wait_for_budget(scope, started).await? {
                return Ok(());
            }
            if portal.is_none() {
                portal = Some(Portal::load(scope).await?);
            }
            let portal = portal.as_mut().expect("loaded above");
            let tokens_store = PortalTokens::new(scope.clone(), portal.channel.clone());
            let domain = portal.domain.clone();
            let mut session = self
                .client
                .session(&domain, &mut portal.tokens, &tokens_store);
            let attempt = holder_token();
            attempts.start(&attempt);
            let now = (self.clock)();
            let mut claim = Claim::from(now, self.config.claim);
            // Per conversation, only what comes before an operation another flusher holds
            // (the claim gives the rest back): a conversation's order holds.
            let claimed: HashSet<_> = self
                .outbox
                .claim(&ready, &attempt, claim.until_ms, now)
                .await?
                .into_iter()
                .collect();
            let mut ops: Vec<StagedOp> = ready
                .into_iter()
                .filter(|o| claimed.contains(&o.key))
                .collect();
            let taken_over = ops.iter().filter(|o| o.counts_a_death()).count();
            if taken_over > 0 {
                tracing::warn!(
                    tenant = %tenant,
                    operations = taken_over,
                    "took over operations whose flusher died or hung past its claim; a death counted on each"
                );
            }
            let mut outcomes = Vec::new();
            // Ambiguous posts into known chats: ask first.
            let lookups: Vec<&StagedOp> = ops
                .iter()
                .filter(|o| o.ambiguous && lookup_chat(o).is_some())
                .collect();
            if !lookups.is_empty() {
                match self.look_up(&mut session, &lookups).await {
                    Ok(found) => {
                        report.requests += 1;
                        ops.retain(|o| match found.get(&o.key.sk) {
                            Some(outcome) => {
                                outcomes.push((o.key.clone(), outcome.clone(), false));
                                report.found_by_lookup += 1;
                                false
                            }
                            None => true,
                        });
                        if !ops.is_empty() && !self.wait_for_budget(scope, started).await? {
                            // Out of time: the next flush looks the rest up again.
                            self.let_go(&attempt, &ops, outcomes).await?;
                            return Ok(());
                        }
                        if !ops.is_empty() {
                            // The lookup and the wait took part of the claim: renew it (and
                            // the lease) for the post, and post only what is still ours.
                            let Some(kept) = self
                                .renew(tenant, holder, &attempt, &mut claim, &ops)
                                .await?
                            else {
                                self.let_go(&attempt, &ops, outcomes).await?;
                                return Ok(());
                            };
                            ops.retain(|o| kept.contains(&o.key));
                        }
                    }
                    Err(e) => {
                        report.requests += 1;
                        self.fail_all(scope, &attempt, &ops, &e, report, outcomes)
                            .await?;
                        continue;
                    }
                }
            }
            if ops.is_empty() {
                self.settle(&attempt, outcomes).await?;
                continue;
            }
            let mut commands: Vec<BatchCommand> = Vec::with_capacity(ops.len());
            let mut files_sent = Vec::with_capacity(ops.len());
            for (i, o) in ops.iter().enumerate() {
                let (params, files) = self.params_now(tenant, &o.op).await;
                files_sent.push(files);
                commands.push(BatchCommand {
                    key: format!("c{i}"),
                    method: o.op.method.clone(),
                    params,
                });
            }
            // The post must end inside its claim: once a claim runs out another flusher may
            // take the operations and post them again while this request is still on its way
            // (the fault soak saw it, decision 0069's figures). Making the media links may
            // have taken part of it, so a claim with less than a request's time left is
            // renewed first, and only what is still ours is posted.
            if claim.left(&self.clock) < self.client.config().request_timeout {
                let Some(kept) = self
                    .renew(tenant, holder, &attempt, &mut claim, &ops)
                    .await?
                else {
                    self.let_go(&attempt, &ops, outcomes).await?;
                    return Ok(());
                };
                if kept.len() < ops.len() {
                    let all = std::mem::take(&mut ops)
                        .into_iter()
                        .zip(std::mem::take(&mut commands))
                        .zip(std::mem::take(&mut files_sent));
                    for ((o, mut command), files) in all.filter(|((o, _), _)| kept.contains(&o.key))
                    {
                        command.key = format!("c{}", ops.len());
                        ops.push(o);
                        commands.push(command);
                        files_sent.push(files);
                    }
                    if ops.is_empty() {
                        self.settle(&attempt, outcomes).await?;
                        continue;
                    }
                }
            }
            report.requests += 1;
            match session.batch(&commands, false).await {
                Ok(answer) => {
                    for (i, o) in ops.iter().enumerate() {
                        let (outcome, ambiguous) = match answer
                            .result(&format!("c{i}"))
                            .and_then(|v| parse_outcome(&o.op.method, v, &files_sent[i]))
                        {
                            Ok(sent) => {
                                report.sent += 1;
                                (sent, false)
                            }
                            Err(e) => {
                                report.failed += 1;
                                if let BitrixError::RateLimited { retry_after, .. } = &e {
                                    self.block_after_refusal(scope, *retry_after).await;
                                }
                                (failure(&e, true), e.is_ambiguous())
                            }
                        };
                        outcomes.push((o.key.clone(), outcome, ambiguous));
                    }
                    self.record_answer(&attempt, &claim, outcomes).await?;
                }
                Err(e) => {
                    self.fail_all(scope, &attempt, &ops, &e, report, outcomes)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Blocks the portal's budget after a command of an answered request was refused for
    /// the rate limit. The answer is recorded whatever this write does: dropped, its claims
    /// would run out unsettled, as if this flusher had died (decision 0091).
    async fn block_after_refusal(&self, scope: &TenantScope, retry_after: Duration) {
        if let Err(e) = self
            .limiter
            .block(scope.tenant(), (self.clock)(), retry_after)
            .await
        {
            tracing::warn!(error = %e, "could not block the portal's budget after a refused command");
        }
    }

    /// Settles the operations of `ready` whose claim would count their
    /// [`deaths::DEATH_LIMIT`]th death as killed, unposted, and tells the jobs of this
    /// process that wait on them (decision 0091); returns the others, in order.
    async fn retire_killers(
        &self,
        tenant: &TenantId,
        ready: Vec<StagedOp>,
        now: i64,
    ) -> Result<Vec<StagedOp>, FlushError> {
        let (killers, rest): (Vec<StagedOp>, Vec<StagedOp>) =
            ready.into_iter().partition(deaths::at_limit);
        for op in &killers {
            if self.outbox.retire(op, now).await? {
                // Ids only: the operation's key names its conversation and its job's effect.
                tracing::error!(
                    tenant = %tenant,
                    operation = %op.key.sk,
                    method = %op.op.method,
                    deaths = op.deaths_when_claimed(),
                    "a staged Bitrix24 operation killed every flusher that posted it; failed, not posted again"
                );
                self.settlements.settled(&op.key, &killed_outcome());
            }
        }
        Ok(rest)
    }

    /// Renews the portal's lease and the attempt's claim on `ops` for the request about to
    /// go out; the keys still its own, or `None` when the lease went to another process.
    async fn renew(
        &self,
        tenant: &crate::ids::TenantId,
        holder: &str,
        attempt: &str,
        claim: &mut Claim,
        ops: &[StagedOp],
    ) -> Result<Option<HashSet<crate::store::Key>>, FlushError> {
        let now = (self.clock)();
        if !self
            .lease
            .acquire(tenant, holder, now, self.config.claim)
            .await?
        {
            return Ok(None);
        }
        *claim = Claim::from(now, self.config.claim);
        let kept = self.outbox.extend(ops, attempt, claim.until_ms).await?;
        Ok(Some(kept.into_iter().collect()))
    }

    /// Writes the outcomes of an answered request (decision 0056). Until this write lands
    /// the answer exists only here, and for a conversation's first post nothing at Bitrix24
    /// can tell afterwards whether it arrived (its chat id is in this answer, decision
    /// 0023): dropping the answer on a failed write made the claim run out into a repost.
    /// So the attempt keeps its operations until their outcomes are written, for as long as
    /// its claim keeps every other flusher off them; the write is conditional on the claim,
    /// so a write that landed although its answer was lost is not written twice.
    async fn record_answer(
        &self,
        attempt: &str,
        claim: &Claim,
        outcomes: Vec<(crate::store::Key, OpOutcome, bool)>,
    ) -> Result<(), FlushError> {
        let mut pause = Duration::from_millis(20);
        let mut outcomes = outcomes;
        loop {
            match self.settle_rest(attempt, &mut outcomes).await {
                Ok(()) => return Ok(()),
                // Throttled or briefly down: what is left was not written (or it was, and
                // the conditional write does not repeat it).
                Err(OutboxError::Store(e @ StoreError::Unavailable(_)))
                    if claim.left(&self.clock) > pause * 2 =>
                {
                    tracing::warn!(error = %e, operations = outcomes.len(), "could not record a Bitrix24 answer yet; the claim holds");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    tracing::error!(error = %e, operations = outcomes.len(), "a Bitrix24 answer could not be recorded within its claim");
                    return Err(e.into());
                }
            }
        }
    }

    /// A whole request failed: a rate limit blocks the portal's budget and leaves the
    /// operations to post again (they were not run); anything else fails them all, ambiguous
    /// when Bitrix24 may have run them.
    async fn fail_all(
        &self,
        scope: &TenantScope,
        attempt: &str,
        ops: &[StagedOp],
        e: &BitrixError,
        report: &mut FlushReport,
        mut outcomes: Vec<(crate::store::Key, OpOutcome, bool)>,
    ) -> Result<(), FlushError> {
        if let BitrixError::RateLimited { retry_after, .. } = e {
            report.rate_limited += 1;
            self.limiter
                .block(scope.tenant(), (self.clock)(), *retry_after)
                .await?;
        }
        report.failed += ops.len() as u32;
        tracing::warn!(
            kind = e.kind(),
            operations = ops.len(),
            "Bitrix24 batch request failed"
        );
        let ambiguous = e.is_ambiguous();
        for o in ops {
            outcomes.push((o.key.clone(), failure(e, false), ambiguous || o.ambiguous));
        }
        self.settle(attempt, outcomes).await?;
        Ok(())
    }

    /// Waits for one request of the portal's budget; false when the flush's time is up.
    async fn wait_for_budget(
        &self,
        scope: &TenantScope,
        started: Instant,
    ) -> Result<bool, FlushError> {
        loop {
            match self
                .limiter
                .try_acquire(scope.tenant(), (self.clock)())
                .await?
            {
                Ok(()) => return Ok(true),
                Err(wait) => {
                    if started.elapsed() + wait > self.config.budget {
                        return Ok(false);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One `batch` of `im.dialog.messages.get`, a command per chat; the posts found there,
    /// by their staged operation's sort key.
    async fn look_up(
        &self,
        session: &mut PortalSession<'_>,
        posts: &[&StagedOp],
    ) -> Result<HashMap<String, OpOutcome>, BitrixError> {
        let mut chats: BTreeMap<String, Vec<&StagedOp>> = BTreeMap::new();
        for p in posts {
            if let Some(chat) = lookup_chat(p) {
                chats.entry(chat.to_owned()).or_default().push(p);
            }
        }
        let chats: Vec<(String, Vec<&StagedOp>)> =
            chats.into_iter().take(self.config.max_per_call).collect();
        let commands: Vec<BatchCommand> = chats
            .iter()
            .enumerate()
            .map(|(i, (chat, _))| BatchCommand {
                key: format!("l{i}"),
                method: im::IM_DIALOG_MESSAGES_GET.to_owned(),
                params: im::recent_messages_params(chat, self.config.lookup_limit),
            })
            .collect();
        let answer = session.batch(&commands, false).await?;
        let mut found = HashMap::new();
        for (i, (chat, posts)) in chats.iter().enumerate() {
            let messages = im::parse_recent_messages(answer.result(&format!("l{i}"))?)?;
            for p in posts {
                let Some(lookup) = &p.op.lookup else { continue };
                if messages
                    .iter()
                    .any(|m| m.connector_mids.contains(&lookup.external_id))
                {
                    found.insert(
                        p.key.sk.clone(),
                        OpOutcome::Sent {
                            crm_chat_id: Some(chat.clone()),
                            // A chat message read back does not say which files it lacks.
                            missing: MissingFiles::default(),
                        },
                    );
                }
            }
        }
        Ok(found)
    }
}

/// The shortest claim that covers a whole request: after a renewal a claim protects its
/// operations for three quarters of its length ([`Claim::left`] keeps a quarter for the
/// answer's write), which must be at least the client's request timeout, or a slow request
/// could still land after another flusher took its operations over, looked for the post
/// and found nothing (decision 0110). A lease shortened below that (`LEASE_SECS`)
/// shortened the claim with it; the claim is lengthened back to this.
fn claim_for(request_timeout: Duration) -> Duration {
    request_timeout * 4 / 3 + Duration::from_millis(1)
}

/// How long an attempt's claim protects its operations, by the sync clock (which tests
/// run ahead) and by the real time spent since it was written, whichever ends first.
struct Claim {
    until_ms: i64,
    written: Instant,
    length: Duration,
}

impl Claim {
    fn from(now_ms: i64, length: Duration) -> Self {
        Claim {
            until_ms: now_ms + length.as_millis() as i64,
            written: Instant::now(),
            length,
        }
    }

    /// Time left, less a quarter of the claim: the margin for the write itself to land.
    fn left(&self, clock: &Clock) -> Duration {
        let margin = self.length / 4;
        let by_clock = u64::try_from(self.until_ms - clock()).unwrap_or(0);
        let by_clock = Duration::from_millis(by_clock);
        let by_time = self.length.saturating_sub(self.written.elapsed());
        by_clock.min(by_time).saturating_sub(margin)
    }
}

fn lookup_chat(op: &StagedOp) -> Option<&str> {
    op.op.lookup.as_ref().and_then(|l| l.crm_chat_id.as_deref())
}

/// Reads one command's result by its method; `files_sent` are the files the command carried
/// (index in the operation's files, link).
fn parse_outcome(
    method: &str,
    result: &serde_json::Value,
    files_sent: &[(u32, String)],
) -> Result<OpOutcome, BitrixError> {
    match method {
        imconnector::SEND_MESSAGES | imconnector::UPDATE_MESSAGES => {
            let sent = imconnector::parse_sent_messages(method, result)?;
            let first = sent.first().ok_or_else(|| {
                BitrixError::Protocol(format!("{method} answered without a result"))
            })?;
            if !first.success {
                return Err(BitrixError::Rejected {
                    status: 200,
                    code: "SEND_FAILED".into(),
                    description: format!("{method}: {} error(s)", first.errors.len()),
                });
            }
            Ok(OpOutcome::Sent {
                crm_chat_id: first.chat_id.clone(),
                missing: missing_files(files_sent, first.kept_files.as_deref()),
            })
        }
        _ => {
            imconnector::parse_success(method, result)?;
            Ok(OpOutcome::Sent {
                crm_chat_id: None,
                missing: MissingFiles::default(),
            })
        }
    }
}

/// The files sent that Bitrix24's answer does not list as kept. imconnector-send-messages.md
/// documents no error for a file link the portal cannot download ("a link available to the
/// account"); its response example answers a request with one file `SUCCESS: true`, the
/// text kept and `message.files: []`, the message data after processing. So a shorter list
/// than we sent is the sign. Our links are matched to tell which; an answer without the list
/// says nothing (none missing).
fn missing_files(sent: &[(u32, String)], kept: Option<&[Option<String>]>) -> MissingFiles {
    let Some(kept) = kept else {
        return MissingFiles::default();
    };
    let count = sent.len().saturating_sub(kept.len()) as u32;
    if count == 0 {
        return MissingFiles::default();
    }
    let unmatched: Vec<u32> = sent
        .iter()
        .filter(|(_, url)| !kept.iter().any(|k| k.as_deref() == Some(url.as_str())))
        .map(|(i, _)| *i)
        .collect();
    let of = if unmatched.len() == count as usize {
        unmatched
    } else {
        // The answer names other links than ours: which files are missing is unknown.
        sent.iter().map(|(i, _)| *i).collect()
    };
    MissingFiles { count, of }
}

/// The stored form of a failure: kinds and codes, never Bitrix24's description (it may quote
/// the message).
fn failure(e: &BitrixError, in_batch: bool) -> OpOutcome {
    OpOutcome::Failed {
        kind: e.kind().to_owned(),
        code: e.code().map(str::to_owned),
        retry_after_ms: e.retry_after().map(|d| d.as_millis() as u64),
        // A command refused inside an answered batch is about that operation; so is a
        // refusal of the request itself only when nothing about the portal is wrong.
        operation_level: in_batch && matches!(e, BitrixError::Rejected { .. }),
    }
}

#[cfg(test)]
mod tests;
