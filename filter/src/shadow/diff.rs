//! Where two JSON values differ, as a set of folded pointers.
//!
//! Value by value: key order, whitespace and a number's spelling (`2`,
//! `2.0`, `2e0`) do not count. A key present on one side only differs at
//! its pointer, as does a change of type (string and number, null and a
//! value). Arrays are compared index by index, without aligning them: the
//! indices present on one side only differ at the array's folded `/*`
//! (`/items/*`), once, so one element added at the end is one field, and
//! one added in front also differs wherever the shifted elements do.
//! Ignored subtrees are never entered.
//!
//! Bounded for hostile bodies: recursion stops at [`MAX_DEPTH`] (deeper
//! than `serde_json` parses, 128, so a parsed body never reaches it), and
//! at most [`MAX_FIELDS_PER_PAIR`] fields are named; past that the result
//! is marked truncated.

use std::collections::BTreeSet;

use serde_json::{Number, Value};

use super::pointer::{folded, Pattern, Step};

/// The most distinct fields one comparison names: a split counts at most
/// 64 fields by name anyway (`FieldTable`), and a body that differs
/// everywhere should not cost a string per key.
pub const MAX_FIELDS_PER_PAIR: usize = 256;

/// Containers nested deeper than this are not walked into: a pair of them
/// differs at their pointer.
const MAX_DEPTH: usize = 130;

/// The fields where two values differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fields {
    pub set: BTreeSet<String>,
    /// More fields differ than [`MAX_FIELDS_PER_PAIR`].
    pub truncated: bool,
}

impl Fields {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && !self.truncated
    }
}

/// Compares `a` with `b`, leaving out what `ignore` matches (at most 64
/// patterns: those past it are not applied; configuration refuses them).
pub(super) fn fields(a: &Value, b: &Value, ignore: &[Pattern]) -> Fields {
    let ignore = &ignore[..ignore.len().min(64)];
    let all = if ignore.len() == 64 {
        u64::MAX
    } else {
        (1u64 << ignore.len()) - 1
    };
    let mut walk = Walk {
        ignore,
        path: Vec::new(),
        found: Fields::default(),
    };
    walk.values(a, b, all);
    walk.found
}

struct Walk<'v, 'p> {
    ignore: &'p [Pattern],
    path: Vec<Step<'v>>,
    found: Fields,
}

impl<'v> Walk<'v, '_> {
    /// `alive`: the patterns whose segments all matched the path so far.
    fn values(&mut self, a: &'v Value, b: &'v Value, alive: u64) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                if self.path.len() >= MAX_DEPTH {
                    return self.differ();
                }
                for (key, va) in x {
                    let vb = y.get(key);
                    self.child(Step::Key(key), alive, |w, alive| match vb {
                        Some(vb) => w.values(va, vb, alive),
                        None => w.differ(),
                    });
                }
                for key in y.keys().filter(|k| !x.contains_key(*k)) {
                    self.child(Step::Key(key), alive, |w, _| w.differ());
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if self.path.len() >= MAX_DEPTH {
                    return self.differ();
                }
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    self.child(Step::Index(i), alive, |w, alive| w.values(va, vb, alive));
                }
                // Every extra index folds to the same field: the first one
                // not ignored names it.
                for i in x.len().min(y.len())..x.len().max(y.len()) {
                    let mut named = false;
                    self.child(Step::Index(i), alive, |w, _| {
                        w.differ();
                        named = true;
                    });
                    if named {
                        break;
                    }
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                if !numbers_equal(x, y) {
                    self.differ();
                }
            }
            (Value::String(x), Value::String(y)) if x == y => {}
            (Value::Bool(x), Value::Bool(y)) if x == y => {}
            (Value::Null, Value::Null) => {}
            _ => self.differ(),
        }
    }

    /// Steps into `step` unless an ignore pattern ends there.
    fn child(&mut self, step: Step<'v>, alive: u64, f: impl FnOnce(&mut Self, u64)) {
        let depth = self.path.len();
        let mut next = 0u64;
        let mut bits = alive;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let segments = self.ignore[i].segments();
            if segments.get(depth).is_some_and(|s| s.matches(step)) {
                if segments.len() == depth + 1 {
                    return;
                }
                next |= 1 << i;
            }
        }
        self.path.push(step);
        f(self, next);
        self.path.pop();
    }

    fn differ(&mut self) {
        let field = folded(&self.path);
        if self.found.set.len() < MAX_FIELDS_PER_PAIR {
            self.found.set.insert(field);
        } else if !self.found.set.contains(&field) {
            self.found.truncated = true;
        }
    }
}

/// Numbers are equal when they are the same integer, or else the same
/// `f64` (`2` and `2.0`, `1e2` and `100`). Integers beyond 2^53 written
/// with a fraction or exponent compare as their nearest `f64`.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}
