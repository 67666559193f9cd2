//! The frozen bucketing function of the contract.
//!
//! `bucket = XXH64(seed = 0, bytes = salt ++ ":" ++ user_key) mod 10000`.
//! Dashboards, analytics jobs and other languages reproduce it, so it must
//! never change: the test vectors below were computed with an independent
//! implementation (Python's `xxhash`).

use xxhash_rust::xxh64::{xxh64, Xxh64};

/// How many buckets the key space is cut into: one bucket is one basis point.
pub const BUCKETS: u16 = 10_000;

/// Keys up to this length are hashed from a stack buffer in one shot; longer
/// ones stream through the hasher. Both give the same digest.
const STACK_INPUT: usize = 256;

/// A user's place in `0..10000` for one salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(pub u16);

impl Bucket {
    /// The bucket of `user_key` under `salt`.
    pub fn of(salt: &[u8], user_key: &[u8]) -> Bucket {
        let len = salt.len() + 1 + user_key.len();
        let digest = if len <= STACK_INPUT {
            let mut buf = [0u8; STACK_INPUT];
            buf[..salt.len()].copy_from_slice(salt);
            buf[salt.len()] = b':';
            buf[salt.len() + 1..len].copy_from_slice(user_key);
            xxh64(&buf[..len], 0)
        } else {
            let mut hasher = Xxh64::new(0);
            hasher.update(salt);
            hasher.update(b":");
            hasher.update(user_key);
            hasher.digest()
        };
        Bucket((digest % u64::from(BUCKETS)) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (salt, key, bucket), computed with Python:
    /// `xxhash.xxh64((salt + ":" + key).encode(), seed=0).intdigest() % 10000`.
    pub(crate) const VECTORS: &[(&str, &str, u16)] = include!("bucket_vectors.in");

    #[test]
    fn matches_independent_implementation() {
        assert!(VECTORS.len() >= 10);
        for &(salt, key, want) in VECTORS {
            assert_eq!(
                Bucket::of(salt.as_bytes(), key.as_bytes()),
                Bucket(want),
                "salt={salt:?} key={key:?}"
            );
        }
    }

    #[test]
    fn long_keys_stream_to_the_same_digest() {
        for len in [0usize, 1, 200, 254, 255, 256, 257, 300, 8192] {
            let key = vec![b'k'; len];
            let mut joined = b"users:".to_vec();
            joined.extend_from_slice(&key);
            let want = (xxh64(&joined, 0) % 10_000) as u16;
            assert_eq!(Bucket::of(b"users", &key), Bucket(want), "len {len}");
        }
    }

    #[test]
    fn salt_changes_the_cohort() {
        let moved = (0..1000)
            .filter(|i| {
                let key = format!("user-{i}");
                Bucket::of(b"a", key.as_bytes()) != Bucket::of(b"b", key.as_bytes())
            })
            .count();
        assert!(moved > 990, "only {moved} of 1000 keys changed bucket");
    }
}
