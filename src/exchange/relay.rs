//! The relay's side of the exchange (中转): notices and replies this node
//! takes for districts the directory lists it as relay for (to them or
//! from them), stored durably with the same ids and forwarded through its
//! own outbox (`ItemKind::RelayNotice`, `ItemKind::RelayReply`), in the
//! order they came.
//!
//! A relayed notice is acknowledged to its sender with `relayed` set and
//! no instants: the destination acknowledges it to the relay, and tells the
//! origin when it arrived with a `Delivery` reply, which travels back like
//! any reply. An item handed over again is answered as the first time
//! (same id, same content) or refused (same id, other content), and is
//! forwarded once. Whether the caller may hand over an item the author
//! wrote was checked before (`Routes::may_speak_for`).

use crate::context::NodeCtx;
use crate::domain::{DistrictCode, NoticeContent, Reply};
use crate::grpc::item_error;
use crate::pb;
use crate::store::{ItemKind, RelayItem, StoreError, Tx};
use prost::Message;
use std::collections::HashMap;
use time::OffsetDateTime;
use tonic::Code;

/// A notice this node forwards, and the route it waits for.
pub struct Onward<'a> {
    pub content: &'a NoticeContent,
    pub wire: &'a pb::Notice,
    pub route: String,
}

/// The route a relayed item for `target` waits for, or the refusal of an
/// item this node is not the relay of (or cannot reach yet).
pub fn route(
    ctx: &NodeCtx,
    author: &str,
    target: &str,
    field: &str,
) -> Result<String, pb::ItemError> {
    if !ctx.routes.relays(author, target) {
        return Err(item_error(
            Code::FailedPrecondition,
            format!(
                "{field} {target} is not served by this node ({}) nor relayed by it",
                ctx.district
            ),
            field,
        ));
    }
    ctx.route_for(target)
        .map(|r| r.prefix.to_string())
        .ok_or_else(|| {
            item_error(
                Code::Unavailable,
                format!("{field} {target}: this relay has no route to it yet; send again later"),
                field,
            )
        })
}

/// Takes `items` (in the order they came) for forwarding in `tx`; returns
/// the ack of each and the routes to wake after the commit.
pub async fn take_notices(
    ctx: &NodeCtx,
    tx: &mut Tx,
    source: &DistrictCode,
    items: &[Onward<'_>],
    now: OffsetDateTime,
) -> Result<(Vec<pb::NoticeAck>, Vec<String>), StoreError> {
    let ids: Vec<String> = items.iter().map(|i| i.content.id.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut known = tx.relayed_hashes(ItemKind::RelayNotice, &refs).await?;
    let hashes: Vec<Vec<u8>> = items.iter().map(|i| i.content.content_hash()).collect();
    let mut taken = Vec::new();
    let mut acks = Vec::with_capacity(items.len());
    for ((item, id), hash) in items.iter().zip(&ids).zip(&hashes) {
        if let Some(stored) = known.get(id.as_str()) {
            acks.push(if stored == hash {
                relayed(id)
            } else {
                pb::NoticeAck {
                    notice_id: id.clone(),
                    error: Some(item_error(
                        Code::AlreadyExists,
                        format!("notice {id} was relayed before with other content"),
                        "notice.id",
                    )),
                    ..Default::default()
                }
            });
            continue;
        }
        known.insert(id.clone(), hash.clone());
        taken.push(RelayItem {
            kind: ItemKind::RelayNotice,
            notice_id: id,
            reply_id: None,
            content_hash: hash,
            source: source.as_str(),
            author: item.content.origin.as_str(),
            target: item.content.destination.as_str(),
            route: &item.route,
            payload: item.wire.encode_to_vec(),
        });
        acks.push(relayed(id));
    }
    tx.accept_relayed(&taken, now).await?;
    let mut routes: Vec<String> = taken.iter().map(|t| t.route.to_string()).collect();
    routes.dedup();
    if !taken.is_empty() {
        ctx.metrics.relayed(taken.len());
        tracing::debug!(source = %source, items = taken.len(), "notices taken for forwarding");
    }
    Ok((acks, routes))
}

fn relayed(id: &str) -> pb::NoticeAck {
    pb::NoticeAck {
        notice_id: id.to_string(),
        relayed: true,
        ..Default::default()
    }
}

/// Takes one reply for forwarding to `recipient` in `tx`; returns its ack
/// and the route to wake after the commit (None: nothing new was taken).
pub async fn take_reply(
    ctx: &NodeCtx,
    tx: &mut Tx,
    source: &DistrictCode,
    (reply, proof): (&Reply, Option<pb::Proof>),
    recipient: &DistrictCode,
    now: OffsetDateTime,
) -> Result<(pb::ReplyAck, Option<String>), StoreError> {
    let id = reply.reply_id.to_string();
    let refuse = |error| pb::ReplyAck {
        reply_id: id.clone(),
        error: Some(error),
        late: false,
    };
    let route = match route(
        ctx,
        reply.author.as_str(),
        recipient.as_str(),
        "reply.recipient",
    ) {
        Ok(r) => r,
        Err(e) => return Ok((refuse(e), None)),
    };
    let hash = reply.content_hash();
    let known: HashMap<String, Vec<u8>> = tx.relayed_hashes(ItemKind::RelayReply, &[&id]).await?;
    if let Some(stored) = known.get(&id) {
        return Ok((
            if *stored == hash {
                pb::ReplyAck {
                    reply_id: id.clone(),
                    error: None,
                    late: false,
                }
            } else {
                refuse(item_error(
                    Code::AlreadyExists,
                    "this reply id was relayed before with other content",
                    "reply.reply_id",
                ))
            },
            None,
        ));
    }
    let notice_id = reply.notice_id.to_string();
    tx.accept_relayed(
        &[RelayItem {
            kind: ItemKind::RelayReply,
            notice_id: &notice_id,
            reply_id: Some(&id),
            content_hash: &hash,
            source: source.as_str(),
            author: reply.author.as_str(),
            target: recipient.as_str(),
            route: &route,
            payload: pb::Reply {
                proof,
                ..reply.to_wire()
            }
            .encode_to_vec(),
        }],
        now,
    )
    .await?;
    ctx.metrics.relayed(1);
    Ok((
        pb::ReplyAck {
            reply_id: id,
            error: None,
            late: false,
        },
        Some(route),
    ))
}
