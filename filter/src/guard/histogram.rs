//! The guard's latency buckets: fixed and log-linear, so that every worker,
//! the merged state and a decoded copy of it agree on what bucket `i` means.
//!
//! Latencies are whole milliseconds (what the flow measures). 0 to 7 ms
//! each have their own bucket; from 8 ms on, every doubling is cut into 8
//! equal buckets, so a bucket spans 1/16 to 1/8 of its lower bound (the
//! 300 ms of a delayed canary falls in 288..320, 200 ms in 192..208).
//! Everything from 2^17 ms (131 s) on shares the last bucket.
//!
//! A quantile is estimated by nearest rank, interpolated linearly inside the
//! bucket that holds the rank: its error is below one bucket's width, under
//! 12.5 % of the value, and two clusters with the same latencies read the
//! same estimate, so a ratio of equal latencies is 1 whatever the buckets.

/// How many buckets a histogram has.
pub const BUCKETS: usize = 8 + 14 * 8;

/// Sub-buckets per doubling, as a power of two.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// The first value of the last bucket's doubling: 2^16 ms.
const TOP_EXPONENT: u32 = 16;

/// The bucket of a latency in milliseconds.
pub fn bucket_of(ms: u64) -> usize {
    if ms < SUB {
        return ms as usize;
    }
    let exponent = 63 - ms.leading_zeros();
    if exponent > TOP_EXPONENT {
        return BUCKETS - 1;
    }
    let mantissa = (ms >> (exponent - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(exponent - SUB_BITS) * SUB + mantissa) as usize
}

/// The values bucket `i` holds: `lo..hi` milliseconds. A latency is a
/// whole millisecond that the clock truncated, so bucket 3 (`3..4`) holds
/// real latencies from 3 to 4 ms.
pub fn bounds(bucket: usize) -> (f64, f64) {
    let b = bucket.min(BUCKETS - 1) as u64;
    if b < SUB {
        return (b as f64, (b + 1) as f64);
    }
    let shift = (b - SUB) / SUB;
    let mantissa = (b - SUB) % SUB;
    let lo = (SUB + mantissa) << shift;
    (lo as f64, (lo + (1 << shift)) as f64)
}

/// The `q` quantile (0 < q <= 1) of `total` values counted in `counts`, by
/// nearest rank, interpolated inside its bucket; `None` when there are no
/// values. Walks down from the top bucket, since the guard asks only for
/// high quantiles; no allocation.
pub fn quantile<C: Copy + Into<u64>>(counts: &[C], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    // Nearest rank from the bottom, 1-based, then counted from the top.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let from_top = total - rank + 1;
    let mut above = 0u64;
    for (bucket, &count) in counts.iter().enumerate().rev() {
        let count: u64 = count.into();
        if count == 0 {
            continue;
        }
        if above + count >= from_top {
            // Position of the rank inside this bucket, from its bottom: 1..=count.
            let inside = count - (from_top - above) + 1;
            let (lo, hi) = bounds(bucket);
            return Some(lo + (hi - lo) * inside as f64 / count as f64);
        }
        above += count;
    }
    // The counts add up to less than `total` (a caller's inconsistency):
    // the lowest value seen is the best answer left.
    counts
        .iter()
        .position(|&c| c.into() > 0)
        .map(|b| bounds(b).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_in_order() {
        let mut previous_hi = 0.0;
        for b in 0..BUCKETS {
            let (lo, hi) = bounds(b);
            assert_eq!(lo, previous_hi, "bucket {b}");
            assert!(hi > lo);
            assert_eq!(bucket_of(lo as u64), b);
            assert_eq!(bucket_of(hi as u64 - 1), b);
            previous_hi = hi;
        }
        assert_eq!(previous_hi, 131_072.0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(1 << 20), BUCKETS - 1);
    }

    #[test]
    fn a_bucket_is_at_most_an_eighth_of_its_values() {
        for b in SUB as usize..BUCKETS {
            let (lo, hi) = bounds(b);
            assert!((hi - lo) / lo <= 0.125, "bucket {b}: {lo}..{hi}");
        }
        assert_ne!(bucket_of(200), bucket_of(300));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut counts = [0u32; BUCKETS];
        // 99 values of 5 ms and one of 300 ms.
        counts[bucket_of(5)] = 99;
        counts[bucket_of(300)] = 1;
        let p99 = quantile(&counts, 100, 0.99).unwrap();
        assert!((5.0..=6.0).contains(&p99), "{p99}");
        let p100 = quantile(&counts, 100, 1.0).unwrap();
        assert!((288.0..=320.0).contains(&p100), "{p100}");
        // Two of a hundred slow: the 99th value is slow.
        counts[bucket_of(5)] = 98;
        counts[bucket_of(300)] = 2;
        let p99 = quantile(&counts, 100, 0.99).unwrap();
        assert!((288.0..=320.0).contains(&p99), "{p99}");
        assert_eq!(quantile(&counts, 0, 0.99), None);
        // Inconsistent totals do not panic.
        assert_eq!(quantile(&counts, 1_000, 0.5), Some(5.0));
    }
}
