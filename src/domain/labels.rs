//! What staff call the domain's values in Chinese: the one table the web
//! console, the reports and the CLI's help read their labels from.

use super::{Category, FeedbackResult, NoticeKind, NoticeStatus, ReplySort, Urgency};

pub fn kind_zh(k: i32) -> &'static str {
    match NoticeKind::try_from(k) {
        Ok(NoticeKind::Marriage) => "婚姻",
        Ok(NoticeKind::Pregnancy) => "怀孕",
        Ok(NoticeKind::Birth) => "生育",
        Ok(NoticeKind::Contraception) => "节育措施",
        _ => "?",
    }
}

pub fn category_zh(c: i32) -> &'static str {
    match Category::try_from(c) {
        Ok(Category::VerificationRequest) => "协查",
        Ok(Category::Notification) => "通报",
        _ => "?",
    }
}

pub fn urgency_zh(u: i32) -> &'static str {
    if u == Urgency::Urgent as i32 {
        "紧急"
    } else {
        "普通"
    }
}

pub fn status_zh(s: NoticeStatus) -> &'static str {
    match s {
        NoticeStatus::Queued => "待发送",
        NoticeStatus::Delivered => "已送达",
        NoticeStatus::Pending => "待签收",
        NoticeStatus::Acknowledged => "已签收",
        NoticeStatus::Answered => "已反馈",
        NoticeStatus::Withdrawn => "已撤回",
        NoticeStatus::Unspecified => "?",
    }
}

pub fn result_zh(r: i32) -> &'static str {
    match FeedbackResult::try_from(r) {
        Ok(FeedbackResult::Confirmed) => "核实无误",
        Ok(FeedbackResult::Corrected) => "核实有误",
        Ok(FeedbackResult::NotFound) => "查无此人",
        Ok(FeedbackResult::NotResponsible) => "不属本辖区",
        _ => "?",
    }
}

/// The reply a notice needs, as staff say it.
pub fn reply_zh(r: ReplySort) -> &'static str {
    if r == ReplySort::Feedback {
        "核查反馈"
    } else {
        "签收"
    }
}
