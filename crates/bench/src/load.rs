//! A closed-loop load generator: `concurrency` workers each take the next prepared input,
//! send it and wait for the answer, until the inputs run out or the time is up. Every
//! request's latency is recorded (microseconds, sorted for exact percentiles: a run holds
//! at most a few tens of thousands of samples).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a run did: each success's latency and output, the failures, and the wall time
/// from the first request to the last answer.
pub struct Outcome<R> {
    pub concurrency: usize,
    pub latencies_us: Vec<u64>,
    pub outputs: Vec<R>,
    pub errors: Vec<String>,
    pub elapsed: Duration,
    /// Inputs left when the time was up.
    pub unused: usize,
}

impl<R> Outcome<R> {
    /// Adds a later run at the same concurrency (the next slice of a window) to this one.
    pub fn absorb(&mut self, later: Outcome<R>) {
        self.latencies_us.extend(later.latencies_us);
        self.latencies_us.sort_unstable();
        self.outputs.extend(later.outputs);
        self.errors.extend(later.errors);
        self.elapsed += later.elapsed;
        self.unused += later.unused;
    }
}

/// `inputs` cut into `parts` runs in order, as even as they go (the last may be shorter).
pub fn split<T>(mut inputs: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let each = inputs.len().div_ceil(parts.max(1)).max(1);
    let mut tail = Vec::new();
    while inputs.len() > each {
        let rest = inputs.split_off(each);
        tail.push(std::mem::replace(&mut inputs, rest));
    }
    tail.push(inputs);
    tail
}

/// Runs `f` on `inputs` with `concurrency` workers on the current tokio runtime, stopping
/// early (between requests) once `limit` has passed.
pub async fn run<T, R, F, Fut>(
    inputs: Vec<T>,
    concurrency: usize,
    limit: Option<Duration>,
    f: F,
) -> Outcome<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, String>> + Send,
{
    let total = inputs.len();
    let queue = Arc::new(Mutex::new(VecDeque::from(inputs)));
    let f = Arc::new(f);
    let start = Instant::now();
    let deadline = limit.map(|l| start + l);
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (queue, f) = (queue.clone(), f.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut outputs = Vec::new();
            let mut errors = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(input) = next else { break };
                let t0 = Instant::now();
                match f(input).await {
                    Ok(out) => {
                        latencies.push(t0.elapsed().as_micros() as u64);
                        outputs.push(out);
                    }
                    Err(e) => errors.push(e),
                }
            }
            (latencies, outputs, errors)
        }));
    }
    let mut outcome = Outcome {
        concurrency,
        latencies_us: Vec::with_capacity(total),
        outputs: Vec::with_capacity(total),
        errors: Vec::new(),
        elapsed: Duration::ZERO,
        unused: 0,
    };
    for worker in workers {
        match worker.await {
            Ok((l, o, e)) => {
                outcome.latencies_us.extend(l);
                outcome.outputs.extend(o);
                outcome.errors.extend(e);
            }
            Err(e) => outcome.errors.push(format!("worker panicked: {e}")),
        }
    }
    outcome.elapsed = start.elapsed();
    outcome.unused = queue.lock().unwrap_or_else(|p| p.into_inner()).len();
    outcome.latencies_us.sort_unstable();
    outcome
}

/// Rate and latency of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub elapsed_s: f64,
    /// Successful requests per second of wall time.
    pub per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of<R>(o: &Outcome<R>) -> Self {
        let n = o.latencies_us.len();
        let elapsed_s = o.elapsed.as_secs_f64();
        Self {
            concurrency: o.concurrency,
            requests: n,
            errors: o.errors.len(),
            elapsed_s,
            per_s: n as f64 / elapsed_s.max(1e-9),
            mean_ms: if n == 0 {
                0.0
            } else {
                o.latencies_us.iter().sum::<u64>() as f64 / n as f64 / 1e3
            },
            p50_ms: percentile(&o.latencies_us, 0.50),
            p99_ms: percentile(&o.latencies_us, 0.99),
            max_ms: o.latencies_us.last().map_or(0.0, |&v| v as f64 / 1e3),
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let n = sorted_us.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted_us[rank - 1] as f64 / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7000], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn split_keeps_order_and_every_input() {
        let parts = split((0..10).collect::<Vec<u32>>(), 4);
        assert_eq!(
            parts,
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
        );
        assert_eq!(split(vec![1, 2], 4), vec![vec![1], vec![2]]);
        assert_eq!(split(Vec::<u8>::new(), 3), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn absorbed_slices_add_up_and_stay_sorted() {
        let slice = |latencies: Vec<u64>, ms: u64| Outcome {
            concurrency: 2,
            outputs: latencies.clone(),
            latencies_us: latencies,
            errors: vec![format!("at {ms}")],
            elapsed: Duration::from_millis(ms),
            unused: 1,
        };
        let mut whole = slice(vec![1000, 5000], 500);
        whole.absorb(slice(vec![2000, 3000, 4000], 1500));
        assert_eq!(whole.latencies_us, vec![1000, 2000, 3000, 4000, 5000]);
        assert_eq!(whole.outputs.len(), 5);
        assert_eq!(whole.errors.len(), 2);
        assert_eq!(whole.unused, 2);
        let s = Summary::of(&whole);
        assert_eq!(s.elapsed_s, 2.0);
        assert_eq!(s.per_s, 2.5);
        assert_eq!(s.p50_ms, 3.0);
    }

    #[tokio::test]
    async fn runs_every_input_once_and_counts_errors() {
        let out = run((0..50).collect(), 4, None, |i: u32| async move {
            if i.is_multiple_of(10) {
                Err(format!("bad {i}"))
            } else {
                Ok(i)
            }
        })
        .await;
        assert_eq!(out.outputs.len(), 45);
        assert_eq!(out.errors.len(), 5);
        assert_eq!(out.unused, 0);
        let s = Summary::of(&out);
        assert_eq!(s.requests, 45);
        assert_eq!(s.errors, 5);
    }
}
