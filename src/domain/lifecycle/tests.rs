//! The reply rules, case by case (`Lifecycle::check`).
use super::*;
use crate::domain::{FeedbackContent, FeedbackResult};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-20 10:00 UTC);

fn delivered(reply_required: ReplySort) -> Lifecycle {
    Lifecycle {
        direction: Direction::Outbound,
        status: NoticeStatus::Delivered,
        reply_required,
        created_at: datetime!(2026-11-01 08:00 UTC),
        received_at: Some(datetime!(2026-11-01 09:00 UTC)),
        due_at: Some(datetime!(2026-12-01 15:59:59 UTC)),
        due_provisional: false,
        acknowledged_at: None,
        answered_at: None,
        reminded_at: None,
        reminders: 0,
    }
}

fn receipt(at: OffsetDateTime) -> ReplyBody {
    ReplyBody::Receipt {
        acknowledged_at: at,
        acknowledged_by: "clerk".into(),
    }
}

fn feedback(at: OffsetDateTime) -> ReplyBody {
    ReplyBody::Feedback(FeedbackContent {
        result: FeedbackResult::Confirmed,
        remarks: String::new(),
        corrections: Default::default(),
        responsible_district: None,
        answered_by: "clerk".into(),
        answered_at: at,
    })
}

fn withdrawal(at: OffsetDateTime) -> ReplyBody {
    ReplyBody::Withdrawal {
        withdrawn_at: at,
        reason: String::new(),
    }
}

fn refusal(r: Result<Verdict, DomainError>) -> Refused {
    r.expect_err("refused").kind
}

#[test]
fn a_delivery_through_a_relay_is_recorded_once_and_only_from_the_destination() {
    use Party::*;
    let mut queued = delivered(ReplySort::Receipt);
    (queued.status, queued.received_at, queued.due_at) = (NoticeStatus::Queued, None, None);
    let arriving = |received_at| {
        ReplyBody::Delivery(super::super::Delivery {
            received_at,
            due_at: datetime!(2026-11-08 15:59:59 UTC),
            provisional: false,
        })
    };
    let body = arriving(datetime!(2026-11-01 09:30 UTC));
    let verdict = |n: &Lifecycle, by, body: &ReplyBody| n.check(by, body, NOW, "id");
    assert_eq!(verdict(&queued, Destination, &body), Ok(Verdict::Apply));
    for by in [Origin, Stranger] {
        assert_eq!(refusal(verdict(&queued, by, &body)), Refused::NotPermitted);
    }
    // A notice withdrawn on its way still learns when it arrived.
    let mut withdrawn = queued.clone();
    withdrawn.status = NoticeStatus::Withdrawn;
    assert_eq!(verdict(&withdrawn, Destination, &body), Ok(Verdict::Apply));
    // The direct ack came first (a relay that was bypassed later).
    let direct = delivered(ReplySort::Receipt);
    assert_eq!(
        verdict(&direct, Destination, &body),
        Ok(Verdict::AlreadyDone)
    );
    let early = arriving(queued.created_at - Duration::days(2));
    assert_eq!(
        refusal(verdict(&queued, Destination, &early)),
        Refused::Invalid
    );
    // A delivery is news only to the origin.
    let mut inbound = queued.clone();
    inbound.direction = Direction::Inbound;
    assert_eq!(
        refusal(verdict(&inbound, Destination, &body)),
        Refused::NotPermitted
    );
}

#[test]
fn the_table_of_reply_rules() {
    use Party::*;
    let n = delivered(ReplySort::Feedback);
    let at = NOW - Duration::days(1);
    assert_eq!(
        n.check(Destination, &receipt(at), NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        n.check(Destination, &feedback(at), NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        n.check(Origin, &withdrawal(at), NOW, "id"),
        Ok(Verdict::Apply)
    );
    // Only the destination replies, only the origin withdraws.
    for (by, r) in [
        (Origin, receipt(at)),
        (Stranger, feedback(at)),
        (Destination, withdrawal(at)),
    ] {
        assert_eq!(refusal(n.check(by, &r, NOW, "id")), Refused::NotPermitted);
    }

    let mut answered = n.clone();
    answered.status = NoticeStatus::Answered;
    answered.acknowledged_at = Some(at);
    answered.answered_at = Some(at);
    assert_eq!(
        refusal(answered.check(Destination, &feedback(at), NOW, "id")),
        Refused::WrongState,
        "a second feedback"
    );
    assert_eq!(
        refusal(answered.check(Origin, &withdrawal(at), NOW, "id")),
        Refused::WrongState,
        "the origin's clerk withdraws after the answer arrived"
    );
    // At the destination, a withdrawal that crossed the answer is too
    // late, not wrong (docs/protocol.md §6).
    let answered_here = Lifecycle {
        direction: Direction::Inbound,
        ..answered.clone()
    };
    assert_eq!(
        answered_here.check(Origin, &withdrawal(at), NOW, "id"),
        Ok(Verdict::TooLate)
    );
    assert_eq!(
        answered.check(Destination, &receipt(at), NOW, "id"),
        Ok(Verdict::AlreadyDone),
        "feedback counts as receipt"
    );

    let mut withdrawn = n.clone();
    withdrawn.status = NoticeStatus::Withdrawn;
    // The origin takes an answer that crossed its withdrawal: the
    // destination committed it first (docs/protocol.md §6) …
    for r in [receipt(at), feedback(at)] {
        assert_eq!(
            withdrawn.check(Destination, &r, NOW, "id"),
            Ok(Verdict::Apply)
        );
    }
    // … and the destination answers no withdrawn notice.
    let withdrawn_here = Lifecycle {
        direction: Direction::Inbound,
        ..withdrawn.clone()
    };
    for r in [receipt(at), feedback(at)] {
        assert_eq!(
            refusal(withdrawn_here.check(Destination, &r, NOW, "id")),
            Refused::WrongState
        );
    }
    assert_eq!(
        withdrawn.check(Origin, &withdrawal(at), NOW, "id"),
        Ok(Verdict::AlreadyDone)
    );

    let receipt_only = delivered(ReplySort::Receipt);
    assert_eq!(
        refusal(receipt_only.check(Destination, &feedback(at), NOW, "id")),
        Refused::WrongState
    );
}

#[test]
fn reply_instants_lie_between_receipt_and_now_plus_skew() {
    let n = delivered(ReplySort::Feedback);
    let received = n.received_at.unwrap();
    let early = received - Duration::microseconds(1);
    let late = NOW + CLOCK_SKEW + Duration::seconds(1);
    for r in [
        receipt(early),
        feedback(early),
        receipt(late),
        feedback(late),
    ] {
        let e = n.check(Party::Destination, &r, NOW, "id").unwrap_err();
        assert_eq!(e.kind, Refused::Invalid);
        assert!(e.field.starts_with("reply."), "{}", e.field);
    }
    assert_eq!(
        n.check(Party::Destination, &receipt(received), NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        n.check(Party::Destination, &feedback(NOW + CLOCK_SKEW), NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        refusal(n.check(Party::Origin, &withdrawal(late), NOW, "id")),
        Refused::Invalid
    );
    // A notice withdrawn before delivery: bounded by its creation.
    let mut queued = n.clone();
    queued.status = NoticeStatus::Queued;
    queued.received_at = None;
    assert_eq!(
        queued.check(Party::Origin, &withdrawal(n.created_at), NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        refusal(queued.check(Party::Destination, &receipt(NOW), NOW, "id")),
        Refused::NotYet
    );
}

#[test]
fn overdue_and_timely_follow_the_reply_the_notice_needs() {
    let mut n = delivered(ReplySort::Feedback);
    let due = n.due_at.unwrap();
    assert!(!n.overdue(due - Duration::seconds(1)));
    assert!(n.overdue(due));
    n.acknowledged_at = Some(due);
    assert!(n.overdue(due), "a receipt is not the feedback it needs");
    assert_eq!(n.timely(), None);
    n.answered_at = Some(due + Duration::seconds(1));
    assert!(!n.overdue(due + Duration::days(9)));
    assert_eq!(n.timely(), Some(false));
    let mut w = delivered(ReplySort::Receipt);
    w.status = NoticeStatus::Withdrawn;
    assert!(!w.overdue(due + Duration::days(9)));
}

#[test]
fn only_the_destination_moves_a_provisional_deadline_of_an_open_notice() {
    use crate::domain::DeadlineChange;
    let mut n = delivered(ReplySort::Feedback);
    n.due_provisional = true;
    let due = n.due_at.unwrap();
    let change = |to: OffsetDateTime, provisional| {
        ReplyBody::DeadlineChange(DeadlineChange {
            changed_at: NOW,
            previous_due_at: due,
            due_at: to,
            provisional,
        })
    };
    let later = change(due + Duration::days(1), false);
    assert_eq!(
        n.check(Party::Destination, &later, NOW, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        refusal(n.check(Party::Origin, &later, NOW, "id")),
        Refused::NotPermitted
    );
    assert_eq!(
        n.check(Party::Destination, &change(due, true), NOW, "id"),
        Ok(Verdict::AlreadyDone),
        "the deadline it already holds"
    );
    assert_eq!(
        refusal(n.check(
            Party::Destination,
            &change(due + Duration::days(32), false),
            NOW,
            "id"
        )),
        Refused::Invalid
    );
    let mut official = n.clone();
    official.due_provisional = false;
    assert_eq!(
        refusal(official.check(Party::Destination, &later, NOW, "id")),
        Refused::WrongState,
        "an official deadline stays"
    );
    let mut answered = n.clone();
    answered.answered_at = Some(NOW);
    answered.status = NoticeStatus::Answered;
    assert_eq!(
        refusal(answered.check(Party::Destination, &later, NOW, "id")),
        Refused::WrongState,
        "an answered notice keeps its deadline"
    );
    let mut moved = n.clone();
    moved.due_at = Some(due - Duration::days(1));
    assert_eq!(
        refusal(moved.check(Party::Destination, &later, NOW, "id")),
        Refused::WrongState,
        "not the deadline held here"
    );
    let mut undelivered = n.clone();
    undelivered.received_at = None;
    assert_eq!(
        refusal(undelivered.check(Party::Destination, &later, NOW, "id")),
        Refused::NotYet
    );
}

#[test]
fn a_reminder_comes_from_the_origin_once_a_day_about_a_late_or_soon_notice() {
    let reminder = |number| {
        ReplyBody::Reminder(crate::domain::Reminder {
            reminded_at: NOW,
            reminded_by: "wang.jun".into(),
            number,
        })
    };
    // Written at the origin (this node sent it), due on 2026-12-01.
    let mut ours = delivered(ReplySort::Feedback);
    let early = datetime!(2026-11-20 10:00 UTC);
    let e = ours
        .check(Party::Origin, &reminder(1), early, "id")
        .unwrap_err();
    assert_eq!(e.kind, Refused::NotYet, "eleven days before its deadline");
    let soon = datetime!(2026-11-29 10:00 UTC);
    assert_eq!(
        ours.check(Party::Origin, &reminder(1), soon, "id"),
        Ok(Verdict::Apply)
    );
    assert_eq!(
        ours.check(Party::Origin, &reminder(2), soon, "id")
            .unwrap_err()
            .kind,
        Refused::WrongState,
        "numbered one after another"
    );
    ours.reminders = 1;
    ours.reminded_at = Some(soon);
    let e = ours
        .check(
            Party::Origin,
            &reminder(2),
            soon + Duration::hours(23),
            "id",
        )
        .unwrap_err();
    assert_eq!(e.kind, Refused::NotYet, "one a day");
    assert_eq!(
        ours.check(
            Party::Origin,
            &reminder(2),
            soon + Duration::hours(25),
            "id"
        ),
        Ok(Verdict::Apply)
    );
    // Only the origin reminds.
    assert_eq!(
        ours.check(
            Party::Destination,
            &reminder(2),
            soon + Duration::days(2),
            "id"
        )
        .unwrap_err()
        .kind,
        Refused::NotPermitted
    );
    // Received at the destination: taken whatever the clocks say; one
    // already held, or about an answered notice, changes nothing.
    let mut theirs = delivered(ReplySort::Feedback);
    theirs.direction = Direction::Inbound;
    assert_eq!(
        theirs.check(Party::Origin, &reminder(1), early, "id"),
        Ok(Verdict::Apply)
    );
    theirs.reminders = 1;
    assert_eq!(
        theirs.check(Party::Origin, &reminder(1), early, "id"),
        Ok(Verdict::AlreadyDone)
    );
    theirs.answered_at = Some(early);
    assert_eq!(
        theirs.check(Party::Origin, &reminder(2), early, "id"),
        Ok(Verdict::AlreadyDone)
    );
}
