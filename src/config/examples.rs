//! The example configs in `deploy/` against the config type: each shows
//! every setting `Config` has, with its default where it has one. A setting
//! added to the type without its line in both examples fails here (and the
//! struct literals below stop compiling, so the list cannot fall behind).

use super::*;

const SQLITE: &str = include_str!("../../deploy/migrex.example.toml");
const POSTGRES: &str = include_str!("../../deploy/migrex.postgres.example.toml");

/// A config with every optional setting present and every defaulted one
/// off its default, so that serialising it writes every key there is.
fn every_setting() -> Config {
    Config {
        district: "440303".into(),
        timezone: "Asia/Urumqi".into(),
        database: "m.db".into(),
        database_connections: 1,
        listen: "a".into(),
        desk_listen: "b".into(),
        ops_listen: "c".into(),
        calendar_file: Some("h.csv".into()),
        calendar_refresh_secs: 1,
        tls: TlsFiles {
            ca_cert: "ca".into(),
            cert: "c".into(),
            key: "k".into(),
            crl: Some("crl".into()),
            crl_refresh_secs: 1,
        },
        console: Some(ConsoleFiles {
            listen: "d".into(),
            cert: Some("c".into()),
            key: Some("k".into()),
        }),
        delivery: Delivery {
            batch_size: 1,
            max_batch: 1,
            backoff_initial_ms: 1,
            backoff_max_ms: 1,
            undelivered_alert_secs: 1,
            idle_poll_ms: 1,
            lease_secs: 1,
            accept_unsigned: true,
        },
        audit_key: "k".into(),
        limits: ListenLimits {
            idle_timeout_secs: 1,
            max_connections: 1,
            max_connections_per_address: 1,
            exchange_connections_per_peer: 1,
            request_head_secs: 1,
            max_streams: 1,
            exchange_streams: 1,
            desk_message_bytes: 1,
            exchange_item_bytes: 1,
            ops_timeout_secs: 1,
            ops_max_connections: 1,
            ops_max_connections_per_address: 1,
        },
        directory: Some(DirectoryFiles {
            sources: vec!["d".into()],
            refresh_secs: 1,
            held: "h".into(),
        }),
        peers: vec![Peer {
            prefix: "41".into(),
            endpoint: "https://x:1".into(),
        }],
        reply_policy: vec![PolicyEntry {
            category: Some("NOTIFICATION".into()),
            kind: Some("BIRTH".into()),
            urgency: Some("URGENT".into()),
            reply: "RECEIPT".into(),
            days: 1,
            count: DayCount::Working,
        }],
    }
}

/// Every key path of a TOML table: `tls.crl`, `peers[].prefix`.
fn paths(prefix: &str, table: &toml::Table, out: &mut std::collections::BTreeSet<String>) {
    for (k, v) in table {
        let path = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => paths(&format!("{path}."), t, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for item in items {
                    paths(&format!("{path}[]."), item.as_table().unwrap(), out);
                }
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

/// The example with its commented-out settings (`# key = value`) switched
/// on: what an operator gets by removing the `#`.
fn switched_on(example: &str) -> String {
    example
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("# ").unwrap_or(l);
            let key = rest.split('=').next().unwrap_or("").trim();
            let is_setting = rest.contains(" = ")
                && !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && toml::from_str::<toml::Table>(rest).is_ok();
            if is_setting { rest } else { l }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn both_examples_show_every_setting_with_its_default() {
    let wanted = {
        let table = toml::Table::try_from(every_setting()).unwrap();
        let mut out = Default::default();
        paths("", &table, &mut out);
        out
    };
    assert!(wanted.contains("limits.ops_max_connections") && wanted.contains("tls.crl"));
    for (name, example) in [
        ("migrex.example.toml", SQLITE),
        ("migrex.postgres.example.toml", POSTGRES),
    ] {
        // As written it is a config a node starts with.
        let c: Config = toml::from_str(example).unwrap_or_else(|e| panic!("{name}: {e}"));
        c.district().unwrap();
        assert_eq!(c.routes().unwrap().len(), 2, "{name}");
        assert_eq!(c.reply_policy().unwrap().rules.len(), 4, "{name}");
        assert!(c.console.is_some(), "{name}: the console is on");

        let all = switched_on(example);
        let table: toml::Table = toml::from_str(&all).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut shown = Default::default();
        paths("", &table, &mut shown);
        let missing: Vec<&String> = wanted.difference(&shown).collect();
        assert!(missing.is_empty(), "{name} does not show {missing:?}");

        // Defaults as the type has them.
        let c: Config = toml::from_str(&all).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.timezone, default_tz(), "{name}: timezone");
        assert_eq!(
            c.calendar_refresh_secs,
            default_calendar_refresh(),
            "{name}"
        );
        assert_eq!(c.tls.crl_refresh_secs, default_crl_refresh(), "{name}");
        assert_eq!(c.audit_key, default_audit_key(), "{name}: audit_key");
        assert_eq!(
            c.database_connections,
            default_database_connections(),
            "{name}"
        );
        let d = c.directory.as_ref().expect("[directory]");
        let defaults = DirectoryFiles::new(vec![]);
        assert_eq!(d.refresh_secs, defaults.refresh_secs, "{name}");
        assert_eq!(d.held, defaults.held, "{name}");
        assert_eq!(c.delivery, Delivery::default(), "{name}: [delivery]");
        assert_eq!(c.limits, ListenLimits::default(), "{name}: [limits]");
    }
    let pg: Config = toml::from_str(POSTGRES).unwrap();
    assert!(
        pg.database_location(Path::new("/"))
            .starts_with("postgres://")
    );
}
