//! `max_error_ratio`: a sequential test of "the target's error rate is at
//! most `k` times the stable cluster's", whose chance of ever raising a
//! false alarm is at most `alpha`, however long it runs and however often
//! it is looked at.
//!
//! **Conditioning on errors.** In a batch of responses, `n_t` from the
//! target and `n_s` from stable, with `e_t` and `e_s` errors, take the
//! errors as rare (Poisson counts with rates `q_t * n_t` and
//! `q_s * n_s`). Given their total `e = e_t + e_s`, `e_t` is then
//! Binomial(`e`, `p`) with `p = r n_t / (r n_t + n_s)` and `r = q_t / q_s`:
//! the stable side's own rate cancels, and what is left depends only on
//! the ratio under test. At the null's boundary `r = k` that is
//! `p0 = k n_t / (k n_t + n_s)`; under an alternative `r = m k` (`m > 1`),
//! `p1`. The batch's likelihood ratio simplifies to
//!
//! ```text
//! L = m^e_t * ((k n_t + n_s) / (m k n_t + n_s))^e
//! ```
//!
//! and its mean given `e` is exactly 1 at `r = k` and below 1 for any
//! `r < k` (it is increasing in `p`). A batch with no target or no stable
//! response, or no error, says nothing: its factor is 1.
//!
//! **Mixture over alternatives.** Not knowing how bad a failing target is,
//! the test averages the ratios of [`MULTIPLIERS`] (`m` from 1.5 to 16, so
//! it is quick against a target 3 to 30 times worse than stable at `k = 2`).
//! An average of nonnegative supermartingales that start at 1 is one too;
//! by Ville's inequality it reaches `1 / alpha` with probability at most
//! `alpha`, over unbounded time. The price of the average is `ln 5` nats
//! of evidence (about 1.6, beside `ln 1000 = 6.9` for `alpha = 0.001`).
//!
//! **Mixture over start times.** A plain likelihood ratio drifts down while
//! the target is healthy (by 0.1 to 1 nat per error at equal rates) and a
//! target that degrades after a long healthy run would first have to climb
//! back all of it: after an hour of healthy traffic, thousands of errors.
//! So the test also averages over when the trouble began: start point `j`
//! (the `j`-th minute since the first batch, [`EPOCH_S`]) carries weight
//! `1 / ((j + 1)(j + 2))`, which sum to 1, and its ratio counts only the
//! batches from its minute on. The weighted sum of these supermartingales,
//! each 1 until it starts, is a supermartingale that starts at 1, so the
//! bound holds unchanged; a failure beginning at minute `j` pays
//! `2 ln(j + 1.5)` nats more (9 after an hour, 15 after a day) rather than
//! everything the healthy run accumulated. It needs one number per
//! alternative: the weighted sum of the started ratios, updated per batch as
//! `A <- (A + weight of the minutes now due) * L`, kept in logarithms.
//!
//! **Batches and workers.** The state is a few numbers per target (kept in
//! the merged state, see `super::Merged`); a batch is what one worker
//! recorded since its last merge, folded once, when it is merged. Folding
//! in any order is a valid sequence of batches: each batch holds responses
//! no earlier batch held, and where its boundaries fall does not depend on
//! its errors. The test is judged on the merged state only: were each
//! worker to run its own test on its own share, each would have chance
//! `alpha` of a false alarm and the split would trip if any did, up to
//! `workers * alpha`.
//!
//! **When errors are not rare.** For Bernoulli responses the split of `e`
//! is a noncentral hypergeometric with odds ratio
//! `k (1 - q_s) / (1 - k q_s)` at the boundary, a little above `k`: at
//! exactly `k` times the stable rate the test leans toward tripping by about
//! that much (1 % more at 1 %/2 %, 2.6 % at 2.5 %/5 %, 5.6 % at 5 %/10 %). Below the
//! boundary (a healthy target, equal rates) the margin is wide. The
//! measured false-alarm rates are in filter/tests/guard.rs.

/// The alternatives averaged, as multiples of `k`.
pub const MULTIPLIERS: [f64; 5] = [1.5, 2.0, 4.0, 8.0, 16.0];

/// A new start point every minute.
pub const EPOCH_S: i64 = 60;

/// One batch of responses, from one worker's delta.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub target_responses: u64,
    pub target_errors: u64,
    pub stable_responses: u64,
    pub stable_errors: u64,
}

/// One target's test.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRatioTest {
    /// The minute (Unix time / [`EPOCH_S`]) of the first batch.
    pub(super) first_epoch: Option<i64>,
    /// Start points begun so far: minutes `0..started` since the first.
    pub(super) started: u64,
    /// Per alternative: ln of the weighted sum of the started ratios
    /// (`-inf` before the first batch).
    pub(super) log_started: [f64; MULTIPLIERS.len()],
    /// The target's responses folded so far: like every rule, the test
    /// trips no target before `min_requests` of them (which only removes
    /// alarms, so the bound holds).
    pub(super) target_responses: u64,
}

impl Default for ErrorRatioTest {
    fn default() -> Self {
        ErrorRatioTest {
            first_epoch: None,
            started: 0,
            log_started: [f64::NEG_INFINITY; MULTIPLIERS.len()],
            target_responses: 0,
        }
    }
}

impl ErrorRatioTest {
    /// Folds one batch, merged at `now_s`, into the test of ratio `k`.
    pub fn fold(&mut self, now_s: i64, k: f64, batch: Batch) {
        let epoch = now_s.div_euclid(EPOCH_S);
        let first = *self.first_epoch.get_or_insert(epoch);
        // Start points due: every minute up to this one (time that went
        // back starts none).
        let due = epoch
            .checked_sub(first)
            .and_then(|d| u64::try_from(d).ok())
            .map_or(self.started, |d| d.saturating_add(1));
        if due > self.started {
            // Weights 1/((j+1)(j+2)) of minutes started..due telescope.
            let weight = 1.0 / (self.started as f64 + 1.0) - 1.0 / (due as f64 + 1.0);
            for log_a in &mut self.log_started {
                *log_a = log_add(*log_a, weight.ln());
            }
            self.started = due;
        }
        let Batch {
            target_responses: n_t,
            target_errors: e_t,
            stable_responses: n_s,
            stable_errors: e_s,
        } = batch;
        self.target_responses = self.target_responses.saturating_add(n_t);
        let errors = e_t.saturating_add(e_s);
        if n_t == 0 || n_s == 0 || errors == 0 || k.is_nan() || k <= 0.0 {
            return;
        }
        let (n_t, n_s, e_t, errors) = (n_t as f64, n_s as f64, e_t as f64, errors as f64);
        let null = k * n_t + n_s;
        for (log_a, m) in self.log_started.iter_mut().zip(MULTIPLIERS) {
            *log_a += e_t * m.ln() + errors * (null / (m * k * n_t + n_s)).ln();
        }
    }

    /// ln of the test statistic: the mixture's value, 1 (ln 0) at the start.
    pub fn log_evidence(&self) -> f64 {
        let alternatives = MULTIPLIERS.len() as f64;
        // Each alternative: its started ratios plus the weight not yet
        // started (whose ratio is still 1).
        let log_unstarted = -(self.started as f64 + 1.0).ln();
        let sum = self
            .log_started
            .iter()
            .fold(f64::NEG_INFINITY, |acc, &log_a| {
                log_add(acc, log_add(log_a, log_unstarted))
            });
        sum - alternatives.ln()
    }

    /// Whether the evidence reached `1 / alpha`.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.log_evidence() >= -alpha.ln()
    }

    /// The target's responses folded so far.
    pub fn target_responses(&self) -> u64 {
        self.target_responses
    }
}

/// ln(e^a + e^b), exact for `-inf`.
fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n_t: u64, e_t: u64, n_s: u64, e_s: u64) -> Batch {
        Batch {
            target_responses: n_t,
            target_errors: e_t,
            stable_responses: n_s,
            stable_errors: e_s,
        }
    }

    #[test]
    fn starts_at_one() {
        let test = ErrorRatioTest::default();
        assert!(test.log_evidence().abs() < 1e-12);
        assert!(!test.rejects(0.5));
    }

    #[test]
    fn no_evidence_leaves_it_at_one() {
        let mut test = ErrorRatioTest::default();
        for b in [
            batch(100, 0, 100, 0),
            batch(0, 0, 100, 7),
            batch(100, 9, 0, 0),
        ] {
            test.fold(0, 2.0, b);
        }
        assert!(test.log_evidence().abs() < 1e-12, "{}", test.log_evidence());
    }

    #[test]
    fn the_likelihood_ratio_has_mean_one_at_the_boundary() {
        // e_t | e ~ Binomial(e, p0): the exact mean of each alternative's
        // ratio over the binomial is 1.
        let (k, n_t, n_s, e) = (2.0f64, 30.0f64, 70.0f64, 12u64);
        let p0 = k * n_t / (k * n_t + n_s);
        for m in MULTIPLIERS {
            let mut mean = 0.0;
            for x in 0..=e {
                let choose: f64 = (0..x).map(|i| (e - i) as f64 / (i + 1) as f64).product();
                let pr = choose * p0.powi(x as i32) * (1.0 - p0).powi((e - x) as i32);
                let log_l =
                    x as f64 * m.ln() + e as f64 * ((k * n_t + n_s) / (m * k * n_t + n_s)).ln();
                mean += pr * log_l.exp();
            }
            assert!((mean - 1.0).abs() < 1e-9, "m {m}: {mean}");
        }
    }

    #[test]
    fn evidence_grows_against_a_bad_target_and_a_later_start_costs_little() {
        let mut test = ErrorRatioTest::default();
        for second in 0..60 {
            test.fold(second, 2.0, batch(50, 5, 50, 0));
        }
        assert!(test.rejects(0.001), "{}", test.log_evidence());

        // An hour of healthy traffic first, then the same failure.
        let mut test = ErrorRatioTest::default();
        for second in 0..3600 {
            test.fold(second, 2.0, batch(50, 1, 50, 1));
        }
        assert!(test.log_evidence() < 0.0);
        let mut seconds = 0;
        while !test.rejects(0.001) {
            test.fold(3600 + seconds, 2.0, batch(50, 5, 50, 0));
            seconds += 1;
            assert!(seconds < 600, "{}", test.log_evidence());
        }
    }

    #[test]
    fn log_add_is_exact_at_the_edges() {
        assert_eq!(log_add(f64::NEG_INFINITY, 3.0), 3.0);
        assert_eq!(log_add(3.0, f64::NEG_INFINITY), 3.0);
        assert!((log_add(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
    }
}
