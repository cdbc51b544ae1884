//! `migrex calendar`: the official holiday schedule (节假日安排) a node counts
//! working days with — which years it covers and where each comes from, and
//! loading a newly published year into the node's calendar file, which a
//! running node picks up by itself.

use crate::calendar::{Calendar, CalendarFile, Schedule};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum CalendarCommand {
    /// The years the holiday schedule covers, the source of each, and the
    /// year that is missing (this year, or from 1 November next year).
    #[command(
        after_help = "Examples:\n  migrex calendar show --config ./luohu/migrex.toml\n  migrex calendar show --json          # the schedule shipped in this binary"
    )]
    Show {
        /// The node's migrex.toml (without it: the shipped schedule alone).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check a schedule file (CSV date,day,name: whole years, dates in
    /// order, only `holiday` or `workday`, workdays on weekends) and lay its
    /// years over the node's calendar file (`calendar_file`, default
    /// holidays.csv beside the config). A running node puts it in force
    /// within `calendar_refresh_secs` and counts its provisional deadlines
    /// (时限（暂定）) again, telling their origins.
    #[command(
        after_help = "Example:\n  migrex calendar load 2027.csv --config ./luohu/migrex.toml\n\n2027.csv, from the State Council's notice (国务院办公厅关于2027年部分节假日安排的通知):\n  date,day,name\n  2027-01-01,holiday,元旦\n  2027-02-06,holiday,春节\n  …\n  2027-02-20,workday,春节\n  …"
    )]
    Load {
        /// The schedule to load.
        file: PathBuf,
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// Check the file and say what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn calendar(cmd: CalendarCommand) -> Result<()> {
    match cmd {
        CalendarCommand::Show { config, json } => show(config.as_deref(), json),
        CalendarCommand::Load {
            file,
            config,
            dry_run,
            json,
        } => load(&file, &config, dry_run, json),
    }
}

/// The node's calendar file and timezone name, from its config.
fn node_file(config: &Path) -> Result<(CalendarFile, String)> {
    let (c, base) = Config::load(config)?;
    Ok((c.calendar_file(&base), c.timezone))
}

/// Covered years as runs of one source: (first, last, source).
fn runs(calendar: &Calendar) -> Vec<(i32, i32, String)> {
    let mut out: Vec<(i32, i32, String)> = Vec::new();
    for (year, source) in calendar.covered_years() {
        match out.last_mut() {
            Some((_, last, s)) if *last + 1 == year && s == source => *last = year,
            _ => out.push((year, year, source.to_string())),
        }
    }
    out
}

fn show(config: Option<&Path>, as_json: bool) -> Result<()> {
    let (calendar, file, tz) = match config {
        Some(path) => {
            let (file, tz) = node_file(path)?;
            let calendar = file
                .calendar()
                .with_context(|| "calendar_file: the node's calendar file does not check")?;
            (calendar, Some(file.path), tz)
        }
        None => (Calendar::builtin(), None, "Asia/Shanghai".to_string()),
    };
    let deadlines = crate::calendar::Deadlines::new(&tz, calendar, Default::default())?;
    let calendar = deadlines.calendar();
    let missing = deadlines.missing_year(time::OffsetDateTime::now_utc());
    if as_json {
        let years: Vec<_> = calendar
            .covered_years()
            .map(|(y, s)| json!({"year": y, "source": s}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "years": years,
                "last_covered_year": calendar.last_covered_year(),
                "missing_year": missing,
                "calendar_file": file.as_ref().map(|f| f.display().to_string()),
            }))?
        );
        return Ok(());
    }
    println!("{:<11}  source", "years");
    for (first, last, source) in runs(&calendar) {
        let years = if first == last {
            first.to_string()
        } else {
            format!("{first}–{last}")
        };
        println!("{years:<11}  {source}");
    }
    println!(
        "last covered year: {} (working-day deadlines past it are provisional 时限（暂定）)",
        calendar.last_covered_year()
    );
    if let Some(f) = &file {
        println!("calendar file: {}", f.display());
    }
    if let Some(y) = missing {
        println!(
            "MISSING: the holiday schedule of {y} (节假日安排) is not loaded; load it with `migrex calendar load FILE --config …`"
        );
    }
    Ok(())
}

fn load(path: &Path, config: &Path, dry_run: bool, as_json: bool) -> Result<()> {
    let new = Schedule::read(path)?;
    let (file, _) = node_file(config)?;
    let older = if file.path.exists() {
        Some(Schedule::read(&file.path).with_context(|| {
            format!(
                "calendar_file: the node's calendar file {} does not check; fix it or move it away first",
                file.path.display()
            )
        })?)
    } else {
        None
    };
    let merged = new.laid_over(older.as_ref(), &file.path.display().to_string());
    let mut calendar = Calendar::builtin();
    let before = calendar.last_covered_year();
    calendar.lay(&merged);
    let years: Vec<i32> = new.years().into_iter().collect();
    if years.iter().any(|y| *y <= before) {
        eprintln!(
            "note: {} replaces the shipped schedule of {}",
            path.display(),
            years
                .iter()
                .filter(|y| **y <= before)
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let last = calendar.last_covered_year();
    if let Some(beyond) = years.iter().copied().find(|y| *y > last) {
        bail!(
            "{}: year {beyond} would leave a gap: the schedule covers the years to {last} and {} is not loaded; load {} first (or in the same file). Nothing was written.",
            path.display(),
            last + 1,
            last + 1
        );
    }
    if !dry_run {
        if let Some(dir) = file.path.parent() {
            crate::files::create_dir_all(dir)
                .with_context(|| format!("calendar_file: cannot create {}", dir.display()))?;
        }
        crate::files::replace(&file.path, merged.to_csv().as_bytes())
            .with_context(|| format!("calendar_file: cannot write {}", file.path.display()))?;
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "loaded_years": years,
                "dates": new.len(),
                "calendar_file": file.path.display().to_string(),
                "last_covered_year": last,
                "written": !dry_run,
            }))?
        );
        return Ok(());
    }
    let years_text = years
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if dry_run {
        println!(
            "{} checks: {years_text} ({} dates); loading it would cover the years to {last}. Nothing written (--dry-run).",
            path.display(),
            new.len()
        );
    } else {
        println!(
            "loaded {years_text} ({} dates) into {}; the schedule now covers the years to {last}. A running node puts it in force within {} s and counts its provisional deadlines (时限（暂定）) again.",
            new.len(),
            file.path.display(),
            file.refresh.as_secs()
        );
    }
    Ok(())
}
