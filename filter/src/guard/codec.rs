//! The merged state as bytes, for the host's shared data: every worker
//! decodes it, adds its delta and writes it back at every tick, so it is
//! small (counts as varints, a histogram's runs of empty buckets as one
//! number: a few KB for a busy split, under 16 KB for 1 stable and 1 target
//! over 30 s with every bucket of every second in use) and its decoding
//! trusts nothing: bytes of another format, another configuration or
//! simply garbage give `None`, never a panic.
//!
//! Layout (little-endian): `"tg"`, [`FORMAT`], the plan's fingerprint
//! (u64), flags (bit 0: a current slot follows, bit 1: a trip), the
//! current slot (i64), the trip (target u16, rule u8, measured f64, limit
//! f64), per target its test (flag u8, first minute i64 if the flag is 1,
//! started u64, target responses u64, one f64 per alternative), then the count of non-empty slots
//! and each one, youngest first: its age in slots, then per cluster responses, errors,
//! timed, slow and the histogram (a count, or 0 and the length of a run of
//! empty buckets), all as LEB128 varints.

use super::histogram::BUCKETS;
use super::sprt::ErrorRatioTest;
use super::window::{Window, ERRORS, HIST, RESPONSES, SLOW, STRIDE, TIMED};
use super::{GuardPlan, Merged, Rule, Trip};

/// The version of the bytes; a shell may put it in its shared-data key.
pub const FORMAT: u8 = 1;

const MAGIC: &[u8; 2] = b"tg";
const HAS_CURRENT: u8 = 1;
const HAS_TRIP: u8 = 2;

impl Merged {
    /// The state as bytes, for [`Merged::decode`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        let w = &self.window;
        out.extend_from_slice(&w.plan.fingerprint(w.layout.clusters).to_le_bytes());
        let flags = if w.current.is_some() { HAS_CURRENT } else { 0 }
            | if self.trip.is_some() { HAS_TRIP } else { 0 };
        out.push(flags);
        if let Some(current) = w.current {
            out.extend_from_slice(&current.to_le_bytes());
        }
        if let Some(trip) = self.trip {
            out.extend_from_slice(&(trip.target.min(usize::from(u16::MAX)) as u16).to_le_bytes());
            out.push(trip.rule as u8);
            out.extend_from_slice(&trip.measured.to_le_bytes());
            out.extend_from_slice(&trip.limit.to_le_bytes());
        }
        for test in &self.tests {
            match test.first_epoch {
                Some(first) => {
                    out.push(1);
                    out.extend_from_slice(&first.to_le_bytes());
                }
                None => out.push(0),
            }
            out.extend_from_slice(&test.started.to_le_bytes());
            out.extend_from_slice(&test.target_responses.to_le_bytes());
            for log_a in test.log_started {
                out.extend_from_slice(&log_a.to_le_bytes());
            }
        }
        encode_slots(w, &mut out);
        out
    }

    /// The state written by [`Merged::encode`] for the same plan and
    /// cluster count; `None` for anything else.
    pub fn decode(plan: &GuardPlan, clusters: usize, bytes: &[u8]) -> Option<Merged> {
        let mut r = Reader { bytes };
        if r.take(2)? != MAGIC || r.u8()? != FORMAT || r.u64()? != plan.fingerprint(clusters) {
            return None;
        }
        let mut merged = Merged::new(plan, clusters);
        let flags = r.u8()?;
        if flags & !(HAS_CURRENT | HAS_TRIP) != 0 {
            return None;
        }
        if flags & HAS_CURRENT != 0 {
            merged.window.current = Some(r.i64()?);
        }
        if flags & HAS_TRIP != 0 {
            merged.trip = Some(trip(&mut r, clusters)?);
        }
        for test in &mut merged.tests {
            *test = error_ratio_test(&mut r)?;
        }
        decode_slots(&mut r, &mut merged.window)?;
        r.bytes.is_empty().then_some(merged)
    }
}

fn encode_slots(w: &Window, out: &mut Vec<u8>) {
    let Some(current) = w.current else {
        varint(out, 0);
        return;
    };
    // Non-empty slots, youngest first.
    let mut live: Vec<(u64, usize)> = (0..w.layout.slots)
        .map(|pos| ((current - w.slot_at(pos, current)) as u64, pos))
        .filter(|&(_, pos)| {
            (0..w.layout.clusters).any(|c| w.cells[w.cell_index(pos, c) + RESPONSES] > 0)
        })
        .collect();
    live.sort_unstable();
    varint(out, live.len() as u64);
    for (age, pos) in live {
        varint(out, age);
        for cluster in 0..w.layout.clusters {
            let at = w.cell_index(pos, cluster);
            let cell = &w.cells[at..at + STRIDE];
            for field in [RESPONSES, ERRORS, TIMED, SLOW] {
                varint(out, u64::from(cell[field]));
            }
            encode_histogram(&cell[HIST..], out);
        }
    }
}

/// A count, or 0 and the length of a run of empty buckets.
fn encode_histogram(counts: &[u32], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < counts.len() {
        if counts[i] > 0 {
            varint(out, u64::from(counts[i]));
            i += 1;
        } else {
            let run = counts[i..].iter().take_while(|&&c| c == 0).count();
            varint(out, 0);
            varint(out, run as u64);
            i += run;
        }
    }
}

fn trip(r: &mut Reader<'_>, clusters: usize) -> Option<Trip> {
    let target = usize::from(r.u16()?);
    let rule = *Rule::ALL.get(usize::from(r.u8()?))?;
    let (measured, limit) = (r.f64()?, r.f64()?);
    let ok = (1..clusters).contains(&target) && !measured.is_nan() && limit.is_finite();
    ok.then_some(Trip {
        target,
        rule,
        measured,
        limit,
    })
}

fn error_ratio_test(r: &mut Reader<'_>) -> Option<ErrorRatioTest> {
    let mut test = ErrorRatioTest {
        first_epoch: match r.u8()? {
            0 => None,
            1 => Some(r.i64()?),
            _ => return None,
        },
        started: r.u64()?,
        target_responses: r.u64()?,
        ..ErrorRatioTest::default()
    };
    for log_a in &mut test.log_started {
        *log_a = r.f64()?;
        // `-inf` is "nothing started"; NaN or `+inf` is no state of ours.
        if log_a.is_nan() || *log_a == f64::INFINITY {
            return None;
        }
    }
    Some(test)
}

fn decode_slots(r: &mut Reader<'_>, w: &mut Window) -> Option<()> {
    let count = r.varint()?;
    let Some(current) = w.current else {
        return (count == 0).then_some(());
    };
    let slots = w.layout.slots as u64;
    if count > slots {
        return None;
    }
    let mut previous_age = None;
    for _ in 0..count {
        let age = r.varint()?;
        // Youngest first, each slot once, all live.
        if age >= slots || previous_age.is_some_and(|p| age <= p) {
            return None;
        }
        previous_age = Some(age);
        let slot = current.checked_sub(age as i64)?;
        let pos = slot.rem_euclid(slots as i64) as usize;
        for cluster in 0..w.layout.clusters {
            let at = w.cell_index(pos, cluster);
            decode_cell(r, &mut w.cells[at..at + STRIDE])?;
        }
    }
    w.rebuild_totals();
    Some(())
}

/// One cluster's cell, checked: errors and timed within responses, slow
/// within timed, the histogram adding up to timed.
fn decode_cell(r: &mut Reader<'_>, cell: &mut [u32]) -> Option<()> {
    for field in [RESPONSES, ERRORS, TIMED, SLOW] {
        cell[field] = u32::try_from(r.varint()?).ok()?;
    }
    let consistent = cell[ERRORS] <= cell[RESPONSES]
        && cell[TIMED] <= cell[RESPONSES]
        && cell[SLOW] <= cell[TIMED];
    if !consistent {
        return None;
    }
    let mut i = 0;
    let mut sum = 0u64;
    while i < BUCKETS {
        match r.varint()? {
            0 => {
                let run = usize::try_from(r.varint()?).ok()?;
                if run == 0 || run > BUCKETS - i {
                    return None;
                }
                i += run;
            }
            count => {
                cell[HIST + i] = u32::try_from(count).ok()?;
                sum += count;
                i += 1;
            }
        }
    }
    (sum == u64::from(cell[TIMED])).then_some(())
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads from the front of a byte slice; every read checks its length.
struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn f64(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }

    /// LEB128, at most 10 bytes, no bits beyond 64.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_overflow() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, value);
            let mut r = Reader { bytes: &out };
            assert_eq!(r.varint(), Some(value));
            assert!(r.bytes.is_empty());
        }
        let mut r = Reader { bytes: &[0xff; 10] };
        assert_eq!(r.varint(), None);
        let mut r = Reader {
            bytes: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        };
        assert_eq!(r.varint(), None);
        let mut r = Reader { bytes: &[0x80] };
        assert_eq!(r.varint(), None);
    }
}
