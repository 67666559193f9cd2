//! Which fields of a split get a series of their own.
//!
//! The fields of `turnout_shadow_field_total` and `…_noise_total` come
//! from the bodies, so they cannot be defined with the configuration's
//! other metrics: a split's table gives each field label a slot in the
//! order the fields are first seen, at most [`MAX_FIELDS`]; every later
//! one shares the slot of `_other`. A slot is reported `new` once, when
//! the shell must define its counters (by the name
//! `stats::shadow_field_counter` and `stats::shadow_noise_counter` give).
//!
//! Each worker keeps its own table, so which 64 fields a worker names
//! depends on what it saw first; the series are keyed by name, so workers
//! that name the same field add to the same series.

use std::collections::BTreeMap;

use crate::stats::shadow_field_label;

/// Fields per split with a series of their own.
pub const MAX_FIELDS: usize = 64;
/// The label of every field past the first [`MAX_FIELDS`].
pub const OTHER_FIELD: &str = "_other";
/// The label of the empty pointer: the whole body (two bodies that are not
/// JSON, or whose top-level values differ in type or value).
pub const ROOT_FIELD: &str = "_root";

/// A field's place in its split's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    /// `0..MAX_FIELDS`, or `MAX_FIELDS` for `_other`.
    pub index: usize,
    /// First seen now: define the slot's counters before counting.
    pub new: bool,
}

/// One split's field slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldTable {
    by_label: BTreeMap<String, usize>,
    labels: Vec<String>,
    other_defined: bool,
}

impl FieldTable {
    pub fn new() -> FieldTable {
        FieldTable::default()
    }

    /// The slot of a field (a folded pointer). Two pointers with the same
    /// label (`/a.b` and `/a_b`) share one.
    pub fn slot(&mut self, field: &str) -> Slot {
        let label = shadow_field_label(field);
        if let Some(&index) = self.by_label.get(&label) {
            return Slot { index, new: false };
        }
        if self.labels.len() < MAX_FIELDS {
            let index = self.labels.len();
            self.by_label.insert(label.clone(), index);
            self.labels.push(label);
            return Slot { index, new: true };
        }
        let new = !std::mem::replace(&mut self.other_defined, true);
        Slot {
            index: MAX_FIELDS,
            new,
        }
    }

    /// The slots of one pair's fields, each once (`_other` too, however
    /// many fields fall in it): a pair counts once per series.
    pub fn slots<S: AsRef<str>>(&mut self, fields: &[S]) -> Vec<Slot> {
        let mut slots: Vec<Slot> = fields.iter().map(|f| self.slot(f.as_ref())).collect();
        slots.sort_unstable_by_key(|s| (s.index, !s.new));
        slots.dedup_by_key(|s| s.index);
        slots
    }

    /// The label of a slot as it appears in the metric's name.
    pub fn label(&self, index: usize) -> &str {
        self.labels.get(index).map_or(OTHER_FIELD, String::as_str)
    }

    /// How many fields have a slot of their own.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
