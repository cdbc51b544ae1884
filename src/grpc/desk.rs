//! `migrex.v1.Desk` over `service`: what staff do through gRPC and the CLI.

use super::{caller, filter, next_token, notice_id, notice_view, page, refusal};
use crate::context::NodeCtx;
use crate::domain::{IdNumber, ts_from_pb};
use crate::pb;
use crate::service::notices::PendingQuery;
use crate::service::{Listing, notices, replies};
use crate::store::{NoticeFilter, NoticeRecord};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct DeskService {
    pub ctx: Arc<NodeCtx>,
}

impl DeskService {
    fn view(&self, rec: NoticeRecord) -> Response<pb::Notice> {
        Response::new(notice_view(&rec, self.ctx.now()))
    }

    fn list(&self, l: Listing) -> pb::ListNoticesResponse {
        let now = self.ctx.now();
        pb::ListNoticesResponse {
            next_page_token: next_token(&l),
            notices: l.rows.iter().map(|r| notice_view(r, now)).collect(),
        }
    }
}

#[tonic::async_trait]
impl pb::desk_server::Desk for DeskService {
    async fn submit_notice(
        &self,
        req: Request<pb::SubmitNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let n = req
            .into_inner()
            .notice
            .ok_or_else(|| Status::invalid_argument("notice: is required"))?;
        Ok(self.view(notices::submit(&self.ctx, &caller, n).await?))
    }

    async fn submit_notices(
        &self,
        req: Request<pb::SubmitNoticesRequest>,
    ) -> Result<Response<pb::SubmitNoticesResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let outcome = notices::submit_many(&self.ctx, &caller, r.notices, r.validate_only).await?;
        let refused = outcome.refused() as u32;
        let results: Vec<pb::SubmitResult> = outcome
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| pb::SubmitResult {
                index: i as u32,
                notice_id: item.notice_id.clone(),
                error: item.error.as_ref().map(refusal),
            })
            .collect();
        Ok(Response::new(pb::SubmitNoticesResponse {
            accepted: results.len() as u32 - refused,
            refused,
            committed: outcome.committed,
            results,
        }))
    }

    async fn get_notice(
        &self,
        req: Request<pb::GetNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let id = notice_id("id", &req.get_ref().id)?;
        Ok(self.view(notices::get(&self.ctx, &caller, id).await?))
    }

    async fn list_pending(
        &self,
        req: Request<pb::ListPendingRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let p = page(r.page_size, &r.page_token)?;
        let q = PendingQuery {
            kind: filter("kind", r.kind)?,
            category: filter("category", r.category)?,
            urgency: filter("urgency", r.urgency)?,
            overdue_only: r.overdue_only,
            due_within_days: (r.due_within_days > 0).then_some(r.due_within_days),
        };
        let recs = notices::pending(&self.ctx, &caller, q, p).await?;
        Ok(Response::new(self.list(recs)))
    }

    async fn acknowledge_notice(
        &self,
        req: Request<pb::AcknowledgeNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let id = notice_id("id", &req.get_ref().id)?;
        Ok(self.view(replies::acknowledge(&self.ctx, &caller, id).await?))
    }

    async fn submit_feedback(
        &self,
        req: Request<pb::SubmitFeedbackRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let id = notice_id("id", &r.id)?;
        let answer = r.feedback.unwrap_or_default();
        Ok(self.view(replies::feedback(&self.ctx, &caller, id, &answer).await?))
    }

    async fn list_notices(
        &self,
        req: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let p = page(r.page_size, &r.page_token)?;
        let ts = |field: &str, t: Option<prost_types::Timestamp>| {
            t.map(|t| ts_from_pb(field, Some(&t))).transpose()
        };
        let peer = r.peer.trim();
        if !peer.is_empty() && (!peer.bytes().all(|b| b.is_ascii_digit()) || peer.len() > 12) {
            return Err(Status::invalid_argument(
                "peer: must be a district code or a prefix of one (digits)",
            ));
        }
        let subject = r.subject_id_number.trim();
        let f = NoticeFilter {
            direction: filter("direction", r.direction)?,
            status: filter("status", r.status)?,
            kind: filter("kind", r.kind)?,
            peer_prefix: (!peer.is_empty()).then(|| peer.to_string()),
            subject_id: if subject.is_empty() {
                None
            } else {
                Some(IdNumber::parse("subject_id_number", subject)?)
            },
            created_from: ts("created_from", r.created_from)?,
            created_to: ts("created_to", r.created_to)?,
            ..Default::default()
        };
        let recs = notices::list(&self.ctx, &caller, f, p).await?;
        Ok(Response::new(self.list(recs)))
    }

    async fn withdraw_notice(
        &self,
        req: Request<pb::WithdrawNoticeRequest>,
    ) -> Result<Response<pb::Notice>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let id = notice_id("id", &r.id)?;
        Ok(self.view(replies::withdraw(&self.ctx, &caller, id, &r.reason).await?))
    }
}
