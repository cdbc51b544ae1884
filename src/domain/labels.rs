//! What staff call the domain's values in Chinese: the one table the web
//! console, the reports and the CLI's help read their labels from.

use super::{
    Category, ContraceptionMethod, FeedbackResult, NoticeKind, NoticeStatus, ReplySort, Sex,
    Urgency,
};
use crate::pb;
use crate::pb::notice::Details;

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

/// A role as staff say it.
pub fn role_zh(role: &str) -> &'static str {
    match role {
        "clerk" => "办事员",
        "supervisor" => "主管",
        "monitor" => "监测",
        "admin" => "管理员",
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

pub fn sex_zh(s: i32) -> &'static str {
    match Sex::try_from(s) {
        Ok(Sex::Male) => "男",
        Ok(Sex::Female) => "女",
        _ => "",
    }
}

pub fn method_zh(m: i32) -> &'static str {
    match ContraceptionMethod::try_from(m) {
        Ok(ContraceptionMethod::IudInsertion) => "放环",
        Ok(ContraceptionMethod::IudRemoval) => "取环",
        Ok(ContraceptionMethod::FemaleSterilization) => "女性结扎",
        Ok(ContraceptionMethod::MaleSterilization) => "男性结扎",
        Ok(ContraceptionMethod::Implant) => "皮下埋植",
        Ok(ContraceptionMethod::Injection) => "注射",
        Ok(ContraceptionMethod::OralPill) => "口服药",
        Ok(ContraceptionMethod::Condom) => "避孕套",
        Ok(ContraceptionMethod::RemedialMeasure) => "补救措施",
        _ => "",
    }
}

/// An access audit entry's operation as staff read it (查看通报, 签收 …);
/// a masked read (a monitor's) says so. An operation this table does not
/// know is shown as recorded.
pub fn operation_zh(op: &str) -> String {
    let (op, masked) = match op.strip_suffix(" (masked)") {
        Some(o) => (o, true),
        None => (op, false),
    };
    let said = match op {
        "notice.submit" => "登记通报",
        "notice.get" => "查看通报",
        "notice.evidence" => "下载证据文件",
        "notice.pending" => "浏览待办",
        "notice.sent" => "浏览已发送",
        "notice.list" => "浏览通报列表",
        "notice.search" => "综合查询",
        "notice.search (none found)" => "综合查询（未找到）",
        "notice.handled" => "浏览已办",
        "report.overdue" => "超时未复名单",
        "reply.receipt" => "签收",
        "reply.feedback" => "核查反馈",
        "reply.withdraw" => "撤回",
        "reply.remind" => "催办",
        "reply.deadline" => "时限更新",
        "reply.delivery" => "送达回执",
        other => return other.to_string(),
    };
    if masked {
        format!("{said}（遮蔽）")
    } else {
        said.to_string()
    }
}

/// One field of a notice as staff read it: its path on the wire (what a
/// correction names), its label, and its value as shown (districts as
/// codes; `place` names them where a page does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub path: &'static str,
    pub label: &'static str,
    pub value: String,
}

/// The person's and the event's fields of a notice, in the order a
/// household visit checks them: the subject, then every field of its kind.
/// The one table of these labels: the console's 通报详情, the 核查单, the
/// correction form and the corrections shown read it.
pub fn fields_zh(n: &pb::Notice) -> Vec<Field> {
    let f = |path: &'static str, value: String| Field {
        path,
        label: super::label_zh(path),
        value,
    };
    let s = n.subject.clone().unwrap_or_default();
    let mut out = vec![
        f("subject.name", s.name),
        f("subject.id_number", s.id_number),
        f("subject.sex", sex_zh(s.sex).into()),
        f("subject.birth_date", s.birth_date),
        f("subject.hukou_district", s.hukou_district),
        f("subject.residence_district", s.residence_district),
        f("event_date", n.event_date.clone()),
    ];
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "是".to_string(),
        Some(false) => "否".to_string(),
        None => "未说明".to_string(),
    };
    match &n.details {
        Some(Details::Marriage(m)) => out.extend([
            f("marriage.registered_on", m.registered_on.clone()),
            f("marriage.spouse_name", m.spouse_name.clone()),
            f("marriage.spouse_id_number", m.spouse_id_number.clone()),
            f("marriage.registry_office", m.registry_office.clone()),
        ]),
        Some(Details::Pregnancy(p)) => out.extend([
            f("pregnancy.confirmed_on", p.confirmed_on.clone()),
            f(
                "pregnancy.gestational_weeks",
                format!("{} 周", p.gestational_weeks),
            ),
            f(
                "pregnancy.expected_delivery_on",
                p.expected_delivery_on.clone(),
            ),
            f("pregnancy.within_policy", yes_no(p.within_policy)),
        ]),
        Some(Details::Birth(b)) => out.extend([
            f("birth.child_name", b.child_name.clone()),
            f("birth.child_sex", sex_zh(b.child_sex).into()),
            f("birth.born_on", b.born_on.clone()),
            f("birth.birth_order", b.birth_order.to_string()),
            f("birth.place_of_delivery", b.place_of_delivery.clone()),
        ]),
        Some(Details::Contraception(c)) => out.extend([
            f("contraception.method", method_zh(c.method).into()),
            f("contraception.performed_on", c.performed_on.clone()),
            f("contraception.provider", c.provider.clone()),
        ]),
        None => {}
    }
    out
}

/// A corrected field's label, by its path (`subject.name` → 姓名); a path
/// no table row names (a peer's own) is shown as it came.
pub fn field_label<'a>(n: &pb::Notice, path: &'a str) -> std::borrow::Cow<'a, str> {
    fields_zh(n)
        .into_iter()
        .find(|f| f.path == path)
        .map_or(path.into(), |f| f.label.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_a_kind_has_its_chinese_label() {
        let n = pb::Notice {
            subject: Some(pb::Person {
                name: "王芳".into(),
                sex: Sex::Female as i32,
                ..Default::default()
            }),
            details: Some(Details::Birth(pb::BirthDetails {
                born_on: "2026-11-20".into(),
                child_sex: Sex::Male as i32,
                birth_order: 2,
                child_name: "李小明".into(),
                place_of_delivery: "双流区妇幼保健院".into(),
            })),
            ..Default::default()
        };
        let fields = fields_zh(&n);
        let value = |label: &str| {
            fields
                .iter()
                .find(|f| f.label == label)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("孩次"), "2");
        assert_eq!(value("子女性别"), "男");
        assert_eq!(value("分娩地点"), "双流区妇幼保健院");
        assert_eq!(value("性别"), "女");
        assert_eq!(field_label(&n, "birth.birth_order"), "孩次");
        assert_eq!(field_label(&n, "something.else"), "something.else");
        // Every path is unique, so a correction names one field.
        let mut paths: Vec<_> = fields.iter().map(|f| f.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), fields.len());
    }
}
