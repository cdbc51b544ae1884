//! The integration suite, one test binary (it links the crate once): real
//! nodes on 127.0.0.1 with real TLS, on SQLite files or, in `scripts/test`'s
//! second pass, on a real PostgreSQL; `migrex` processes where a test runs
//! the binary as operators do. A module per subject.

mod common;

mod audit;
mod bad_input;
mod calendar;
mod cli;
mod connections;
mod console;
mod console_day;
mod console_work;
mod crash;
mod deadlines;
mod directory;
mod exchange;
mod joining;
mod limits;
mod logins;
mod network;
mod operator;
mod outage;
mod paging;
mod proofs;
mod reconcile;
mod relay;
mod reminders;
mod replicas;
mod reply_rules;
mod roles;
mod search;
mod stats_agree;
mod store_copy;
mod store_tls;
mod supervision;
mod timeliness;
mod trust;
mod uploads;
