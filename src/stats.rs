//! `migrex.v1.Stats`: timeliness figures for monitors. Not built yet (a
//! later issue); both calls answer UNIMPLEMENTED so clients learn that
//! plainly instead of reading empty figures as real ones.

use crate::node::NodeCtx;
use crate::pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct StatsService {
    pub ctx: Arc<NodeCtx>,
}

#[tonic::async_trait]
impl pb::stats_server::Stats for StatsService {
    async fn get_timeliness(
        &self,
        _req: Request<pb::GetTimelinessRequest>,
    ) -> Result<Response<pb::GetTimelinessResponse>, Status> {
        let _ = &self.ctx;
        Err(Status::unimplemented(
            "timeliness statistics are not built yet",
        ))
    }

    async fn list_overdue(
        &self,
        _req: Request<pb::ListOverdueRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        Err(Status::unimplemented("the overdue list is not built yet"))
    }
}
