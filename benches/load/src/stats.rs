//! Statistics of a run: quantiles, and bootstrap intervals over its
//! cycles (a cycle's slices resampled together), the steal adjustment
//! included.

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0 ≤ q ≤ 1) of `values`, interpolated linearly between
/// order statistics (R's type 7: the median of an even count is the mean
/// of the middle two). NaN for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    match v.len() {
        0 => f64::NAN,
        1 => v[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let (lo, frac) = (h.floor() as usize, h - h.floor());
            if lo + 1 < n && frac > 0.0 {
                v[lo] + (v[lo + 1] - v[lo]) * frac
            } else {
                v[lo]
            }
        }
    }
}

/// A small deterministic random number generator (xorshift64*), for the
/// bootstrap: the same run gives the same interval.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the bias of the modulo is below 2⁻⁵⁰ for
    /// the counts used here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The bootstrap's seed: fixed, so a report can be reproduced from its
/// slices.
pub const BOOTSTRAP_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A percentile bootstrap: `statistic` of `resamples` resamples (with
/// replacement) of the indices `0..n`, and the `(1 − level)/2` and
/// `(1 + level)/2` quantiles of its values: for `level` 0.9, the 5th and
/// 95th percentiles. `(NaN, NaN)` for `n` = 0.
pub fn bootstrap_interval(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    statistic: impl Fn(&[usize]) -> f64,
) -> (f64, f64) {
    if n == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = XorShift::new(seed);
    let mut idx = vec![0; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.below(n));
            statistic(&idx)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (
        quantile_sorted(&values, tail),
        quantile_sorted(&values, 1.0 - tail),
    )
}

/// A figure measured once per cycle as `num[k] / den[k]` (a difference of
/// CPU per request has `den` 1, a ratio of two variants' figures has the
/// second one there), summed up over the cycles of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Median and quartiles of the per-cycle values.
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    /// Bootstrap interval (over cycles) of the median.
    pub median_lo: f64,
    pub median_hi: f64,
    /// Σ num / Σ den over all cycles: for a difference the mean, for
    /// (b − a)/(c − a) the ratio of the summed differences.
    pub pooled: f64,
    /// Bootstrap interval (over cycles) of `pooled`.
    pub pooled_lo: f64,
    pub pooled_hi: f64,
    /// The number of cycles.
    pub n: usize,
}

impl Estimate {
    /// The estimate of `num[k] / den[k]` over cycles `k`, with bootstrap
    /// intervals at `level` from `resamples` resamples of the cycles.
    pub fn of(num: &[f64], den: &[f64], resamples: usize, level: f64) -> Estimate {
        assert_eq!(num.len(), den.len());
        Estimate::over_cycles(num.len(), resamples, level, |idx| {
            (
                idx.iter().map(|&i| num[i]).collect(),
                idx.iter().map(|&i| den[i]).collect(),
            )
        })
    }

    /// The estimate of a per-cycle difference (`den` 1 everywhere).
    pub fn of_differences(values: &[f64], resamples: usize, level: f64) -> Estimate {
        Estimate::of(values, &vec![1.0; values.len()], resamples, level)
    }

    /// The general form: `pairs(cycles)` gives `(num, den)`, one of each
    /// per cycle listed in `cycles` (a list of indices in `0..n`, repeats
    /// allowed), and may compute them from those cycles only, as a fit
    /// would (see [`steal_adjusted`]): the bootstrap then repeats the fit
    /// in every resample.
    pub fn over_cycles(
        n: usize,
        resamples: usize,
        level: f64,
        pairs: impl Fn(&[usize]) -> (Vec<f64>, Vec<f64>),
    ) -> Estimate {
        let median_of = |idx: &[usize]| {
            let (x, y) = pairs(idx);
            median(&x.iter().zip(&y).map(|(x, y)| x / y).collect::<Vec<_>>())
        };
        let pooled = |idx: &[usize]| {
            let (x, y) = pairs(idx);
            x.iter().sum::<f64>() / y.iter().sum::<f64>()
        };
        let all: Vec<usize> = (0..n).collect();
        let (x, y) = pairs(&all);
        let per_cycle: Vec<f64> = x.iter().zip(&y).map(|(x, y)| x / y).collect();
        let (median_lo, median_hi) =
            bootstrap_interval(n, resamples, level, BOOTSTRAP_SEED, median_of);
        let (pooled_lo, pooled_hi) =
            bootstrap_interval(n, resamples, level, BOOTSTRAP_SEED ^ 1, pooled);
        Estimate {
            median: median(&per_cycle),
            q1: quantile(&per_cycle, 0.25),
            q3: quantile(&per_cycle, 0.75),
            median_lo,
            median_hi,
            pooled: pooled(&all),
            pooled_lo,
            pooled_hi,
            n,
        }
    }
}

/// Per-slice figures `y[cycle][case]` (each > 0) corrected for a
/// covariate `s[cycle][case]` measured in the same slice, for the cycles
/// listed in `cycles`: the model is `ln y = μ(case) + β·s + noise`, β the
/// least-squares slope within each case, pooled over the cases; each
/// value is multiplied by `exp(−β·(s − reference))`, `reference` the
/// median of `s` over those slices. Returns the corrected rows (in the
/// order of `cycles`) and β.
///
/// Used with the share of the proxy's core the hypervisor stole during a
/// slice: on a shared VM that is the largest known cause of the spread of
/// Envoy's CPU per request, the same for every variant, and measured.
pub fn steal_adjusted(y: &[Vec<f64>], s: &[Vec<f64>], cycles: &[usize]) -> (Vec<Vec<f64>>, f64) {
    let cases = y.first().map_or(0, Vec::len);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for case in 0..cases {
        let m = cycles.len() as f64;
        let mean_s = cycles.iter().map(|&k| s[k][case]).sum::<f64>() / m;
        let mean_y = cycles.iter().map(|&k| y[k][case].ln()).sum::<f64>() / m;
        for &k in cycles {
            sxy += (s[k][case] - mean_s) * (y[k][case].ln() - mean_y);
            sxx += (s[k][case] - mean_s).powi(2);
        }
    }
    // Shares of a core: a spread below 1e-9 is rounding, not a spread.
    let beta = if sxx > 1e-9 { sxy / sxx } else { 0.0 };
    let reference = median(
        &cycles
            .iter()
            .flat_map(|&k| s[k].iter().copied())
            .collect::<Vec<_>>(),
    );
    let rows = cycles
        .iter()
        .map(|&k| {
            (0..cases)
                .map(|c| y[k][c] * (-beta * (s[k][c] - reference)).exp())
                .collect()
        })
        .collect();
    (rows, beta)
}

/// `median(num) / median(den)` over cycles, with its bootstrap interval
/// (resampling cycles, the pairs kept together): a ratio of two paired
/// differences that one cycle's tiny denominator cannot throw off.
pub fn ratio_of_medians(num: &[f64], den: &[f64], resamples: usize, level: f64) -> (f64, f64, f64) {
    let stat = |idx: &[usize]| {
        let pick = |v: &[f64]| median(&idx.iter().map(|&i| v[i]).collect::<Vec<_>>());
        pick(num) / pick(den)
    };
    let all: Vec<usize> = (0..num.len()).collect();
    let (lo, hi) = bootstrap_interval(num.len(), resamples, level, BOOTSTRAP_SEED ^ 2, stat);
    (stat(&all), lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.75), 4.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_rng_is_deterministic_and_spread() {
        let mut a = XorShift::new(42);
        let mut b = XorShift::new(42);
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            counts[x] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_steal_adjustment_finds_a_common_slope() {
        // Two cases, 1.0 and 2.0, inflated by exp(0.5·s).
        let s: Vec<Vec<f64>> = (0..6)
            .map(|k| vec![0.05 * k as f64, 0.3 - 0.05 * k as f64])
            .collect();
        let y: Vec<Vec<f64>> = s
            .iter()
            .map(|r| vec![(0.5 * r[0]).exp(), 2.0 * (0.5 * r[1]).exp()])
            .collect();
        let all: Vec<usize> = (0..6).collect();
        let (rows, beta) = steal_adjusted(&y, &s, &all);
        assert!((beta - 0.5).abs() < 1e-9, "{beta}");
        let reference = median(&s.concat());
        for r in &rows {
            assert!((r[0] - (0.5 * reference).exp()).abs() < 1e-9);
            assert!((r[1] / r[0] - 2.0).abs() < 1e-9);
        }
        // Over a resample, only those cycles, in that order.
        let (rows, _) = steal_adjusted(&y, &s, &[5, 5, 0]);
        assert_eq!(rows.len(), 3);
        // No spread of the covariate: nothing to fit, nothing changed.
        let flat = vec![vec![0.1, 0.1]; 3];
        let (rows, beta) = steal_adjusted(&y[..3], &flat, &[0, 1, 2]);
        assert_eq!(beta, 0.0);
        assert_eq!(rows, y[..3].to_vec());
    }

    #[test]
    fn estimates_of_a_ratio() {
        // (b − a)/(c − a) per cycle: 2 in every cycle but one outlier.
        let num = [20.0, 22.0, 18.0, 20.0, 200.0, 20.0, 21.0, 19.0];
        let den = [10.0, 11.0, 9.0, 10.0, 1.0, 10.0, 10.5, 9.5];
        let e = Estimate::of(&num, &den, 2000, 0.9);
        assert_eq!(e.n, 8);
        assert_eq!(e.median, 2.0);
        assert!(e.q1 <= e.median && e.median <= e.q3);
        assert!(e.median_lo <= e.median && e.median <= e.median_hi);
        assert!((e.pooled - 340.0 / 71.0).abs() < 1e-12);
        assert!(e.pooled_lo <= e.pooled && e.pooled <= e.pooled_hi);
        // Deterministic.
        assert_eq!(e, Estimate::of(&num, &den, 2000, 0.9));
        let d = Estimate::of_differences(&[1.0, 2.0, 3.0], 100, 0.9);
        assert_eq!((d.median, d.pooled), (2.0, 2.0));
        let (r, lo, hi) = ratio_of_medians(&num, &den, 2000, 0.9);
        assert_eq!(r, 20.0 / 10.0);
        assert!(lo <= r && r <= hi);
    }
}
