//! The chaos part's section of `RESULTS.md`: the soak's before/after table, the crash run's
//! counts, and B's calls under each slowloris attack beside the phase without one.

use std::fmt::Write;

use super::ChaosFigures;
use super::crash::Crash;
use super::probe::Sample;
use super::slowloris::{Bystander, Slowloris};
use super::soak::Soak;
use crate::stats::{Summary, format_micros};

pub fn render(out: &mut String, figures: &ChaosFigures) {
    for soak in &figures.soaks {
        soak_table(out, soak);
    }
    if let Some(crash) = &figures.crash {
        crash_section(out, crash);
    }
    if let Some(slowloris) = &figures.slowloris {
        slowloris_table(out, slowloris);
    }
}

fn megabytes(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |kib| {
        format!("{:.1} MB", kib as f64 * 1.024 / 1000.0)
    })
}

fn count<T: ToString>(value: Option<T>) -> String {
    value.map_or("n/a".into(), |value| value.to_string())
}

/// A figure's name and how to show it from a sample.
type Row = (&'static str, fn(&Sample) -> String);

/// One row per figure, one column per moment.
fn sample_rows(out: &mut String, samples: &[&Sample]) {
    let rows: [Row; 6] = [
        ("open descriptors", |s| count(s.fds)),
        ("RSS", |s| megabytes(s.rss_kib)),
        ("PSS", |s| megabytes(s.pss_kib)),
        ("threads", |s| count(s.threads)),
        ("live child processes", |s| s.children.to_string()),
        ("zombie children", |s| s.zombies.to_string()),
    ];
    for (name, show) in rows {
        let cells: Vec<String> = samples.iter().map(|sample| show(sample)).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
}

fn soak_table(out: &mut String, soak: &Soak) {
    let _ = writeln!(
        out,
        "## Soak: sessions one after another ({})\n",
        soak.transport
    );
    let _ = writeln!(
        out,
        "Each cycle: `session_open`, one `echo` in the new session, `session_close` (a cold worker each time; no pool). {} of {} cycles completed, {} failed{}, {:.0} cycles/s over {:.1} s. The supervisor, sampled {} times (\"max\" is over the samples):\n",
        soak.completed,
        soak.cycles,
        soak.failed,
        if soak.failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", soak.failures.join("; "))
        },
        soak.cycles_per_second(),
        soak.seconds,
        super::soak::SAMPLES,
    );
    let _ = writeln!(
        out,
        "| supervisor | at start | after 10% of the cycles | after 50% | after the last (reaped) | max |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    sample_rows(
        out,
        &[&soak.before, &soak.warm, &soak.half, &soak.after, &soak.max],
    );
    let _ = writeln!(
        out,
        "\nA zombie in the max column is a worker caught between its exit and the reaper's wait; the column after the last cycle is the one that must show none.\n"
    );
}

fn crash_section(out: &mut String, crash: &Crash) {
    let _ = writeln!(out, "## Crash under load (HTTP)\n");
    let _ = writeln!(
        out,
        "{} sessions, each called back to back (`echo`) by {} clients on keep-alive connections of their own, for {:.1} s; meanwhile {} workers picked at random were SIGKILLed, one every {:.0} ms.\n",
        crash.sessions,
        crash.clients_per_session,
        crash.seconds,
        crash.killed,
        crash.kill_interval_ms
    );
    let _ = writeln!(out, "| figure | measured |");
    let _ = writeln!(out, "| --- | --- |");
    let _ = writeln!(out, "| calls answered | {} |", crash.answered);
    let _ = writeln!(
        out,
        "| calls failed on killed sessions, as lost (`-32042` in flight, `-32041` after) | {} |",
        crash.lost_on_killed
    );
    let _ = writeln!(
        out,
        "| calls failed on killed sessions, any other way | {} |",
        crash.other_on_killed
    );
    let _ = writeln!(
        out,
        "| calls failed on sessions never killed (must be 0) | {} |",
        crash.failed_on_untouched
    );
    let _ = writeln!(
        out,
        "| untouched sessions closed cleanly afterwards | {} of {} |",
        crash.closed_cleanly.0, crash.closed_cleanly.1
    );
    let _ = writeln!(
        out,
        "| a session opened afterwards serves a call | {} |",
        if crash.fresh_session_works {
            "yes"
        } else {
            "**no**"
        }
    );
    let replaced = match &crash.default_replaced {
        Some(Ok(what)) => format!("yes: {}", what.replace('|', "\\|")),
        Some(Err(error)) => format!("**no**: {}", error.replace('|', "\\|")),
        None => "not measured".into(),
    };
    let _ = writeln!(
        out,
        "| stdio default session replaced after its worker is killed | {replaced} |"
    );
    if !crash.failures.is_empty() {
        let _ = writeln!(
            out,
            "| first unexpected failures | {} |",
            crash.failures.join("; ").replace('|', "\\|")
        );
    }
    let _ = writeln!(
        out,
        "\n| supervisor | before any session | max during the run | after (survivors closed, killed reaped) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    sample_rows(out, &[&crash.before, &crash.during_max, &crash.after]);
    let _ = writeln!(out);
}

fn latency(summary: Option<Summary>) -> String {
    summary.map_or("–".into(), |summary| {
        format!(
            "{} / {}",
            format_micros(summary.p50),
            format_micros(summary.p99)
        )
    })
}

fn bystander(figures: &Bystander) -> String {
    let rate = if figures.calls == 0 {
        0.0
    } else {
        100.0 * figures.answered as f64 / figures.calls as f64
    };
    let reconnects = if figures.reconnects > 0 {
        format!(
            ", {} sent again after the server closed the idle connection",
            figures.reconnects
        )
    } else {
        String::new()
    };
    format!(
        "{} of {} ({rate:.1}%{reconnects})",
        figures.answered, figures.calls
    )
}

fn slowloris_table(out: &mut String, slowloris: &Slowloris) {
    let plan = &slowloris.plan;
    let _ = writeln!(out, "## Slowloris: one principal ties up connections\n");
    let _ = writeln!(
        out,
        "`bulkhead serve` with two principals (tokens) and `--max-connections {}`, `--max-connections-per-principal {}`, `--max-listen-per-principal {}`, `--header-timeout {}`, `--body-timeout {}`. In each phase principal A runs {} connections of one kind, each reconnecting 10 ms after the server lets go of it, for {:.1} s before and during B's calls; B calls `echo` in its own session for {:.1} s, back to back, on a new connection per call and, at the same time, on one keep-alive connection (a call the server closed the idle connection under is sent again on a new one, as HTTP clients do); a call unanswered after {:.0} s counts as failed. Latency p50 / p99 of B's answered calls, connection set-up included.\n",
        plan.max_connections,
        plan.per_principal,
        plan.listen_per_principal,
        plan.header_timeout_secs,
        plan.body_timeout_secs,
        slowloris.attackers,
        plan.head_start.as_secs_f64(),
        plan.phase.as_secs_f64(),
        plan.call_timeout.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "| phase | B, new connection per call: answered | p50 / p99 | B, keep-alive: answered | p50 / p99 | A's connections | refused (503) | body timeout (408) | closed without a response | listen streams started | still open at the end | how long the server held A's closed connections, p50 / p99 |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for phase in &slowloris.phases {
        let a = &phase.attacks;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            phase.attack.describe(),
            bystander(&phase.fresh),
            latency(phase.fresh.latency),
            bystander(&phase.kept),
            latency(phase.kept.latency),
            a.connections,
            a.refused,
            a.timed_out,
            a.closed_silently,
            a.streams,
            a.held_to_end,
            latency(a.held),
        );
    }
    let failures: Vec<String> = slowloris
        .phases
        .iter()
        .flat_map(|phase| {
            let name = phase.attack.describe();
            phase
                .fresh
                .failures
                .iter()
                .map(move |failure| format!("{name}, new connection: {failure}"))
                .chain(
                    phase
                        .kept
                        .failures
                        .iter()
                        .map(move |failure| format!("{name}, keep-alive: {failure}")),
                )
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nB's first failures per phase:\n");
        for failure in failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    let _ = writeln!(out);
}
