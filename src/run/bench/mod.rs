//! `hjepa bench ...`: throughput and latency tables. Ratios compare rows measured side by
//! side in the same run, never against numbers from another run.

#[cfg(feature = "torch")]
pub mod batch;
#[cfg(feature = "torch")]
pub mod model;
#[cfg(feature = "torch")]
pub mod plan;
pub mod sim;

#[cfg(feature = "torch")]
pub use batch::batch_table;
#[cfg(feature = "torch")]
pub use model::model_table;
#[cfg(feature = "torch")]
pub use plan::plan_table;
pub use sim::sim_table;

use std::time::Instant;

/// Runs `f` repeatedly for about `seconds`; returns units per second (`f` returns units done).
pub fn rate(seconds: f64, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < seconds {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Median and 95th percentile of `f`'s wall time in milliseconds, over calls made for about
/// `seconds` (at least 5, after one warm-up call).
pub fn latency_ms(seconds: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}
