//! 综合查询 (finding a notice again, whatever became of it) and 已办 (what
//! this district signed for or answered). Both show people's details, so
//! monitors have neither, and every page of results is in the access audit;
//! a search by ID number that finds nothing is recorded too (who looked
//! for this person).

use super::{Listing, Page, Result, audit};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::{
    Direction, DistrictCode, FieldError, IdNumber, NoticeKind, NoticeStatus, district_typed,
    looks_like_reference,
};
use crate::store::NoticeFilter;
use time::OffsetDateTime;

/// The longest name searched for (names are at most 50 characters).
const MAX_NAME: usize = 50;

/// What a clerk types into 综合查询's one box, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Everything the filters let through.
    Any,
    IdNumber(IdNumber),
    Reference(String),
    Name(String),
}

impl Wanted {
    /// An ID number (15 or 18 characters of digits and X, checked), a short
    /// reference (`440303-20261206-0042`), or else a name.
    pub fn parse(q: &str) -> std::result::Result<Wanted, FieldError> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(Wanted::Any);
        }
        let id_like = matches!(q.len(), 15 | 18)
            && q.bytes()
                .all(|b| b.is_ascii_digit() || b == b'X' || b == b'x');
        if id_like {
            return IdNumber::parse("q", q).map(Wanted::IdNumber);
        }
        if looks_like_reference(q) {
            return Ok(Wanted::Reference(q.to_string()));
        }
        if q.chars().count() > MAX_NAME {
            return Err(FieldError::new(
                "q",
                format!("is longer than {MAX_NAME} characters"),
            ));
        }
        Ok(Wanted::Name(q.to_string()))
    }
}

/// A search: what was typed and the filters beside it.
#[derive(Debug, Clone)]
pub struct Search {
    pub wanted: Wanted,
    pub direction: Option<Direction>,
    pub kind: Option<NoticeKind>,
    pub status: Option<NoticeStatus>,
    /// The other district, by code or by a name one district has.
    pub district: String,
    /// Registered on or after / before (instants of the day bounds).
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// 综合查询: notices of both directions and every status, newest first.
pub async fn search(ctx: &NodeCtx, caller: &Caller, s: Search, page: Page) -> Result<Listing> {
    caller.require_personal_data()?;
    let peer_prefix = match s.district.trim() {
        "" => None,
        typed => {
            let code = district_typed(typed).ok_or_else(|| {
                FieldError::new(
                    "district",
                    format!(
                        "{} names no single district; give its code",
                        crate::domain::quoted(typed)
                    ),
                )
            })?;
            Some(DistrictCode::parse("district", &code)?.to_string())
        }
    };
    let mut f = NoticeFilter {
        direction: s.direction,
        status: s.status,
        kind: s.kind,
        peer_prefix,
        created_from: s.from,
        created_to: s.to,
        limit: page.limit,
        after: page.after.clone(),
        ..Default::default()
    };
    match &s.wanted {
        Wanted::Any => {}
        Wanted::IdNumber(id) => f.subject_id = Some(id.clone()),
        Wanted::Reference(r) => f.reference = Some(r.clone()),
        Wanted::Name(n) => f.subject_name = Some(n.clone()),
    }
    let rows = ctx.store.list_notices(&f).await?;
    if rows.is_empty()
        && let Wanted::IdNumber(id) = &s.wanted
    {
        let none = audit::accesses(
            &ctx.audit_key,
            caller,
            "notice.search (none found)",
            [("", id.as_str())],
        );
        ctx.store.append_audit(&none, ctx.now()).await?;
    }
    audit::record_reads(ctx, caller, "notice.search", &rows).await?;
    Ok(Listing::new(rows, &page, |r| Some(r.life.created_at)))
}

/// 已办: inbound notices this district signed for or answered, the latest
/// act first.
pub async fn handled(ctx: &NodeCtx, caller: &Caller, page: Page) -> Result<Listing> {
    caller.require_personal_data()?;
    let rows = ctx.store.handled(page.limit, page.after.as_ref()).await?;
    audit::record_reads(ctx, caller, "notice.handled", &rows).await?;
    Ok(Listing::new(rows, &page, |r| {
        r.life.answered_at.or(r.life.acknowledged_at)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_tells_an_id_number_a_reference_and_a_name_apart() {
        assert_eq!(Wanted::parse("  ").unwrap(), Wanted::Any);
        assert!(matches!(
            Wanted::parse("11010519491231002X").unwrap(),
            Wanted::IdNumber(_)
        ));
        // An ID number with a wrong check character is an error, not a name.
        let e = Wanted::parse("110105194912310021").unwrap_err();
        assert_eq!(e.field, "q");
        assert_eq!(
            Wanted::parse("440303-20261206-0042").unwrap(),
            Wanted::Reference("440303-20261206-0042".into())
        );
        assert_eq!(
            Wanted::parse(" 王芳 ").unwrap(),
            Wanted::Name("王芳".into())
        );
        assert!(Wanted::parse(&"长".repeat(51)).is_err());
    }
}
