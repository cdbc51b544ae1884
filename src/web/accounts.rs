//! 管理 (admin): staff accounts and roles, staff tokens, peers and their
//! delivery state; and 修改密码, where everyone changes their own password.

use super::PageError;
use super::session::Staff;
use crate::auth::Role;
use crate::context::NodeCtx;
use crate::service::{ServiceError, admin};
use askama::Template;
use axum::extract::{Form, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;

struct Line {
    cells: Vec<String>,
}

struct UserLine {
    name: String,
    role: String,
    disabled: bool,
    locked: bool,
    cells: Vec<String>,
}

struct TokenLine {
    id: i64,
    cells: Vec<String>,
    active: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    users: Vec<UserLine>,
    tokens: Vec<TokenLine>,
    peers: Vec<Line>,
    /// The network directory (通讯录) in one line, if the node routes by one.
    directory: Option<String>,
    /// The districts this node relays for (中转), named; empty if none.
    serves: String,
    relay: Vec<Line>,
    roles: [&'static str; 4],
    message: Option<(bool, String)>,
    /// The holiday schedule in force and the year missing, if one is.
    schedule: admin::ScheduleStatus,
}

async fn admin_page(
    ctx: &NodeCtx,
    staff: &Staff,
    message: Option<(bool, String)>,
) -> Result<Html<String>, PageError> {
    let tz = ctx.deadlines.tz;
    let now = ctx.now();
    let users = admin::users(ctx, &staff.caller)
        .await?
        .into_iter()
        .map(|u| UserLine {
            name: u.name.clone(),
            role: u.role.clone(),
            disabled: u.disabled,
            locked: u.locked_until.is_some_and(|l| l > now),
            cells: vec![
                u.name,
                crate::domain::role_zh(&u.role).to_string(),
                super::local(tz, Some(u.created_at)),
                {
                    let mut state: Vec<String> = Vec::new();
                    if u.disabled {
                        state.push("已停用".into());
                    }
                    if let Some(l) = u.locked_until.filter(|l| *l > now) {
                        state.push(format!("锁定至 {}", super::local(tz, Some(l))));
                    }
                    if u.must_change_password {
                        state.push("待改密码".into());
                    }
                    if state.is_empty() {
                        "正常".into()
                    } else {
                        state.join("，")
                    }
                },
            ],
        })
        .collect();
    let tokens = admin::tokens(ctx, &staff.caller)
        .await?
        .into_iter()
        .map(|t| {
            let expired = t.expires_at.is_some_and(|e| e <= now);
            TokenLine {
                id: t.id,
                active: t.revoked_at.is_none() && !expired,
                cells: vec![
                    t.id.to_string(),
                    t.name,
                    crate::domain::role_zh(&t.role).to_string(),
                    super::local(tz, Some(t.created_at)),
                    t.expires_at
                        .map(|e| super::local(tz, Some(e)))
                        .unwrap_or_else(|| "长期".into()),
                    match (t.revoked_at, expired) {
                        (Some(r), _) => format!("已吊销 {}", super::local(tz, Some(r))),
                        (None, true) => "已过期".into(),
                        (None, false) => "有效".into(),
                    },
                ],
            }
        })
        .collect();
    let peers = admin::peers(ctx, &staff.caller)
        .await?
        .into_iter()
        .map(|p| Line {
            cells: vec![
                if p.prefix.is_empty() {
                    "（无路由可达）".into()
                } else {
                    crate::report::place(&p.prefix)
                },
                p.endpoint,
                if p.prefix.is_empty() {
                    String::new()
                } else if p.by_hand {
                    "手工添加".into()
                } else {
                    "通讯录".into()
                },
                p.waiting.to_string(),
                super::local(tz, p.oldest_waiting),
                p.refused.to_string(),
            ],
        })
        .collect();
    let directory = admin::directory(ctx, &staff.caller)?.map(|d| {
        if d.serial == 0 {
            format!("尚未取得通讯录（来源：{}）", d.sources.join("、"))
        } else {
            format!(
                "通讯录第 {} 版：{} 个区县，{} 条区划变更；签发于 {}，有效期至 {}{}（来源：{}）",
                d.serial,
                d.districts,
                d.changes,
                super::local(tz, Some(d.issued_at)),
                super::local(tz, Some(d.expires_at)),
                if d.expired {
                    "，已过期，请联系通讯录发布单位"
                } else {
                    ""
                },
                d.sources.join("、")
            )
        }
    });
    let state = admin::relay(ctx, &staff.caller).await?;
    let serves = state
        .serves
        .iter()
        .map(|c| crate::report::place(c))
        .collect::<Vec<_>>()
        .join("、");
    let relay = state
        .queues
        .into_iter()
        .map(|q| Line {
            cells: vec![
                crate::report::place(&q.target),
                q.waiting.to_string(),
                super::local(tz, q.oldest_waiting),
                q.refused.to_string(),
            ],
        })
        .collect();
    let view = AdminPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("admin"),
        users,
        tokens,
        peers,
        directory,
        serves,
        relay,
        roles: Role::NAMES,
        message,
        schedule: admin::schedule(ctx, &staff.caller)?,
    };
    Ok(Html(view.render()?))
}

pub(crate) async fn page(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
) -> Result<Html<String>, PageError> {
    admin_page(&ctx, &staff, None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct NewUserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
    password: String,
}

/// 新建账户: through the service; a refusal shows the page with its reason.
pub(crate) async fn add_user(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<NewUserForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    staff.caller.require_admin()?;
    let outcome = match Role::parse(&f.role) {
        Ok(role) => admin::add_user(&ctx, &staff.caller, &f.name, role, &f.password).await,
        Err(e) => Err(e.into()),
    };
    let message = match outcome {
        Ok(()) => (true, format!("已创建账户 {}", f.name.trim())),
        Err(ServiceError::Refused(r)) => (false, said(&r)),
        Err(e) => return Err(e.into()),
    };
    Ok(admin_page(&ctx, &staff, Some(message))
        .await?
        .into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Valid for this many days ("" for until revoked).
    #[serde(default)]
    days: String,
}

/// 新建令牌: through the service; the token is shown once, in the answer
/// to this request only (the page is never cached), and never logged.
pub(crate) async fn add_token(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<NewTokenForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let days = match f.days.trim() {
        "" => Ok(None),
        d => d.parse::<u32>().map(Some).map_err(|_| {
            ServiceError::Refused(crate::domain::DomainError::new(
                crate::domain::Refused::Invalid,
                "days",
                "is not a whole number",
            ))
        }),
    };
    let outcome = match (Role::parse(&f.role), days) {
        (Ok(role), Ok(days)) => admin::create_token(&ctx, &staff.caller, &f.name, role, days).await,
        (Err(e), _) => Err(e.into()),
        (_, Err(e)) => Err(e),
    };
    let message = match outcome {
        Ok((id, token)) => (
            true,
            format!(
                "已创建令牌 {id}（{}，{}）。令牌只显示这一次，请立即复制保存：{token}",
                f.name.trim(),
                crate::domain::role_zh(&f.role)
            ),
        ),
        Err(ServiceError::Refused(r)) => (false, said(&r)),
        Err(e) => return Err(e.into()),
    };
    Ok(admin_page(&ctx, &staff, Some(message))
        .await?
        .into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    id: i64,
}

/// 吊销令牌: through the service; this node refuses the token at once.
pub(crate) async fn revoke_token(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<RevokeForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let message = match admin::revoke_token(&ctx, &staff.caller, f.id).await {
        Ok(()) => (true, format!("已吊销令牌 {}", f.id)),
        Err(ServiceError::Refused(r)) => (false, said(&r)),
        Err(e) => return Err(e.into()),
    };
    Ok(admin_page(&ctx, &staff, Some(message))
        .await?
        .into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct ChangeUserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    action: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    question: String,
    verb: &'static str,
    name: String,
    action: String,
    /// The role chosen, for 改角色 (empty otherwise).
    role_chosen: String,
}

/// 停用, 启用, 解锁, 改角色, 重置密码, 删除 on an account's row: through the
/// service; 停用, 删除 and 改角色 ask once more first (a page of its own,
/// no script needed). A refusal shows 管理 with its reason.
pub(crate) async fn change_user(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<ChangeUserForm>,
) -> Result<Response, PageError> {
    use crate::auth::accounts::AccountChange as C;
    staff.check_form(&f.csrf)?;
    staff.caller.require_admin()?;
    let name = f.name.trim().to_string();
    let change = match f.action.as_str() {
        "disable" => Ok((C::Disable, "停用", "已停用账户")),
        "enable" => Ok((C::Enable, "启用", "已启用账户")),
        "delete" => Ok((C::Delete, "删除", "已删除账户")),
        "unlock" => Ok((C::Unlock, "解锁", "已解锁账户")),
        "reset-password" => Ok((
            C::ResetPassword(f.password.clone()),
            "重置密码",
            "已重置密码（须在下次登录时修改）：账户",
        )),
        "set-role" => Role::parse(&f.role)
            .map(|r| (C::SetRole(r), "更改角色", "已更改角色：账户"))
            .map_err(ServiceError::from),
        _ => Err(ServiceError::Refused(crate::domain::DomainError::new(
            crate::domain::Refused::Invalid,
            "action",
            "操作：未知的账户操作",
        ))),
    };
    let (change, verb, done) = match change {
        Ok(c) => c,
        Err(ServiceError::Refused(r)) => {
            return Ok(admin_page(&ctx, &staff, Some((false, said(&r))))
                .await?
                .into_response());
        }
        Err(e) => return Err(e.into()),
    };
    if matches!(change, C::Disable | C::Delete | C::SetRole(_)) && f.confirm != "1" {
        let question = match &change {
            C::Disable => {
                format!("停用账户 {name}？该账户已登录的会话将立即结束，启用前不能登录。")
            }
            C::Delete => format!(
                "删除账户 {name}？该账户将不能再登录，已登录的会话立即结束；此操作不能撤销。"
            ),
            _ => format!(
                "把账户 {name} 的角色改为 {}？该账户已登录的会话将立即结束。",
                f.role
            ),
        };
        let view = ConfirmPage {
            user: staff.caller.name.clone(),
            role: staff.caller.role.as_str(),
            csrf: staff.csrf.clone(),
            head: staff.head("admin"),
            question,
            verb,
            name,
            action: f.action.clone(),
            role_chosen: f.role.clone(),
        };
        return Ok(Html(view.render()?).into_response());
    }
    let message = match admin::change_user(&ctx, &staff.caller, &name, change).await {
        Ok(()) => (true, format!("{done} {name}")),
        Err(ServiceError::Refused(r)) => (false, said(&r)),
        Err(e) => return Err(e.into()),
    };
    Ok(admin_page(&ctx, &staff, Some(message))
        .await?
        .into_response())
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    user: String,
    role: &'static str,
    csrf: String,
    head: super::session::Head,
    error: Option<String>,
}

pub(crate) async fn password_page(staff: Staff) -> Result<Html<String>, PageError> {
    let view = PasswordPage {
        user: staff.caller.name.clone(),
        role: staff.caller.role.as_str(),
        csrf: staff.csrf.clone(),
        head: staff.head("password"),
        error: None,
    };
    Ok(Html(view.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
    again: String,
}

/// 修改密码: every session of the account ends; the login follows.
pub(crate) async fn change_password(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    let outcome = if f.new != f.again {
        Err("两次输入的新密码不一致".to_string())
    } else {
        match admin::change_own_password(&ctx, &staff.caller, &f.current, &f.new).await {
            Ok(()) => Ok(()),
            Err(ServiceError::Refused(r)) => Err(said(&r)),
            Err(e) => return Err(e.into()),
        }
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/login").into_response()),
        Err(error) => {
            let view = PasswordPage {
                user: staff.caller.name.clone(),
                role: staff.caller.role.as_str(),
                csrf: staff.csrf.clone(),
                head: staff.head("password"),
                error: Some(error),
            };
            Ok((axum::http::StatusCode::BAD_REQUEST, Html(view.render()?)).into_response())
        }
    }
}

/// A refusal of the account pages in Chinese (`domain::refusal_zh`); an
/// account's `name` is its 用户名 here, not a person's 姓名.
fn said(r: &crate::domain::DomainError) -> String {
    let mut r = r.clone();
    if r.field == "name" {
        r.field = "user".into();
    }
    crate::domain::refusal_zh(&r)
}
