//! The exchange between nodes: receiving notices and replies from peers
//! (`server`), delivering ours from the outbox (`delivery`), and keeping
//! the deadlines we stamped true to the holiday schedule (`deadlines`),
//! and witnessing each other's access audit (`witness`).

pub mod deadlines;
pub mod delivery;
mod inbound;
pub mod proofs;
pub mod reconcile;
pub mod relay;
pub mod server;
pub mod witness;
pub mod workers;

use tonic::Code;

/// Whether a per-item refusal from a peer is final: retrying would only get
/// the same answer, so the item leaves the retry loop (and is reported).
pub fn is_final(code: i32) -> bool {
    matches!(
        Code::from_i32(code),
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
    )
}

/// Runs a receiving transaction again when it lost a race: another
/// replica of this node stored the same notice or reply between our
/// check and our insert. The second run finds it stored and answers with
/// the original acknowledgement.
pub(crate) async fn retrying_races<T, F, Fut>(attempt: F) -> Result<T, tonic::Status>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if e.is_race() && tries < 3 => {
                tries += 1;
                tracing::debug!(error = %e, "lost a race with another replica; receiving again");
            }
            other => return other.map_err(crate::grpc::internal),
        }
    }
}

/// Refuses a call carrying more items than this node takes in one.
pub(crate) fn check_batch(ctx: &crate::context::NodeCtx, len: usize) -> Result<(), tonic::Status> {
    let max = ctx.delivery.max_batch;
    if len > max {
        return Err(tonic::Status::resource_exhausted(format!(
            "batch of {len} items is larger than this node's limit of {max}"
        )));
    }
    Ok(())
}
