//! Replies to a notice as they travel between nodes: receipts (签收) and
//! verification feedback (核查反馈) from the destination, withdrawals (撤回)
//! from the origin. Which of them a notice accepts is `lifecycle`'s business.

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
}

impl ReplyBody {
    /// 1 receipt, 2 feedback, 3 withdrawal: the stored sort code.
    pub fn sort_code(&self) -> i64 {
        match self {
            ReplyBody::Receipt { .. } => 1,
            ReplyBody::Feedback(_) => 2,
            ReplyBody::Withdrawal { .. } => 3,
        }
    }
}

impl Reply {
    pub fn parse(r: &pb::Reply) -> Result<Self, FieldError> {
        use pb::reply::Body;
        let body = match r.body.as_ref().ok_or_else(|| {
            FieldError::new(
                "reply.body",
                "is required (receipt, feedback or withdrawal)",
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
        };
        Ok(Reply {
            reply_id: parse_uuid("reply.reply_id", &r.reply_id)?,
            notice_id: parse_uuid("reply.notice_id", &r.notice_id)?,
            author: DistrictCode::parse("reply.author", &r.author)?,
            body,
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
            }),
        }
    }

    pub fn content_hash(&self) -> Vec<u8> {
        Sha256::digest(self.to_wire().encode_to_vec()).to_vec()
    }
}
