//! Delivery leases: which replica delivers each route (`route_leases`).

use super::{Result, Store, from_micros, micros};
use sqlx::Row;
use time::OffsetDateTime;

/// Who delivers a route, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub route: String,
    /// The replica: its host name and exchange address.
    pub holder: String,
    pub until: OffsetDateTime,
}

impl Store {
    /// Takes or renews the delivery lease of `route` for `holder` until
    /// `until`; false while another holder's lease runs.
    pub async fn claim_route(
        &self,
        route: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "INSERT INTO route_leases (route, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (route) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE route_leases.holder = excluded.holder OR route_leases.until < $4 \
                 RETURNING holder",
            )
            .bind(route)
            .bind(holder)
            .bind(micros(until))
            .bind(micros(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Who delivers each route, and until when.
    pub async fn route_leases(&self) -> Result<Vec<Lease>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query("SELECT route, holder, until FROM route_leases ORDER BY route")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| Lease {
                    route: r.get(0),
                    holder: r.get(1),
                    until: from_micros(r.get(2)),
                })
                .collect())
        })
    }

    /// Gives up `holder`'s leases (a replica stopping cleanly).
    pub async fn release_routes(&self, holder: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("DELETE FROM route_leases WHERE holder = $1")
                .bind(holder)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
