//! The `/status` dashboard: server-rendered with askama from the same [`StatusDocument`] as
//! `/status.json`, so the page and the API cannot disagree.

use askama::Template;

use super::model::{FinishedView, PhaseView, StatusDocument, TaskView};

/// One segment of a task's timeline bar, in SVG user units (the bar is 1000 wide).
pub struct Segment {
    pub phase: &'static str,
    pub x: f64,
    pub width: f64,
    pub label: String,
}

pub struct TaskRow<'a> {
    pub task: &'a TaskView,
    pub elapsed: String,
    pub segments: Vec<Segment>,
}

pub struct FinishedRow<'a> {
    pub task: &'a FinishedView,
    pub duration: String,
    pub segments: Vec<Segment>,
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage<'a> {
    pub doc: &'a StatusDocument,
    pub tasks: Vec<TaskRow<'a>>,
    pub recent: Vec<FinishedRow<'a>>,
    pub uptime: String,
    pub heartbeat_age: String,
    pub hit_ratio: String,
    pub restarts_total: u64,
    pub load_percent: f64,
    pub jobs_percent: f64,
}

/// `3h 04m`, `12m 05s`, `42s`: what a human reads at a glance.
pub fn human_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {hours:02}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs:02}s")
    } else {
        format!("{secs}s")
    }
}

fn segments(timeline: &[PhaseView]) -> Vec<Segment> {
    let total: f64 = timeline.iter().map(|p| p.seconds).sum();
    if timeline.is_empty() {
        return Vec::new();
    }
    // Phases of a few milliseconds still get a sliver, so that the order stays visible.
    let min_share = 4.0;
    let mut widths: Vec<f64> = timeline
        .iter()
        .map(|p| {
            if total > 0.0 {
                (p.seconds / total * 1000.0).max(min_share)
            } else {
                1000.0 / timeline.len() as f64
            }
        })
        .collect();
    let sum: f64 = widths.iter().sum();
    for width in &mut widths {
        *width *= 1000.0 / sum;
    }
    let mut x = 0.0;
    timeline
        .iter()
        .zip(widths)
        .map(|(phase, width)| {
            let segment = Segment {
                phase: phase.phase,
                x,
                width,
                label: format!("{} {}", phase.phase, human_duration(phase.seconds)),
            };
            x += width;
            segment
        })
        .collect()
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

pub fn render(doc: &StatusDocument) -> Result<String, askama::Error> {
    let worker = &doc.worker;
    let page = StatusPage {
        doc,
        tasks: doc
            .tasks
            .iter()
            .map(|task| TaskRow {
                task,
                elapsed: human_duration(task.elapsed_seconds),
                segments: segments(&task.timeline),
            })
            .collect(),
        recent: doc
            .recent_tasks
            .iter()
            .map(|task| FinishedRow {
                task,
                duration: human_duration(task.duration_seconds),
                segments: segments(&task.timeline),
            })
            .collect(),
        uptime: human_duration(worker.uptime_seconds),
        heartbeat_age: worker.last_heartbeat_age_seconds.map_or_else(
            || "never".to_owned(),
            |s| format!("{} ago", human_duration(s)),
        ),
        hit_ratio: doc
            .policy_cache
            .hit_ratio
            .map_or_else(|| "–".to_owned(), |r| format!("{:.0}%", r * 100.0)),
        restarts_total: doc.actor_restarts.hub_poller
            + doc.actor_restarts.policy_cache
            + doc.actor_restarts.container_registry,
        load_percent: percent(worker.task_load, worker.capacity.unwrap_or(0.0)),
        jobs_percent: percent(worker.running_tasks as f64, worker.maxjobs as f64),
    };
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human_duration(0.4), "0s");
        assert_eq!(human_duration(42.0), "42s");
        assert_eq!(human_duration(725.0), "12m 05s");
        assert_eq!(human_duration(3.0 * 3600.0 + 240.0), "3h 04m");
        assert_eq!(human_duration(90_000.0), "1d 01h");
    }

    #[test]
    fn timeline_segments_fill_the_bar_in_order() {
        let phase = |name: &'static str, seconds: f64| PhaseView {
            phase: name,
            since: String::new(),
            seconds,
        };
        let segs = segments(&[
            phase("opened", 0.001),
            phase("buildroot", 30.0),
            phase("building", 90.0),
        ]);
        assert_eq!(segs.len(), 3);
        assert!(segs[0].width > 0.0);
        assert!(segs[2].width > segs[1].width);
        let end = segs[2].x + segs[2].width;
        assert!((end - 1000.0).abs() < 1e-6, "bar ends at {end}");
        assert!(segments(&[]).is_empty());
    }
}
