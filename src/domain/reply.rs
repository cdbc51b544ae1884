//! Replies to a notice as they travel between nodes: receipts (签收),
//! verification feedback (核查反馈) and deadline changes (时限更新) from the
//! destination, withdrawals (撤回) from the origin. Which of them a notice accepts is `lifecycle`'s business.

use super::notice::{parse_uuid, ts_from_pb, ts_to_pb};
use super::{
    DistrictCode, FeedbackResult, FieldError, enum_from_wire, optional_text, required_text,
};
use crate::pb;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Verification feedback (核查反馈) as given by the destination's clerk.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackContent {
    pub result: FeedbackResult,
    pub remarks: String,
    pub corrections: BTreeMap<String, String>,
    pub responsible_district: Option<DistrictCode>,
    pub answered_by: String,
    pub answered_at: OffsetDateTime,
}

impl FeedbackContent {
    /// Parses the clerk's part; `answered_by`/`answered_at` come from the node.
    pub fn parse_answer(
        f: &pb::Feedback,
        answered_by: String,
        answered_at: OffsetDateTime,
    ) -> Result<Self, FieldError> {
        let result: FeedbackResult = enum_from_wire("feedback.result", f.result)?;
        let mut corrections = BTreeMap::new();
        for (k, v) in &f.corrections {
            let key = required_text("feedback.corrections", k, 64)?;
            corrections.insert(
                key,
                optional_text(&format!("feedback.corrections.{k}"), v, 200)?,
            );
        }
        if result == FeedbackResult::Corrected && corrections.is_empty() {
            return Err(FieldError::new(
                "feedback.corrections",
                "CORRECTED feedback must name at least one corrected field",
            ));
        }
        let responsible_district = if f.responsible_district.trim().is_empty() {
            None
        } else {
            Some(DistrictCode::parse(
                "feedback.responsible_district",
                &f.responsible_district,
            )?)
        };
        Ok(FeedbackContent {
            result,
            remarks: optional_text("feedback.remarks", &f.remarks, 2000)?,
            corrections,
            responsible_district,
            answered_by,
            answered_at,
        })
    }

    fn parse(f: &pb::Feedback) -> Result<Self, FieldError> {
        let answered_at = ts_from_pb("feedback.answered_at", f.answered_at.as_ref())?;
        let answered_by = required_text("feedback.answered_by", &f.answered_by, 100)?;
        Self::parse_answer(f, answered_by, answered_at)
    }

    pub fn to_wire(&self) -> pb::Feedback {
        pb::Feedback {
            result: self.result as i32,
            remarks: self.remarks.clone(),
            corrections: self.corrections.clone().into_iter().collect(),
            responsible_district: self
                .responsible_district
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            answered_by: self.answered_by.clone(),
            answered_at: Some(ts_to_pb(self.answered_at)),
        }
    }
}

/// A reply travelling between nodes: receipt or feedback from the
/// destination, withdrawal from the origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub reply_id: Uuid,
    pub notice_id: Uuid,
    pub author: DistrictCode,
    pub body: ReplyBody,
    /// The district the reply is for, which relays forward by (None in
    /// replies written before relays).
    pub recipient: Option<DistrictCode>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    Receipt {
        acknowledged_at: OffsetDateTime,
        acknowledged_by: String,
    },
    Feedback(FeedbackContent),
    Withdrawal {
        withdrawn_at: OffsetDateTime,
        reason: String,
    },
    /// The destination counted a provisional deadline again with a newer
    /// holiday schedule.
    DeadlineChange(DeadlineChange),
    /// The destination's acknowledgement of a notice that reached it
    /// through a relay (送达回执).
    Delivery(Delivery),
    /// The origin asks again for an answer that is late or due soon (催办).
    Reminder(Reminder),
}

/// A reminder (催办): when, by whom, and which one it is for its notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub reminded_at: OffsetDateTime,
    pub reminded_by: String,
    pub number: u32,
}

/// When a notice reached its destination, and the deadline counted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub received_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub provisional: bool,
}

/// A provisional deadline counted again (时限更新).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineChange {
    pub changed_at: OffsetDateTime,
    /// The deadline it replaces, as both sides held it.
    pub previous_due_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    /// Still past the schedule's last covered year.
    pub provisional: bool,
}

impl DeadlineChange {
    fn parse(d: &pb::DeadlineChange) -> Result<Self, FieldError> {
        let f = "reply.deadline_change";
        Ok(DeadlineChange {
            changed_at: ts_from_pb(&format!("{f}.changed_at"), d.changed_at.as_ref())?,
            previous_due_at: ts_from_pb(
                &format!("{f}.previous_due_at"),
                d.previous_due_at.as_ref(),
            )?,
            due_at: ts_from_pb(&format!("{f}.due_at"), d.due_at.as_ref())?,
            provisional: d.provisional,
        })
    }

    pub fn to_wire(&self) -> pb::DeadlineChange {
        pb::DeadlineChange {
            changed_at: Some(ts_to_pb(self.changed_at)),
            previous_due_at: Some(ts_to_pb(self.previous_due_at)),
            due_at: Some(ts_to_pb(self.due_at)),
            provisional: self.provisional,
        }
    }
}

impl ReplyBody {
    /// The reply sort of a deadline change, as stored.
    pub const DEADLINE_CHANGE: i64 = 4;

    /// 1 receipt, 2 feedback, 3 withdrawal, 4 deadline change, 5
    /// delivery, 6 reminder: the stored sort code.
    pub fn sort_code(&self) -> i64 {
        match self {
            ReplyBody::Receipt { .. } => 1,
            ReplyBody::Feedback(_) => 2,
            ReplyBody::Withdrawal { .. } => 3,
            ReplyBody::DeadlineChange(_) => Self::DEADLINE_CHANGE,
            ReplyBody::Delivery(_) => 5,
            ReplyBody::Reminder(_) => 6,
        }
    }
}

impl Reply {
    pub fn parse(r: &pb::Reply) -> Result<Self, FieldError> {
        use pb::reply::Body;
        let body = match r.body.as_ref().ok_or_else(|| {
            FieldError::new(
                "reply.body",
                "is required (receipt, feedback, withdrawal, deadline_change, delivery or reminder)",
            )
        })? {
            Body::Receipt(x) => ReplyBody::Receipt {
                acknowledged_at: ts_from_pb(
                    "reply.receipt.acknowledged_at",
                    x.acknowledged_at.as_ref(),
                )?,
                acknowledged_by: required_text(
                    "reply.receipt.acknowledged_by",
                    &x.acknowledged_by,
                    100,
                )?,
            },
            Body::Feedback(f) => {
                ReplyBody::Feedback(FeedbackContent::parse(f).map_err(|e| e.within("reply"))?)
            }
            Body::Withdrawal(w) => ReplyBody::Withdrawal {
                withdrawn_at: ts_from_pb("reply.withdrawal.withdrawn_at", w.withdrawn_at.as_ref())?,
                reason: optional_text("reply.withdrawal.reason", &w.reason, 500)?,
            },
            Body::DeadlineChange(d) => ReplyBody::DeadlineChange(DeadlineChange::parse(d)?),
            Body::Delivery(d) => ReplyBody::Delivery(Delivery {
                received_at: ts_from_pb("reply.delivery.received_at", d.received_at.as_ref())?,
                due_at: ts_from_pb("reply.delivery.due_at", d.due_at.as_ref())?,
                provisional: d.due_provisional,
            }),
            Body::Reminder(x) => ReplyBody::Reminder(Reminder {
                reminded_at: ts_from_pb("reply.reminder.reminded_at", x.reminded_at.as_ref())?,
                reminded_by: required_text("reply.reminder.reminded_by", &x.reminded_by, 100)?,
                number: match x.number {
                    0 => return Err(FieldError::new("reply.reminder.number", "is required")),
                    n => n,
                },
            }),
        };
        let recipient = match r.recipient.trim() {
            "" => None,
            code => Some(DistrictCode::parse("reply.recipient", code)?),
        };
        Ok(Reply {
            reply_id: parse_uuid("reply.reply_id", &r.reply_id)?,
            notice_id: parse_uuid("reply.notice_id", &r.notice_id)?,
            author: DistrictCode::parse("reply.author", &r.author)?,
            body,
            recipient,
        })
    }

    pub fn to_wire(&self) -> pb::Reply {
        use pb::reply::Body;
        pb::Reply {
            reply_id: self.reply_id.to_string(),
            notice_id: self.notice_id.to_string(),
            author: self.author.to_string(),
            body: Some(match &self.body {
                ReplyBody::Receipt {
                    acknowledged_at,
                    acknowledged_by,
                } => Body::Receipt(pb::Receipt {
                    acknowledged_at: Some(ts_to_pb(*acknowledged_at)),
                    acknowledged_by: acknowledged_by.clone(),
                }),
                ReplyBody::Feedback(f) => Body::Feedback(f.to_wire()),
                ReplyBody::Withdrawal {
                    withdrawn_at,
                    reason,
                } => Body::Withdrawal(pb::Withdrawal {
                    withdrawn_at: Some(ts_to_pb(*withdrawn_at)),
                    reason: reason.clone(),
                }),
                ReplyBody::DeadlineChange(d) => Body::DeadlineChange(d.to_wire()),
                ReplyBody::Delivery(d) => Body::Delivery(pb::Delivery {
                    received_at: Some(ts_to_pb(d.received_at)),
                    due_at: Some(ts_to_pb(d.due_at)),
                    due_provisional: d.provisional,
                }),
                ReplyBody::Reminder(r) => Body::Reminder(pb::Reminder {
                    reminded_at: Some(ts_to_pb(r.reminded_at)),
                    reminded_by: r.reminded_by.clone(),
                    number: r.number,
                }),
            }),
            recipient: self
                .recipient
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            proof: None,
        }
    }

    pub fn content_hash(&self) -> Vec<u8> {
        Sha256::digest(self.to_wire().encode_to_vec()).to_vec()
    }

    /// A delivery's id, made from its notice's: a notice is delivered once.
    pub fn delivery_id(notice_id: Uuid) -> Uuid {
        let digest = Sha256::digest([b"delivery:".as_slice(), notice_id.as_bytes()].concat());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// A reminder's id, made from its notice's and its number: the same
    /// reminder asked twice (two clicks, two replicas) is one reply.
    pub fn reminder_id(notice_id: Uuid, number: u32) -> Uuid {
        let digest = Sha256::digest(
            [
                b"reminder:".as_slice(),
                notice_id.as_bytes(),
                &number.to_be_bytes(),
            ]
            .concat(),
        );
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// A deadline change's id, made from what it says: two replicas of a
    /// node counting the same deadline again write one reply, not two.
    pub fn deadline_change_id(notice_id: Uuid, change: &DeadlineChange) -> Uuid {
        let mut h = Sha256::new();
        h.update(notice_id.as_bytes());
        h.update(change.previous_due_at.unix_timestamp_nanos().to_be_bytes());
        h.update(change.due_at.unix_timestamp_nanos().to_be_bytes());
        h.update([u8::from(change.provisional)]);
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}
