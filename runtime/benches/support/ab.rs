//! The interleaved A/B/C runner the SQL benches share: rounds of short batches of every side,
//! the order rotating from round to round, with ratios taken inside each round so that drift
//! on a busy machine hits all sides alike. See docs/performance.md ("Noise, and the
//! interleaved mode").

use std::time::Instant;

/// On-CPU time of all of this process's threads so far, in nanoseconds (Linux
/// `/proc/self/task/*/schedstat`; 0 elsewhere).
pub fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Per-side medians of one interleaved comparison.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Median wall time per iteration of each side, µs.
    pub wall: [f64; 3],
    /// Median client CPU time per iteration of each side, µs.
    pub cpu: [f64; 3],
    /// Median of the per-round wall ratios side 0 / side 1 and side 2 / side 1.
    pub ratio: [f64; 2],
}

/// Runs the three sides in interleaved batches of `iters` iterations for `rounds` rounds
/// (after one untimed warm-up batch each), calling `reset` before every batch, outside the
/// timing. Side 1 is the reference the ratios divide by.
///
/// The sides are closures returning futures (`|| side()` turns an async closure into one), so
/// that with `Send` sides the whole comparison can run in a spawned task.
pub async fn interleave<R, A, B, C, FR, FA, FB, FC>(rounds: usize, iters: u32, reset: R, a: A, b: B, c: C) -> Outcome
where
    R: Fn() -> FR,
    A: Fn() -> FA,
    B: Fn() -> FB,
    C: Fn() -> FC,
    FR: std::future::Future<Output = ()>,
    FA: std::future::Future<Output = ()>,
    FB: std::future::Future<Output = ()>,
    FC: std::future::Future<Output = ()>,
{
    let mut wall: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut ratio: [Vec<f64>; 2] = Default::default();
    for round in 0..=rounds {
        let mut t = [0.0; 3];
        for k in 0..3 {
            // Rotate, and reverse every other round: each side runs first, second and last.
            let side = if round % 2 == 0 { (round + k) % 3 } else { (round + 3 - k) % 3 };
            reset().await;
            let (c0, t0) = (cpu_ns(), Instant::now());
            for _ in 0..iters {
                match side {
                    0 => a().await,
                    1 => b().await,
                    _ => c().await,
                }
            }
            t[side] = t0.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
            if round > 0 {
                wall[side].push(t[side]);
                cpu[side].push((cpu_ns() - c0) as f64 / 1e3 / f64::from(iters));
            }
        }
        if round > 0 {
            ratio[0].push(t[0] / t[1]);
            ratio[1].push(t[2] / t[1]);
        }
    }
    let m = |v: &mut Vec<f64>| median(v);
    Outcome {
        wall: [m(&mut wall[0]), m(&mut wall[1]), m(&mut wall[2])],
        cpu: [m(&mut cpu[0]), m(&mut cpu[1]), m(&mut cpu[2])],
        ratio: [m(&mut ratio[0]), m(&mut ratio[1])],
    }
}
