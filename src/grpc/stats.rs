//! `migrex.v1.Stats` over `service::reports`: the figures monitors read.

use super::{caller, filter, next_token, notice_view, page};
use crate::context::NodeCtx;
use crate::domain::{Direction, format_date, ts_to_pb};
use crate::pb;
use crate::service::reports;
use crate::stats::Period;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct StatsService {
    pub ctx: Arc<NodeCtx>,
}

#[tonic::async_trait]
impl pb::stats_server::Stats for StatsService {
    async fn get_timeliness(
        &self,
        req: Request<pb::GetTimelinessRequest>,
    ) -> Result<Response<pb::GetTimelinessResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let period = Period::parse("period", &r.period)?;
        let direction = filter("direction", r.direction)?.unwrap_or(Direction::Inbound);
        let report =
            reports::figures(&self.ctx, &caller, period, direction, r.by_peer, r.by_kind).await?;
        Ok(Response::new(pb::GetTimelinessResponse {
            first_day: format_date(period.first),
            last_day: format_date(period.last),
            as_of: Some(ts_to_pb(report.as_of)),
            direction: direction as i32,
            rows: report.rows(&self.ctx, r.by_peer, r.by_kind),
            district: self.ctx.district.to_string(),
        }))
    }

    async fn list_overdue(
        &self,
        req: Request<pb::ListOverdueRequest>,
    ) -> Result<Response<pb::ListOverdueResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let direction = filter("direction", r.direction)?;
        let p = page(r.page_size, &r.page_token)?;
        let (now, recs) = reports::overdue(&self.ctx, &caller, direction, p).await?;
        Ok(Response::new(pb::ListOverdueResponse {
            next_page_token: next_token(&recs),
            notices: recs
                .rows
                .iter()
                .map(|n| pb::OverdueNotice {
                    days_late: n.life.days_late(now),
                    notice: Some(notice_view(n, now)),
                })
                .collect(),
        }))
    }

    async fn reconcile(
        &self,
        req: Request<pb::ReconcileWithRequest>,
    ) -> Result<Response<pb::ReconcileOutcome>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let r = req.into_inner();
        let o = reports::reconcile(&self.ctx, &caller, &r.peer, &r.period).await?;
        Ok(Response::new(pb::ReconcileOutcome {
            peer: o.peer,
            period: o.period,
            notices: o.notices as u64,
            round_trips: o.round_trips,
            divergent: o
                .divergent
                .into_iter()
                .map(|d| pb::DivergentNotice {
                    notice_id: d.notice_id,
                    facts: d.facts,
                    resent: d.resent,
                })
                .collect(),
        }))
    }

    async fn list_reconciliations(
        &self,
        req: Request<pb::ListReconciliationsRequest>,
    ) -> Result<Response<pb::ListReconciliationsResponse>, Status> {
        let caller = caller(&self.ctx, &req).await?;
        let period = Period::parse("period", &req.into_inner().period)?;
        let rows = reports::reconciliations(&self.ctx, &caller, period).await?;
        Ok(Response::new(pb::ListReconciliationsResponse {
            reconciliations: rows
                .into_iter()
                .map(|r| pb::Reconciliation {
                    peer: r.peer,
                    period: r.period,
                    checked_at: Some(ts_to_pb(r.checked_at)),
                    notices: r.notices,
                    divergent: r.divergent,
                    agreed_at: r.agreed_at.map(ts_to_pb),
                })
                .collect(),
        }))
    }
}
