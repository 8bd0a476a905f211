//! The last lines of each running task's output, for the dashboard's live log tail.
//!
//! Each task's sink appends to its own small ring; the web layer reads through a cloneable
//! [`LogTails`] handle. Locks are held only to copy lines, never across an `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::runtime::{LogSink, OutputStream};

/// Lines kept per task.
pub const TAIL_LINES: usize = 200;
/// Longer lines are cut, so that one runaway line cannot hold much memory.
pub const MAX_LINE_BYTES: usize = 4096;

type Ring = Arc<Mutex<VecDeque<String>>>;

/// The read side, shared with the web layer.
#[derive(Clone, Default)]
pub struct LogTails {
    rings: Arc<DashMap<i64, Ring>>,
}

impl LogTails {
    /// The last `lines` lines of a running task's output, oldest first.
    pub fn tail(&self, task_id: i64, lines: usize) -> Vec<String> {
        let Some(ring) = self.rings.get(&task_id).map(|r| Arc::clone(r.value())) else {
            return Vec::new();
        };
        let ring = match ring.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        ring.iter()
            .skip(ring.len().saturating_sub(lines))
            .cloned()
            .collect()
    }

    pub(crate) fn sink(&self, task_id: i64) -> TailingLogSink {
        let ring = Arc::clone(
            self.rings
                .entry(task_id)
                .or_insert_with(|| Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES))))
                .value(),
        );
        TailingLogSink { task_id, ring }
    }

    pub(crate) fn forget(&self, task_id: i64) {
        self.rings.remove(&task_id);
    }
}

/// A task's default log sink: keeps the tail and forwards every line to `tracing`.
pub struct TailingLogSink {
    task_id: i64,
    ring: Ring,
}

impl LogSink for TailingLogSink {
    fn line(&self, stream: OutputStream, line: &str) {
        tracing::info!(task_id = self.task_id, ?stream, "{line}");
        let mut cut = line.len().min(MAX_LINE_BYTES);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut ring = match self.ring.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ring.len() == TAIL_LINES {
            ring.pop_front();
        }
        ring.push_back(line[..cut].to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_cuts_long_ones() {
        let tails = LogTails::default();
        let sink = tails.sink(7);
        for i in 0..(TAIL_LINES + 5) {
            sink.line(OutputStream::Stdout, &format!("line {i}"));
        }
        sink.line(OutputStream::Stderr, &"é".repeat(MAX_LINE_BYTES));
        let tail = tails.tail(7, 3);
        assert_eq!(tail[0], format!("line {}", TAIL_LINES + 3));
        assert!(tail[2].len() <= MAX_LINE_BYTES && tail[2].starts_with('é'));
        assert_eq!(tails.tail(7, 1000).len(), TAIL_LINES);
        tails.forget(7);
        assert!(tails.tail(7, 10).is_empty());
    }
}
