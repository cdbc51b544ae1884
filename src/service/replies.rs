//! Replies written here: a clerk signs for (签收) or answers (核查反馈) a
//! notice we received, or withdraws (撤回) one we sent. Each is checked by
//! the reply rules (`domain::Lifecycle::check`, the same the exchange
//! applies to a peer's reply), recorded, and queued for the notice's other
//! node, in one transaction.

use super::{Result, audit, notices};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::{
    Delivery, Direction, DistrictCode, FeedbackContent, NoticeContent, Party, Reminder, Reply,
    ReplyBody, Verdict, optional_text, parse_uuid,
};
use crate::pb;
use crate::store::{ItemKind, NoticeRecord, Tx};
use prost::Message;
use uuid::Uuid;

/// What a caller may do to a notice now: sign for it (签收), answer it
/// (核查反馈), withdraw it (撤回). Decided by the same role checks and the
/// same reply rules (`Lifecycle::check`, as this node's own party) that the
/// actions run, so a page offers an action exactly when taking it would be
/// accepted (a second signature, which changes nothing, is not offered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    pub sign: bool,
    pub answer: bool,
    pub withdraw: bool,
    /// 催办 (a reminder to the destination).
    pub remind: bool,
}

pub fn actions(ctx: &NodeCtx, caller: &Caller, rec: &NoticeRecord) -> Actions {
    let now = ctx.now();
    let applies = |body: ReplyBody| {
        rec.life.check(rec.life.own_party(), &body, now, "id") == Ok(Verdict::Apply)
    };
    let writes = caller.require_write().is_ok();
    Actions {
        sign: writes
            && applies(ReplyBody::Receipt {
                acknowledged_at: now,
                acknowledged_by: caller.name.clone(),
            }),
        answer: writes
            && applies(ReplyBody::Feedback(FeedbackContent {
                result: crate::domain::FeedbackResult::Confirmed,
                remarks: String::new(),
                corrections: Default::default(),
                responsible_district: None,
                answered_by: caller.name.clone(),
                answered_at: now,
            })),
        withdraw: caller.require_supervisor().is_ok()
            && applies(ReplyBody::Withdrawal {
                withdrawn_at: now,
                reason: String::new(),
            }),
        remind: writes
            && applies(ReplyBody::Reminder(Reminder {
                reminded_at: now,
                reminded_by: caller.name.clone(),
                number: rec.life.reminders + 1,
            })),
    }
}

/// 催办: reminds the destination of a notice we sent that is past its
/// deadline or due within three days, at most once a day; it travels like
/// any reply and the destination's 待办 counts it.
pub async fn remind(ctx: &NodeCtx, caller: &Caller, id: Uuid) -> Result<NoticeRecord> {
    caller.require_write()?;
    let notice_id = id.to_string();
    let held = ctx
        .store
        .get_notice(&notice_id)
        .await?
        .ok_or_else(|| notices::not_found(&notice_id))?;
    let body = ReplyBody::Reminder(Reminder {
        reminded_at: ctx.now(),
        reminded_by: caller.name.clone(),
        number: held.life.reminders + 1,
    });
    reply(ctx, caller, id, body).await
}

/// Signs for an inbound notice; signing twice changes nothing.
pub async fn acknowledge(ctx: &NodeCtx, caller: &Caller, id: Uuid) -> Result<NoticeRecord> {
    caller.require_write()?;
    let body = ReplyBody::Receipt {
        acknowledged_at: ctx.now(),
        acknowledged_by: caller.name.clone(),
    };
    reply(ctx, caller, id, body).await
}

/// Answers an inbound notice that needs feedback.
pub async fn feedback(
    ctx: &NodeCtx,
    caller: &Caller,
    id: Uuid,
    answer: &pb::Feedback,
) -> Result<NoticeRecord> {
    caller.require_write()?;
    let feedback = FeedbackContent::parse_answer(answer, caller.name.clone(), ctx.now())?;
    reply(ctx, caller, id, ReplyBody::Feedback(feedback)).await
}

/// Withdraws a notice this node sent, until it is answered.
pub async fn withdraw(
    ctx: &NodeCtx,
    caller: &Caller,
    id: Uuid,
    reason: &str,
) -> Result<NoticeRecord> {
    caller.require_supervisor()?;
    let body = ReplyBody::Withdrawal {
        withdrawn_at: ctx.now(),
        reason: optional_text("reason", reason, 500)?,
    };
    reply(ctx, caller, id, body).await
}

async fn reply(ctx: &NodeCtx, caller: &Caller, id: Uuid, body: ReplyBody) -> Result<NoticeRecord> {
    let notice_id = id.to_string();
    let mut tx = ctx.store.begin().await?;
    let Some(rec) = tx.get_notice(&notice_id).await? else {
        return Err(notices::not_found(&notice_id).into());
    };
    let operation = match &body {
        ReplyBody::Receipt { .. } => "reply.receipt",
        ReplyBody::Feedback(_) => "reply.feedback",
        ReplyBody::Withdrawal { .. } => "reply.withdraw",
        ReplyBody::DeadlineChange(_) => "reply.deadline",
        ReplyBody::Delivery(_) => "reply.delivery",
        ReplyBody::Reminder(_) => "reply.remind",
    };
    let sort = body.sort_code();
    let reply_id = match &body {
        ReplyBody::Reminder(r) => Reply::reminder_id(id, r.number),
        _ => Uuid::now_v7(),
    };
    let route = record_own(ctx, &mut tx, &rec, body, reply_id, "id").await?;
    if route.is_some() {
        let subject = rec
            .content
            .subject
            .as_ref()
            .map_or("", |s| s.id_number.as_str());
        let entries = audit::accesses(&ctx.audit_key, caller, operation, [(rec.id(), subject)]);
        tx.append_audit(&entries, ctx.now()).await?;
        tracing::info!(notice = %id, sort, by = %caller.name, "reply recorded and queued");
    }
    tx.commit().await?;
    if let Some(r) = route {
        ctx.wake(&r);
    }
    notices::stored(ctx, &notice_id).await
}

/// A reply this node writes on `rec`, in `tx`: judged by the reply rules
/// as this node's own party, recorded on the notice, kept, and queued for
/// the notice's other node under `reply_id`. Returns the route to wake
/// after the commit, or None when the notice already holds it.
/// `notice_field` names the notice in the caller's request.
pub(crate) async fn record_own(
    ctx: &NodeCtx,
    tx: &mut Tx,
    rec: &NoticeRecord,
    body: ReplyBody,
    reply_id: Uuid,
    notice_field: &str,
) -> Result<Option<String>> {
    let party = rec.life.own_party();
    if rec.life.check(party, &body, ctx.now(), notice_field)? == Verdict::AlreadyDone {
        return Ok(None);
    }
    tx.record_reply(rec.id(), &body).await?;
    let target = match party {
        Party::Destination => &rec.content.origin,
        _ => &rec.content.destination,
    };
    let reply = Reply {
        reply_id,
        notice_id: parse_uuid("id", rec.id())?,
        author: ctx.district.clone(),
        body,
        recipient: DistrictCode::parse("notice.recipient", target).ok(),
    };
    Ok(Some(queue(ctx, tx, &reply, target).await?))
}

/// Tells the origin of a notice that reached this node through a relay
/// when it arrived and the deadline counted (a `Delivery` reply, queued in
/// the receiving transaction `tx`): the relay acknowledged it to the
/// origin without them. Returns the route to wake after the commit.
pub(crate) async fn queue_delivery(
    ctx: &NodeCtx,
    tx: &mut Tx,
    notice: &NoticeContent,
    delivery: Delivery,
) -> Result<String> {
    let reply = Reply {
        reply_id: Reply::delivery_id(notice.id),
        notice_id: notice.id,
        author: ctx.district.clone(),
        body: ReplyBody::Delivery(delivery),
        recipient: Some(notice.origin.clone()),
    };
    queue(ctx, tx, &reply, notice.origin.as_str()).await
}

/// Records a reply written here and queues it for `target`'s node, in `tx`;
/// returns the route it waits for.
async fn queue(ctx: &NodeCtx, tx: &mut Tx, reply: &Reply, target: &str) -> Result<String> {
    let now = ctx.now();
    let route = match ctx.route_for(target) {
        Some(r) => r.prefix.to_string(),
        None => {
            tracing::warn!(target = %target, "no route to the notice's other node; the reply waits in the outbox until one is added");
            String::new()
        }
    };
    tx.insert_reply(reply, Direction::Outbound, now).await?;
    tx.enqueue(
        &route,
        target,
        ItemKind::Reply,
        &reply.notice_id.to_string(),
        Some(&reply.reply_id.to_string()),
        &reply.to_wire().encode_to_vec(),
        now,
    )
    .await?;
    Ok(route)
}
