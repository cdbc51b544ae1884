//! The message catalogue: what staff call each field (`label_zh`) and each
//! refusal as a Chinese sentence naming the field by that label
//! (`field_error_zh`, `refusal_zh`). The rules themselves stay written once,
//! in English, where they are checked (`FieldError{field, rule}`, which the
//! API, the CLI and the logs carry); the console, the import preview and
//! the Chinese report say them through here. A rule this catalogue does not
//! know is said as "<label>填写有误" (never in English) and shows up in
//! `every_rule_of_the_domain_has_a_chinese_sentence`.

use super::{DomainError, Refused};

/// What staff call a field, by its path's last segment or its column name
/// (`notice.subject.id_number` and `id_number` are both 身份证号). The one
/// table of these labels: `fields_zh`, the import's headers, and the
/// messages below read it.
pub fn label_zh(field: &str) -> &'static str {
    let path = field
        .trim_start_matches("notice.")
        .trim_start_matches("reply.");
    // Paths whose last segment alone is ambiguous.
    match path {
        "subject.birth_date" | "birth_date" => return "出生日期",
        "subject.sex" | "sex" => return "性别",
        "marriage.spouse_id_number" => return "配偶身份证号",
        _ => {}
    }
    match path.rsplit('.').next().unwrap_or(path) {
        "id" => "通报ID",
        "reference" => "编号",
        "origin" => "发出地区",
        "destination" => "发往地区",
        "addressed_to" => "原发往地区",
        "kind" => "类别",
        "category" => "性质",
        "urgency" => "紧急程度",
        "reply_required" => "答复要求",
        "subject" => "当事人",
        "id_number" => "身份证号",
        "name" => "姓名",
        "hukou_district" => "户籍地",
        "residence_district" => "现居住地",
        "event_date" => "事件日期",
        "details" => "事件信息",
        "registered_on" => "登记日期",
        "spouse_name" => "配偶姓名",
        "spouse_id_number" => "配偶身份证号",
        "registry_office" => "登记机关",
        "confirmed_on" => "确诊日期",
        "gestational_weeks" => "孕周",
        "expected_delivery_on" => "预产期",
        "within_policy" => "是否政策内",
        "born_on" => "出生日期（子女）",
        "child_name" => "子女姓名",
        "child_sex" => "子女性别",
        "birth_order" => "孩次",
        "place_of_delivery" => "分娩地点",
        "method" => "节育措施",
        "performed_on" => "施术日期",
        "provider" => "服务机构",
        "remarks" => "备注",
        "result" => "核查结果",
        "corrections" => "更正",
        "responsible_district" => "应负责地区",
        "reason" => "原因",
        "file" => "文件",
        "header" => "表头",
        "q" => "查询内容",
        "district" => "地区",
        "role" => "角色",
        "user" => "用户名",
        "current" => "当前密码",
        "new" | "password" => "新密码",
        "notices" => "通报",
        "body" => "答复",
        "days" => "有效天数",
        _ => "该项",
    }
}

/// The values a clerk may type for an enum field, in Chinese.
fn choices_zh(field: &str) -> Option<&'static str> {
    Some(match field.rsplit('.').next().unwrap_or(field) {
        "kind" => "婚姻、怀孕、生育、节育措施",
        "category" => "通报、协查",
        "urgency" => "普通、紧急",
        "reply_required" => "签收、核查反馈",
        "child_sex" | "sex" => "男、女",
        "method" => "放环、取环、女性结扎、男性结扎、皮下埋植、注射、口服药、避孕套、补救措施",
        "role" => "办事员、主管、监测、管理员",
        _ => return None,
    })
}

/// The text between the first pair of `open` … `close` in `s`.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// A field's refusal as one Chinese sentence naming the field by its label.
pub fn field_error_zh(field: &str, rule: &str) -> String {
    let label = label_zh(field);
    // A rule written in Chinese first ("超过 10000 行，请拆分文件 (…)").
    if rule.chars().next().is_some_and(is_cjk) {
        return rule.split(" (").next().unwrap_or(rule).trim().to_string();
    }
    let r = rule;
    if r.starts_with("is required") {
        return match choices_zh(field) {
            Some(c) => format!("请填写{label}（可填：{c}）"),
            None => format!("请填写{label}"),
        };
    }
    if r.contains("is not one of") || r.contains("is not a known value") {
        return match choices_zh(field) {
            Some(c) => format!("{label}不是可选的值，可填：{c}"),
            None => format!("{label}不是可选的值"),
        };
    }
    if r.contains("check character is") {
        let expected = between(r, "expected '", "'").unwrap_or("?");
        return format!("{label}校验位不对（按前 17 位算，第 18 位应为 {expected}），请核对");
    }
    if r.starts_with("must be 18 characters") {
        return format!("{label}应为 18 位（旧号码为 15 位数字）");
    }
    if r.contains("first 17 characters must be digits") {
        return format!("{label}前 17 位应全为数字");
    }
    if r.contains("15-digit ID number must be all digits") {
        return format!("{label}为 15 位时应全为数字");
    }
    if r.starts_with("birth date") && r.contains("is not a valid date") {
        return format!("{label}中的出生日期不存在，请核对");
    }
    if r.contains("must be about a woman") {
        return "怀孕、生育通报的当事人应为女性，该身份证号第 17 位为奇数（男性）".into();
    }
    if r.contains("contradicts the birth date") {
        return format!("{label}与身份证号中的出生日期不符");
    }
    if r.contains("contradicts the sex") || r.contains("does not fit the subject's sex") {
        return format!("{label}与身份证号中的性别不符");
    }
    if r.contains("names no single district") {
        let typed = between(r, "'", "'").unwrap_or("");
        return format!("{label}“{typed}”对应的地区不止一个或没有，请填写区划代码或从列表中选择");
    }
    if r.contains("district code")
        || r.contains("division code")
        || r.contains("code prefix")
        || r.contains("not the start of any known division")
    {
        return format!("{label}不是有效的区划代码，请填写 6 位代码或地区名称");
    }
    if r.starts_with("no peer route reaches") {
        let code = r
            .trim_start_matches("no peer route reaches ")
            .split(';')
            .next()
            .unwrap_or("");
        let place = super::county_name(code).unwrap_or("");
        return format!("本地区尚无通往 {code} {place} 的线路，请联系管理员");
    }
    if r.contains("is served by this node itself") || r.contains("must differ from the origin") {
        return format!("{label}是本地区自己，不能发给本地区");
    }
    if r.contains("is the destination itself") {
        return format!("{label}与发往地区相同");
    }
    if r.contains("is in the future") {
        return format!("{label}不能晚于今天");
    }
    if r.contains("is before the subject's birth date") {
        return format!("{label}不能早于当事人的出生日期");
    }
    if r.contains("must be after confirmed_on") {
        return format!("{label}应晚于确诊日期");
    }
    if r.contains("must differ from the subject's ID number") {
        return format!("{label}不能与当事人身份证号相同");
    }
    if r.contains("differs from the date in the details") {
        return format!("{label}与事件信息中的日期不符");
    }
    if let Some(range) = r.split("is outside ").nth(1)
        && let Some((lo, hi)) = range.trim().split_once("..")
    {
        return format!("{label}应在 {lo} 到 {hi} 之间");
    }
    if r.contains("is not a date of the form") {
        return format!("{label}应按 年-月-日 填写，例如 2026-10-03");
    }
    if r.contains("is not a whole number") {
        return format!("{label}应为整数");
    }
    if r.contains("is not yes or no") {
        return format!("{label}应填“是”或“否”");
    }
    if r.starts_with("must be at most") || r.starts_with("is longer than") {
        let n: String = r.chars().filter(char::is_ascii_digit).collect();
        return format!("{label}最多 {n} 个字");
    }
    if r.contains("control characters") || r.contains("invisible format character") {
        return format!("{label}含有看不见的控制字符，请删除后重新输入");
    }
    if r.contains("requires FEEDBACK") {
        return "此类通报须核查反馈，答复要求不能只选签收".into();
    }
    if r.contains("must name at least one corrected field") {
        return "核实有误时，请至少选择一项有误的项目并填写正确值".into();
    }
    if r.starts_with("unknown column") {
        let col = between(r, "'", "'").unwrap_or("");
        return format!("表头“{col}”不是模板中的列，请使用导入模板");
    }
    if r.contains("is not the current password") {
        return "当前密码不对".into();
    }
    if r.starts_with("must be at least") {
        let n: String = r.chars().filter(char::is_ascii_digit).collect();
        return format!("{label}至少 {n} 个字符");
    }
    if r.starts_with("must hold only letters") {
        return format!("{label}只能包含字母、数字、“.”“_”“-”和汉字");
    }
    if r.contains("exists already") {
        return format!("{label}已被使用，请换一个");
    }
    if r.starts_with("no account is named") {
        return "没有这个账户".into();
    }
    if r.starts_with("no active token has id") {
        return "没有这个有效的令牌（可能已吊销或已过期）".into();
    }
    if r.contains("is not a UUID") {
        return format!("{label}格式不对");
    }
    if r.contains("is out of range") {
        return format!("{label}超出范围");
    }
    if r.contains("loses its last digits") {
        return format!(
            "{label}被 Excel 存成了数字，只保留 15 位有效数字、末几位已丢失；请把该列设为“文本”后重新填写"
        );
    }
    if r.contains("already exists") || r.contains("appears twice") {
        return format!("{label}重复：该通报已登记过");
    }
    tracing::debug!(field, rule, "a refusal without a Chinese sentence");
    format!("{label}填写有误")
}

/// A service's refusal as staff read it: a field's rule through
/// `field_error_zh`, the other sorts by what they mean for the clerk.
pub fn refusal_zh(e: &DomainError) -> String {
    // A refusal written in Chinese first says itself.
    if e.message.chars().next().is_some_and(is_cjk) {
        return field_error_zh(&e.field, &e.message);
    }
    match e.kind {
        Refused::Invalid | Refused::Exists | Refused::TooLarge => {
            field_error_zh(&e.field, &e.message)
        }
        Refused::NotFound => "没有找到这条通报（可能编号有误，或不在本地区）".into(),
        Refused::NotPermitted => "当前账户的角色不能做这项操作；如需办理请联系主管".into(),
        Refused::WrongState => {
            "这条通报的状态已经变了（可能已由他人办理或已被撤回），请刷新后再看".into()
        }
        Refused::NotYet => "暂时无法办理，请稍后再试".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IdNumber;

    #[test]
    fn a_rule_is_said_in_chinese_with_the_field_s_label() {
        let bad = IdNumber::parse("subject.id_number", "110105194912310021").unwrap_err();
        let s = field_error_zh(&bad.field, &bad.rule);
        assert!(s.starts_with("身份证号校验位不对"), "{s}");
        assert!(s.contains('X'), "{s}");
        assert_eq!(
            field_error_zh("notice.kind", "is required"),
            "请填写类别（可填：婚姻、怀孕、生育、节育措施）"
        );
        assert_eq!(
            field_error_zh("notice.details.birth.birth_order", "'x' is outside 1..15"),
            "孩次应在 1 到 15 之间"
        );
        let route = field_error_zh(
            "notice.destination",
            "no peer route reaches 110101; add one with `migrex peer add`",
        );
        assert!(
            route.contains("110101") && route.contains("线路"),
            "{route}"
        );
        assert_eq!(
            field_error_zh(
                "file",
                "超过 10000 行，请拆分文件 (more than 10000 rows (10001); split the file)"
            ),
            "超过 10000 行，请拆分文件"
        );
    }

    /// Every rule the domain writes, said through the catalogue: none
    /// falls through to the generic sentence, none keeps English.
    #[test]
    fn every_rule_of_the_domain_has_a_chinese_sentence() {
        let rules = [
            (
                "notice.subject.id_number",
                "must be 18 characters (or the old 15 digits), got 17",
            ),
            (
                "notice.subject.id_number",
                "the first 17 characters must be digits",
            ),
            (
                "notice.subject.id_number",
                "a 15-digit ID number must be all digits",
            ),
            (
                "notice.subject.id_number",
                "birth date 1990-02-30 is not a valid date",
            ),
            (
                "notice.subject",
                "a BIRTH notice must be about a woman; this ID number is a man's (17th digit odd)",
            ),
            (
                "notice.subject.birth_date",
                "contradicts the birth date in the ID number",
            ),
            (
                "notice.subject.sex",
                "contradicts the sex given by the ID number",
            ),
            (
                "notice.destination",
                "'双流' is not a district code (6, 9 or 12 digits)",
            ),
            (
                "notice.destination",
                "'999999' is not a known division code",
            ),
            ("notice.destination", "440303 is served by this node itself"),
            ("notice.destination", "must differ from the origin"),
            (
                "notice.details.birth.born_on",
                "'2030-01-01' is in the future (today is 2026-12-06)",
            ),
            (
                "notice.details.birth.born_on",
                "is before the subject's birth date",
            ),
            (
                "notice.details.pregnancy.expected_delivery_on",
                "must be after confirmed_on",
            ),
            (
                "notice.details.marriage.spouse_id_number",
                "must differ from the subject's ID number",
            ),
            ("notice.event_date", "differs from the date in the details"),
            (
                "notice.event_date",
                "'3/10/2026' is not a date of the form YYYY-MM-DD",
            ),
            ("birth_order", "'first' is not a whole number"),
            ("within_policy", "'maybe' is not yes or no"),
            ("notice.remarks", "must be at most 2000 characters"),
            ("notice.subject.name", "must not contain control characters"),
            (
                "notice.reply_required",
                "the reply policy requires FEEDBACK for this notice",
            ),
            (
                "reply.feedback.corrections",
                "CORRECTED feedback must name at least one corrected field",
            ),
            ("header", "unknown column 'colour' (known: id, destination)"),
            ("kind", "'x' is not one of MARRIAGE, BIRTH"),
            (
                "id_number",
                "row 3: a number of 16 or more digits loses its last digits in Excel; format the column as text (文本) and type it again",
            ),
            (
                "district",
                "'朝阳区' names no single district; give its code",
            ),
            ("current", "is not the current password"),
            ("new", "must be at least 12 characters"),
            (
                "user",
                "must hold only letters, digits, '.', '_', '-' and Chinese characters (not '!')",
            ),
            ("user", "an account named 'li.na' exists already"),
            ("user", "no account is named 'li.na'"),
            ("id", "no active token has id 7"),
            (
                "role",
                "'boss' is not one of clerk, supervisor, monitor, admin",
            ),
        ];
        for (field, rule) in rules {
            let s = field_error_zh(field, rule);
            assert!(!s.ends_with("填写有误"), "{field}: {rule} → {s}");
            // What the clerk typed is quoted back as typed: “colour”.
            let said: String = s
                .split('“')
                .map(|part| part.split_once('”').map_or(part, |(_, rest)| rest))
                .collect();
            assert!(
                !said
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .any(|w| w.len() >= 3 && w != "Excel"),
                "{field}: {rule} → {s}"
            );
        }
    }
}
