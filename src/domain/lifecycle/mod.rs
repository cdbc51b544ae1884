//! The life of a stored notice and the one table of reply rules.
//!
//! Who may sign (签收), answer (核查反馈) or withdraw (撤回) a notice, in which
//! state, and with which instant, is decided here and only here: the desk
//! (a clerk of this node) and the exchange (a peer node's reply) both call
//! `Lifecycle::check`. A refusal changes nothing; the store then applies an
//! accepted reply with an update that is conditional on the same state, so
//! that a race cannot overwrite an answer either.

use super::{Direction, NoticeStatus, ReplyBody, ReplySort};
use time::{Duration, OffsetDateTime};

/// How far a peer's clock may run ahead of ours: event dates may lie this
/// far in our future (two nodes on either side of midnight), and reply
/// instants this far past our now.
pub const CLOCK_SKEW: Duration = Duration::days(1);

/// Why a request was refused, in the domain's words; every interface maps
/// `kind` to its own code (a gRPC status, an item error, an HTTP page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    pub kind: Refused,
    pub field: String,
    pub message: String,
}

/// The sorts of refusal (SPEC.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Malformed or against a rule of its own (INVALID_ARGUMENT).
    Invalid,
    /// Names something this node does not hold (NOT_FOUND).
    NotFound,
    /// The caller may not do this (PERMISSION_DENIED).
    NotPermitted,
    /// Not in the notice's present state (FAILED_PRECONDITION).
    WrongState,
    /// The same id with other content (ALREADY_EXISTS).
    Exists,
    /// More than one request may carry (RESOURCE_EXHAUSTED).
    TooLarge,
    /// Not yet possible; the same request may succeed later (UNAVAILABLE).
    NotYet,
}

impl DomainError {
    pub fn new(kind: Refused, field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<super::FieldError> for DomainError {
    fn from(e: super::FieldError) -> Self {
        DomainError::new(Refused::Invalid, e.field, e.rule)
    }
}

/// Which party of a notice a reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The district that sent the notice.
    Origin,
    /// The district the notice is for.
    Destination,
    /// Neither: may not reply at all.
    Stranger,
}

/// What an accepted reply does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Record it: the notice moves on.
    Apply,
    /// The notice already holds this sort of reply (a clerk signing twice,
    /// withdrawing twice): nothing to record. Through the desk this answers
    /// with the notice unchanged; from a peer, under a new reply id, it is
    /// refused, since one receipt per notice is all there is.
    AlreadyDone,
    /// A withdrawal that reached the destination after the notice was
    /// answered there (docs/protocol.md §6: the destination's store orders
    /// a crossing, and the answer came first): kept on record as late, the
    /// notice stays answered, the origin is told it arrived (not refused).
    TooLate,
}

/// The state of a stored notice that its replies and its deadline figures read.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub direction: Direction,
    pub status: NoticeStatus,
    pub reply_required: ReplySort,
    pub created_at: OffsetDateTime,
    pub received_at: Option<OffsetDateTime>,
    pub due_at: Option<OffsetDateTime>,
    /// `due_at` was counted past the last year of the destination's
    /// holiday schedule (时限（暂定）).
    pub due_provisional: bool,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub answered_at: Option<OffsetDateTime>,
    /// The last reminder (催办) about it, and how many came.
    pub reminded_at: Option<OffsetDateTime>,
    pub reminders: u32,
}

/// How long after a reminder the next may be sent (at most one a day).
pub const REMINDER_INTERVAL: Duration = Duration::days(1);

/// How far a deadline change may move a deadline: a year's schedule moves
/// a working-day deadline by its holidays and make-up days, a week or two;
/// more is not a schedule's doing.
pub const MAX_DEADLINE_MOVE: Duration = Duration::days(31);

/// Days ahead that count as "due soon" (3 天内到期) everywhere.
pub const DUE_SOON_DAYS: u32 = 3;

impl Lifecycle {
    /// The party this node itself is: the destination of what it received.
    pub fn own_party(&self) -> Party {
        match self.direction {
            Direction::Inbound => Party::Destination,
            _ => Party::Origin,
        }
    }

    /// When the reply this notice needs was made, if it was.
    pub fn replied_at(&self) -> Option<OffsetDateTime> {
        match self.reply_required {
            ReplySort::Feedback => self.answered_at,
            _ => self.acknowledged_at.or(self.answered_at),
        }
    }

    /// Replied no later than `due_at`; `None` while there is no reply.
    pub fn timely(&self) -> Option<bool> {
        Some(self.replied_at()? <= self.due_at?)
    }

    /// Overdue: without its reply and past `due_at` at `now`. Withdrawn
    /// notices are never overdue. (The store's SQL twin is
    /// `store::notices::OVERDUE`; both say the same.)
    pub fn overdue(&self, now: OffsetDateTime) -> bool {
        self.status != NoticeStatus::Withdrawn
            && self.replied_at().is_none()
            && self.due_at.is_some_and(|d| d <= now)
    }

    /// Due soon: without its reply, not yet overdue, and due within
    /// `DUE_SOON_DAYS` days of `now` (the amber rows of 待办, the count
    /// beside them and in the menu: `store` counts with the same instant).
    pub fn due_soon(&self, now: OffsetDateTime) -> bool {
        let soon = now + time::Duration::days(i64::from(DUE_SOON_DAYS));
        self.status != NoticeStatus::Withdrawn
            && self.replied_at().is_none()
            && self.due_at.is_some_and(|d| d > now && d <= soon)
    }

    /// Days late at `now` as staff count them, the one count 待办, 统计 and the
    /// report show: a deadline ends a local day (23:59:59), so any hour of
    /// the day after it is day 1 (0 before it or without one).
    pub fn days_late(&self, now: OffsetDateTime) -> u32 {
        let late = self
            .due_at
            .map_or(0, |d| (now - d).whole_nanoseconds().max(0));
        let day = 86_400_000_000_000;
        u32::try_from((late + day - 1) / day).unwrap_or(u32::MAX)
    }

    /// Whether `reply`, from party `by`, may be recorded on this notice at
    /// the receiver's `now`. `notice_field` names the notice in the caller's
    /// request (`id` at the desk, `reply.notice_id` on the exchange).
    pub fn check(
        &self,
        by: Party,
        reply: &ReplyBody,
        now: OffsetDateTime,
        notice_field: &str,
    ) -> Result<Verdict, DomainError> {
        let refuse = |kind, message: &str| Err(DomainError::new(kind, notice_field, message));
        let withdrawn = self.status == NoticeStatus::Withdrawn;
        match reply {
            ReplyBody::Receipt {
                acknowledged_at, ..
            } => {
                if by != Party::Destination {
                    return refuse(
                        Refused::NotPermitted,
                        "only the notice's destination signs for it",
                    );
                }
                // The origin takes a receipt that crossed its withdrawal:
                // the destination committed it first (it would have refused
                // its clerk after the withdrawal). The destination itself
                // takes none on a withdrawn notice.
                if withdrawn && self.direction == Direction::Inbound {
                    return refuse(Refused::WrongState, "the origin withdrew this notice");
                }
                if self.acknowledged_at.is_some() {
                    return Ok(Verdict::AlreadyDone);
                }
                self.reply_instant(
                    "reply.receipt.acknowledged_at",
                    *acknowledged_at,
                    self.received_at,
                    now,
                )?;
            }
            ReplyBody::Feedback(f) => {
                if by != Party::Destination {
                    return refuse(
                        Refused::NotPermitted,
                        "only the notice's destination answers it",
                    );
                }
                // Likewise an answer that crossed the withdrawal: the
                // origin ends answered (docs/protocol.md §6).
                if withdrawn && self.direction == Direction::Inbound {
                    return refuse(Refused::WrongState, "the origin withdrew this notice");
                }
                if self.reply_required != ReplySort::Feedback {
                    return refuse(
                        Refused::WrongState,
                        "this notice needs only a receipt (签收), not feedback",
                    );
                }
                if self.answered_at.is_some() {
                    return refuse(Refused::WrongState, "this notice was already answered");
                }
                self.reply_instant(
                    "reply.feedback.answered_at",
                    f.answered_at,
                    self.received_at,
                    now,
                )?;
            }
            ReplyBody::Withdrawal { withdrawn_at, .. } => {
                if by != Party::Origin {
                    return refuse(
                        Refused::NotPermitted,
                        "only the notice's origin may withdraw it",
                    );
                }
                if self.status == NoticeStatus::Answered || self.answered_at.is_some() {
                    // At the destination, the answer came first: the
                    // withdrawal crossed it and is too late, not wrong.
                    if self.direction == Direction::Inbound {
                        return Ok(Verdict::TooLate);
                    }
                    return refuse(
                        Refused::WrongState,
                        "an answered notice cannot be withdrawn",
                    );
                }
                if withdrawn {
                    return Ok(Verdict::AlreadyDone);
                }
                // A notice may be withdrawn before it was delivered.
                self.reply_instant(
                    "reply.withdrawal.withdrawn_at",
                    *withdrawn_at,
                    Some(self.created_at),
                    now,
                )?;
            }
            ReplyBody::DeadlineChange(c) => {
                return self.check_deadline_change(by, c, now, notice_field);
            }
            ReplyBody::Reminder(r) => return self.check_reminder(by, r, now, notice_field),
            ReplyBody::Delivery(d) => {
                if by != Party::Destination || self.direction != Direction::Outbound {
                    return refuse(
                        Refused::NotPermitted,
                        "only the notice's destination says it received it",
                    );
                }
                // Once: the direct ack or an earlier delivery recorded it.
                // A notice withdrawn meanwhile still learns when it arrived.
                if self.received_at.is_some() {
                    return Ok(Verdict::AlreadyDone);
                }
                self.reply_instant(
                    "reply.delivery.received_at",
                    d.received_at,
                    // Two clocks: the destination's may run behind ours.
                    Some(self.created_at - CLOCK_SKEW),
                    now,
                )?;
                if d.due_at <= d.received_at {
                    return Err(DomainError::new(
                        Refused::Invalid,
                        "reply.delivery.due_at",
                        "lies before the notice arrived",
                    ));
                }
            }
        }
        Ok(Verdict::Apply)
    }

    /// A reminder (催办): only from the origin, about a notice not withdrawn.
    /// Written here (the origin's node), it must be the next in number, the
    /// notice delivered and still owing its reply, past its deadline or due
    /// within `DUE_SOON_DAYS`, and a day after the last reminder. Received
    /// (the destination's node), it is taken whatever the clocks say; one
    /// about a notice answered meanwhile, or one already held, changes nothing.
    fn check_reminder(
        &self,
        by: Party,
        r: &super::Reminder,
        now: OffsetDateTime,
        notice_field: &str,
    ) -> Result<Verdict, DomainError> {
        let refuse = |kind, message: &str| Err(DomainError::new(kind, notice_field, message));
        if by != Party::Origin {
            return refuse(
                Refused::NotPermitted,
                "only the notice's origin sends reminders about it",
            );
        }
        if self.status == NoticeStatus::Withdrawn {
            return refuse(Refused::WrongState, "the origin withdrew this notice");
        }
        let open = self.replied_at().is_none();
        if self.own_party() == Party::Destination {
            if !open || r.number <= self.reminders {
                return Ok(Verdict::AlreadyDone);
            }
            return Ok(Verdict::Apply);
        }
        if !open {
            return refuse(Refused::WrongState, "this notice has its reply already");
        }
        let Some(due) = self.due_at else {
            return refuse(
                Refused::WrongState,
                "this notice has not reached its destination yet",
            );
        };
        if due > now + Duration::days(i64::from(DUE_SOON_DAYS)) {
            return refuse(
                Refused::NotYet,
                "a reminder is sent once the deadline is within three days or past",
            );
        }
        if self
            .reminded_at
            .is_some_and(|last| now < last + REMINDER_INTERVAL)
        {
            return refuse(
                Refused::NotYet,
                "a reminder was sent within the last day; one a day at most",
            );
        }
        if r.number != self.reminders + 1 {
            return refuse(
                Refused::WrongState,
                "reminders are numbered one after another",
            );
        }
        Ok(Verdict::Apply)
    }

    /// A provisional deadline counted again: only by the destination, only
    /// while the notice still awaits its reply (an answered notice keeps
    /// the deadline it was answered against), only from the provisional
    /// deadline both sides hold, and by no more than `MAX_DEADLINE_MOVE`.
    fn check_deadline_change(
        &self,
        by: Party,
        c: &super::DeadlineChange,
        now: OffsetDateTime,
        notice_field: &str,
    ) -> Result<Verdict, DomainError> {
        let refuse = |kind, message: &str| Err(DomainError::new(kind, notice_field, message));
        if by != Party::Destination {
            return refuse(
                Refused::NotPermitted,
                "only the notice's destination sets its deadline",
            );
        }
        if self.status == NoticeStatus::Withdrawn {
            return refuse(Refused::WrongState, "the origin withdrew this notice");
        }
        self.reply_instant(
            "reply.deadline_change.changed_at",
            c.changed_at,
            self.received_at,
            now,
        )?;
        if self.due_at == Some(c.due_at) && self.due_provisional == c.provisional {
            return Ok(Verdict::AlreadyDone);
        }
        if self.replied_at().is_some() {
            return refuse(
                Refused::WrongState,
                "the notice has its reply; its deadline stays the one it was answered against",
            );
        }
        if !self.due_provisional {
            return refuse(
                Refused::WrongState,
                "only a provisional deadline (时限（暂定）) is counted again",
            );
        }
        if self.due_at != Some(c.previous_due_at) {
            return refuse(
                Refused::WrongState,
                "the deadline held here is not the one this change replaces",
            );
        }
        if (c.due_at - c.previous_due_at).abs() > MAX_DEADLINE_MOVE
            || self.received_at.is_some_and(|r| c.due_at <= r)
        {
            return Err(DomainError::new(
                Refused::Invalid,
                "reply.deadline_change.due_at",
                "moves the deadline by more than 31 days, or before the notice arrived",
            ));
        }
        Ok(Verdict::Apply)
    }

    /// A reply's instant lies between `earliest` (when the notice reached
    /// the replying side) and the receiver's `now` plus the skew tolerance.
    fn reply_instant(
        &self,
        field: &str,
        at: OffsetDateTime,
        earliest: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        let Some(earliest) = earliest else {
            // The origin has not yet recorded the destination's
            // acknowledgement of the notice (it is being redelivered): the
            // reply cannot be checked yet, and will be, when sent again.
            return Err(DomainError::new(
                Refused::NotYet,
                field,
                "the notice's delivery is not recorded here yet; send the reply again later",
            ));
        };
        if at < earliest {
            return Err(DomainError::new(
                Refused::Invalid,
                field,
                "is before the notice reached its destination",
            ));
        }
        if at > now + CLOCK_SKEW {
            return Err(DomainError::new(
                Refused::Invalid,
                field,
                "is in the future (beyond the one-day clock-skew tolerance)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
