//! `migrex.v1.Desk`: what staff do. Registering notices (they go to the
//! outbox in the same transaction), the pending list, receipts (签收),
//! verification feedback (核查反馈), withdrawals (撤回), look-ups.
//!
//! Every call carries `authorization: Bearer <token>`; tokens are stored as
//! SHA-256 hashes and carry one role. Clerks, supervisors and admins may
//! change things; monitors only read.

use crate::domain::{
    Category, Direction, DomainError, FeedbackContent, FieldError, NoticeContent, NoticeKind,
    NoticeStatus, ParseContext, Party, Refused, Reply, ReplyBody, ReplySort, Urgency, Verdict,
    enum_from_wire, optional_text, ts_from_pb, ts_to_pb,
};
use crate::exchange::server::internal;
use crate::node::NodeCtx;
use crate::pb;
use crate::store::{ItemKind, NoticeFilter, NoticeRecord, PendingFilter, StoreError, Tx};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clerk,
    Supervisor,
    Monitor,
    Admin,
}

impl Role {
    pub const NAMES: [&'static str; 4] = ["clerk", "supervisor", "monitor", "admin"];

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clerk" => Ok(Role::Clerk),
            "supervisor" => Ok(Role::Supervisor),
            "monitor" => Ok(Role::Monitor),
            "admin" => Ok(Role::Admin),
            _ => Err(FieldError::new(
                "role",
                format!("'{s}' is not one of clerk, supervisor, monitor, admin"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn may_write(self) -> bool {
        self != Role::Monitor
    }
}

/// A new random staff token. Only its hash is stored.
pub fn new_token() -> String {
    format!("mgx_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is calling, from their token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

pub struct DeskService {
    ctx: Arc<NodeCtx>,
    /// Tokens seen, by hash, with when they were looked up: re-checked
    /// after `TOKEN_RECHECK`, so a revoked token stops working within that
    /// on every replica without a restart.
    known: Mutex<HashMap<String, (Caller, OffsetDateTime)>>,
}

fn field_status(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Conflict(id) => {
            Status::already_exists(format!("notice.id: notice {id} already exists"))
        }
        StoreError::Stale(id) => Status::failed_precondition(format!(
            "id: notice {id} changed meanwhile; look at it again"
        )),
        other => internal(other),
    }
}

fn domain_status(e: DomainError) -> Status {
    let text = e.to_string();
    match e.kind {
        Refused::Invalid => Status::invalid_argument(text),
        Refused::NotFound => Status::not_found(text),
        Refused::NotPermitted => Status::permission_denied(text),
        Refused::WrongState => Status::failed_precondition(text),
        Refused::Exists => Status::already_exists(text),
        Refused::TooLarge => Status::resource_exhausted(text),
        Refused::NotYet => Status::unavailable(text),
    }
}

fn parse_id(field: &str, s: &str) -> Result<String, Status> {
    Uuid::parse_str(s.trim())
        .map(|u| u.to_string())
        .map_err(|_| Status::invalid_argument(format!("{field}: '{s}' is not a UUID")))
}

/// An optional enum filter: 0 means "any".
fn filter_enum<E: TryFrom<i32> + Copy + Into<i32>>(
    field: &str,
    v: i32,
) -> Result<Option<i32>, Status> {
    if v == 0 {
        return Ok(None);
    }
    enum_from_wire::<E>(field, v)
        .map(|e| Some(e.into()))
        .map_err(field_status)
}

pub fn page(size: u32, token: &str) -> Result<(u32, u64), Status> {
    let limit = if size == 0 { 50 } else { size.min(1000) };
    let offset = if token.is_empty() {
        0
    } else {
        token
            .parse()
            .map_err(|_| Status::invalid_argument("page_token: not a token this node issued"))?
    };
    Ok((limit, offset))
}

pub fn next_token(got: usize, limit: u32, offset: u64) -> String {
    if got as u32 == limit {
        (offset + u64::from(limit)).to_string()
    } else {
        String::new()
    }
}

/// How long a looked-up token is trusted before the store is asked again.
const TOKEN_RECHECK: time::Duration = time::Duration::minutes(1);

impl DeskService {
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        DeskService {
            ctx,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Who is calling, from the bearer token; `write` demands a role that may change things.
    pub async fn caller<T>(&self, req: &Request<T>, write: bool) -> Result<Caller, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("authorization: a Bearer token is required"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization: not a valid header value"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Status::unauthenticated("authorization: expected 'Bearer <token>'"))?;
        let hash = hash_token(token.trim());
        let now = self.ctx.now();
        let cached = self
            .known
            .lock()
            .expect("token cache")
            .get(&hash)
            .filter(|(_, seen)| now - *seen < TOKEN_RECHECK)
            .map(|(c, _)| c.clone());
        let caller = match cached {
            Some(c) => c,
            None => {
                let rec = self
                    .ctx
                    .store
                    .find_token(&hash)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        Status::unauthenticated("authorization: unknown or revoked token")
                    })?;
                let c = Caller {
                    name: rec.name,
                    role: Role::parse(&rec.role)
                        .map_err(|_| Status::internal("stored token has an unknown role"))?,
                };
                self.known
                    .lock()
                    .expect("token cache")
                    .insert(hash, (c.clone(), now));
                c
            }
        };
        if write && !caller.role.may_write() {
            return Err(Status::permission_denied(format!(
                "role {} may only read",
                caller.role.as_str()
            )));
        }
        Ok(caller)
    }

    fn view(&self, rec: &NoticeRecord) -> pb::Notice {
        rec.to_pb(self.ctx.now())
    }

    /// Fills in what the node decides (id, origin, created_at, urgency and
    /// reply defaults), then parses the notice as a peer would.
    fn prepare(
        &self,
        mut n: pb::Notice,
        now: OffsetDateTime,
    ) -> Result<(NoticeContent, String), FieldError> {
        let ctx = &self.ctx;
        if n.id.trim().is_empty() {
            n.id = Uuid::now_v7().to_string();
        }
        if n.origin.trim().is_empty() {
            n.origin = ctx.district.to_string();
        } else if n.origin.trim() != ctx.district.as_str() {
            return Err(FieldError::new(
                "notice.origin",
                format!(
                    "must be this node's district {} (or left empty)",
                    ctx.district
                ),
            ));
        }
        n.created_at = Some(ts_to_pb(now));
        let kind: NoticeKind = enum_from_wire("notice.kind", n.kind)?;
        let category: Category = enum_from_wire("notice.category", n.category)?;
        if n.urgency == 0 {
            n.urgency = if kind == NoticeKind::Pregnancy {
                Urgency::Urgent
            } else {
                Urgency::Normal
            } as i32;
        }
        let urgency: Urgency = enum_from_wire("notice.urgency", n.urgency)?;
        let policy = ctx.deadlines.policy.rule_for(category, kind, urgency).reply;
        if n.reply_required == 0 {
            n.reply_required = policy as i32;
        } else if policy == ReplySort::Feedback && n.reply_required == ReplySort::Receipt as i32 {
            return Err(FieldError::new(
                "notice.reply_required",
                "the reply policy requires FEEDBACK for this notice",
            ));
        }
        let content = NoticeContent::parse(
            &n,
            &ParseContext {
                today: ctx.deadlines.local_date(now),
            },
        )?;
        if ctx.district.covers(&content.destination) {
            return Err(FieldError::new(
                "notice.destination",
                format!("{} is served by this node itself", content.destination),
            ));
        }
        let route = ctx.route_for(content.destination.as_str()).ok_or_else(|| {
            FieldError::new(
                "notice.destination",
                format!(
                    "no peer route reaches {}; add one with `migrex peer add`",
                    content.destination
                ),
            )
        })?;
        Ok((content, route.prefix.to_string()))
    }

    /// Records a reply written here and queues it for `target`'s node, in `tx`.
    async fn queue_reply(
        &self,
        tx: &mut Tx,
        notice_id: &str,
        target: &str,
        body: ReplyBody,
        now: OffsetDateTime,
    ) -> Result<String, Status> {
        let reply = Reply {
            reply_id: Uuid::now_v7(),
            notice_id: Uuid::parse_str(notice_id)
                .map_err(|_| Status::internal("stored notice id is not a UUID"))?,
            author: self.ctx.district.clone(),
            body,
        };
        let route = match self.ctx.route_for(target) {
            Some(r) => r.prefix.to_string(),
            None => {
                tracing::warn!(target = %target, "no route to the notice's other node; the reply waits in the outbox until one is added");
                String::new()
            }
        };
        tx.insert_reply(&reply, Direction::Outbound, now)
            .await
            .map_err(internal)?;
        tx.enqueue(
            &route,
            target,
            ItemKind::Reply,
            notice_id,
            Some(&reply.reply_id.to_string()),
            &reply.to_wire().encode_to_vec(),
            now,
        )
        .await
        .map_err(internal)?;
        Ok(route)
    }

    /// A reply written here (receipt, feedback, withdrawal): checked by the
    /// reply rules, recorded, and queued for the notice's other node, in one
    /// transaction.
    async fn reply(
        &self,
        id: &str,
        body: ReplyBody,
        now: OffsetDateTime,
        by: &Caller,
    ) -> Result<Response<pb::Notice>, Status> {
        let mut tx = self.ctx.store.begin().await.map_err(internal)?;
        let rec = self.load(&mut tx, id).await?;
        let life = &rec.life;
        match life.check(life.own_party(), &body, now, "id") {
            Ok(Verdict::Apply) => {}
            Ok(Verdict::AlreadyDone) => return self.finish(tx, id, None).await,
            Err(e) => return Err(domain_status(e)),
        }
        let target = match life.own_party() {
            Party::Destination => rec.content.origin.clone(),
            _ => rec.content.destination.clone(),
        };
        match &body {
            ReplyBody::Receipt {
                acknowledged_at,
                acknowledged_by,
            } => {
                tx.set_acknowledged(id, *acknowledged_at, acknowledged_by)
                    .await
            }
            ReplyBody::Feedback(f) => tx.set_answered(id, &f.to_wire(), f.answered_at).await,
            ReplyBody::Withdrawal {
                withdrawn_at,
                reason,
            } => tx.set_withdrawn(id, *withdrawn_at, reason).await,
        }
        .map_err(store_status)?;
        let sort = body.sort_code();
        let route = self.queue_reply(&mut tx, id, &target, body, now).await?;
        tracing::info!(notice = %id, sort, by = %by.name, "reply recorded and queued");
        self.finish(tx, id, Some(route)).await
    }

    async fn load(&self, tx: &mut Tx, id: &str) -> Result<NoticeRecord, Status> {
        tx.get_notice(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("id: no notice {id} on this node")))
    }

    async fn finish(
        &self,
        tx: Tx,
        id: &str,
        route: Option<String>,
    ) -> Result<Response<pb::Notice>, Status> {
        tx.commit().await.map_err(internal)?;
        if let Some(r) = route {
            self.ctx.wake(&r);
        }
        let rec = self
            .ctx
            .store
            .get_notice(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::internal("notice vanished"))?;
        Ok(Response::new(self.view(&rec)))
    }
}

#[tonic::async_trait]
impl pb::desk_server::Desk for DeskService {
    async fn submit_notice(
        &self,
        req: Request<pb::SubmitNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = self.caller(&req, true).await?;
        let n = req
            .into_inner()
            .notice
            .ok_or_else(|| Status::invalid_argument("notice: is required"))?;
        let now = self.ctx.now();
        let (content, route) = self.prepare(n, now).map_err(field_status)?;
        self.ctx
            .store
            .insert_outbound(&[(content.clone(), route.clone())], now)
            .await
            .map_err(store_status)?;
        self.ctx.wake(&route);
        tracing::info!(notice = %content.id, destination = %content.destination, kind = content.kind().as_str_name(), subject = %content.subject.id_number.masked(), by = %caller.name, "notice queued");
        let rec = self
            .ctx
            .store
            .get_notice(&content.id.to_string())
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::internal("notice vanished"))?;
        Ok(Response::new(self.view(&rec)))
    }

    async fn submit_notices(
        &self,
        req: Request<pb::SubmitNoticesRequest>,
    ) -> Result<Response<pb::SubmitNoticesResponse>, Status> {
        let caller = self.caller(&req, true).await?;
        let r = req.into_inner();
        if r.notices.len() > 10_000 {
            return Err(Status::resource_exhausted(format!(
                "notices: {} in one call; send at most 10000",
                r.notices.len()
            )));
        }
        let now = self.ctx.now();
        let mut results = Vec::with_capacity(r.notices.len());
        let mut ready = Vec::with_capacity(r.notices.len());
        let mut seen = std::collections::HashSet::with_capacity(r.notices.len());
        for (i, n) in r.notices.into_iter().enumerate() {
            let mut result = pb::SubmitResult {
                index: i as u32,
                ..Default::default()
            };
            match self.prepare(n, now) {
                Ok((c, route)) => {
                    result.notice_id = c.id.to_string();
                    if !seen.insert(c.id) {
                        result.error = Some(crate::exchange::item_error(
                            tonic::Code::AlreadyExists,
                            "notice.id: appears twice in this batch",
                            "notice.id",
                        ));
                    } else {
                        ready.push((c, route));
                    }
                }
                Err(e) => result.error = Some(crate::exchange::invalid(e)),
            }
            results.push(result);
        }
        let refused = results.iter().filter(|x| x.error.is_some()).count() as u32;
        let mut committed = false;
        if refused == 0 && !r.validate_only {
            self.ctx
                .store
                .insert_outbound(&ready, now)
                .await
                .map_err(store_status)?;
            committed = true;
            let mut routes: Vec<&String> = ready.iter().map(|(_, r)| r).collect();
            routes.dedup();
            for route in routes {
                self.ctx.wake(route);
            }
            tracing::info!(count = ready.len(), by = %caller.name, "notices queued from a batch");
        }
        Ok(Response::new(pb::SubmitNoticesResponse {
            accepted: results.len() as u32 - refused,
            refused,
            committed,
            results,
        }))
    }

    async fn get_notice(
        &self,
        req: Request<pb::GetNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        self.caller(&req, false).await?;
        let id = parse_id("id", &req.get_ref().id)?;
        let rec = self
            .ctx
            .store
            .get_notice(&id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("id: no notice {id} on this node")))?;
        Ok(Response::new(self.view(&rec)))
    }

    async fn list_pending(
        &self,
        req: Request<pb::ListPendingRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        self.caller(&req, false).await?;
        let r = req.into_inner();
        let (limit, offset) = page(r.page_size, &r.page_token)?;
        let now = self.ctx.now();
        let f = PendingFilter {
            kind: filter_enum::<NoticeKind>("kind", r.kind)?,
            category: filter_enum::<Category>("category", r.category)?,
            urgency: filter_enum::<Urgency>("urgency", r.urgency)?,
            overdue_only: r.overdue_only,
            due_before: (r.due_within_days > 0)
                .then(|| now + time::Duration::days(i64::from(r.due_within_days))),
            limit,
            offset,
        };
        let recs = self
            .ctx
            .store
            .list_pending(&f, now)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::ListNoticesResponse {
            next_page_token: next_token(recs.len(), limit, offset),
            notices: recs.iter().map(|r| r.to_pb(now)).collect(),
        }))
    }

    async fn acknowledge_notice(
        &self,
        req: Request<pb::AcknowledgeNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = self.caller(&req, true).await?;
        let id = parse_id("id", &req.get_ref().id)?;
        let now = self.ctx.now();
        let body = ReplyBody::Receipt {
            acknowledged_at: now,
            acknowledged_by: caller.name.clone(),
        };
        self.reply(&id, body, now, &caller).await
    }

    async fn submit_feedback(
        &self,
        req: Request<pb::SubmitFeedbackRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = self.caller(&req, true).await?;
        let r = req.into_inner();
        let id = parse_id("id", &r.id)?;
        let now = self.ctx.now();
        let feedback = FeedbackContent::parse_answer(
            &r.feedback.unwrap_or_default(),
            caller.name.clone(),
            now,
        )
        .map_err(field_status)?;
        self.reply(&id, ReplyBody::Feedback(feedback), now, &caller)
            .await
    }

    async fn list_notices(
        &self,
        req: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        self.caller(&req, false).await?;
        let r = req.into_inner();
        let (limit, offset) = page(r.page_size, &r.page_token)?;
        let ts = |field: &str, t: Option<prost_types::Timestamp>| {
            t.map(|t| ts_from_pb(field, Some(&t)))
                .transpose()
                .map_err(field_status)
        };
        let peer = r.peer.trim();
        if !peer.is_empty() && (!peer.bytes().all(|b| b.is_ascii_digit()) || peer.len() > 12) {
            return Err(Status::invalid_argument(
                "peer: must be a district code or a prefix of one (digits)",
            ));
        }
        let f = NoticeFilter {
            direction: filter_enum::<Direction>("direction", r.direction)?,
            status: filter_enum::<NoticeStatus>("status", r.status)?,
            kind: filter_enum::<NoticeKind>("kind", r.kind)?,
            peer_prefix: (!peer.is_empty()).then(|| peer.to_string()),
            subject_id: if r.subject_id_number.trim().is_empty() {
                None
            } else {
                Some(
                    crate::domain::IdNumber::parse("subject_id_number", &r.subject_id_number)
                        .map_err(field_status)?
                        .as_str()
                        .to_string(),
                )
            },
            created_from: ts("created_from", r.created_from)?,
            created_to: ts("created_to", r.created_to)?,
            limit,
            offset,
        };
        let now = self.ctx.now();
        let recs = self.ctx.store.list_notices(&f).await.map_err(internal)?;
        Ok(Response::new(pb::ListNoticesResponse {
            next_page_token: next_token(recs.len(), limit, offset),
            notices: recs.iter().map(|r| r.to_pb(now)).collect(),
        }))
    }

    async fn withdraw_notice(
        &self,
        req: Request<pb::WithdrawNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = self.caller(&req, true).await?;
        let r = req.into_inner();
        let id = parse_id("id", &r.id)?;
        let reason = optional_text("reason", &r.reason, 500).map_err(field_status)?;
        let now = self.ctx.now();
        let body = ReplyBody::Withdrawal {
            withdrawn_at: now,
            reason,
        };
        self.reply(&id, body, now, &caller).await
    }
}

/// A desk client as staff tools use it: TLS trusting the network CA, and the
/// bearer token on every call.
pub mod client {
    use crate::pb::desk_client::DeskClient;
    use tonic::metadata::{Ascii, MetadataValue};
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

    #[derive(Clone)]
    pub struct Bearer(MetadataValue<Ascii>);

    impl tonic::service::Interceptor for Bearer {
        fn call(
            &mut self,
            mut req: tonic::Request<()>,
        ) -> Result<tonic::Request<()>, tonic::Status> {
            req.metadata_mut().insert("authorization", self.0.clone());
            Ok(req)
        }
    }

    pub type Desk = DeskClient<InterceptedService<Channel, Bearer>>;
    pub type Stats = crate::pb::stats_client::StatsClient<InterceptedService<Channel, Bearer>>;

    #[derive(Debug, thiserror::Error)]
    pub enum ConnectError {
        #[error("--node: '{0}' is not an https:// URL")]
        Url(String),
        #[error("--token: not a valid token")]
        Token,
        /// `reason` is the innermost cause (e.g. "Connection refused"), not the
        /// whole chain of wrappers that repeat each other.
        #[error("cannot reach {url}: {reason}")]
        Transport { url: String, reason: String },
    }

    pub async fn channel(url: &str, ca_pem: &str) -> Result<Channel, ConnectError> {
        if !url.starts_with("https://") {
            return Err(ConnectError::Url(url.into()));
        }
        let t = |e: tonic::transport::Error| {
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            ConnectError::Transport {
                url: url.to_string(),
                reason: cause.to_string(),
            }
        };
        Endpoint::from_shared(url.to_string())
            .map_err(|_| ConnectError::Url(url.into()))?
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)))
            .map_err(t)?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(t)
    }

    pub fn bearer(token: &str) -> Result<Bearer, ConnectError> {
        format!("Bearer {}", token.trim())
            .parse()
            .map(Bearer)
            .map_err(|_| ConnectError::Token)
    }

    pub async fn connect(url: &str, ca_pem: &str, token: &str) -> Result<Desk, ConnectError> {
        Ok(DeskClient::with_interceptor(
            channel(url, ca_pem).await?,
            bearer(token)?,
        ))
    }

    pub async fn connect_stats(
        url: &str,
        ca_pem: &str,
        token: &str,
    ) -> Result<Stats, ConnectError> {
        Ok(crate::pb::stats_client::StatsClient::with_interceptor(
            channel(url, ca_pem).await?,
            bearer(token)?,
        ))
    }
}
