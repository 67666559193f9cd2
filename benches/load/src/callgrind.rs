//! Reading a callgrind dump (`callgrind.out.PID.N`, valgrind's "callgrind
//! format", version 1): the total of the first event (instructions, `Ir`)
//! and, per function, its self cost, its inclusive cost and how often it
//! was called.
//!
//! Parsed here rather than by running `callgrind_annotate --inclusive=yes`
//! and reading its table: the annotator prints only functions above a
//! threshold, names them by file and function with the object in a
//! suffix that changes with its options, and omits call counts; reading
//! the dump directly gives every function, keyed by (object, name), with
//! the number of calls, in one pass of a few milliseconds. The inclusive
//! cost is computed as the annotator computes it: a function's self cost
//! plus the cost of every call it makes, recursive calls to itself left
//! out (their cost is already in its own lines).
//!
//! Format reference: valgrind's `docs/callgrind-format` ("Callgrind
//! Format Specification"). Names may be compressed (`fn=(12) name` once,
//! then `fn=(12)`), positions may be relative (`+3`, `-2`, `*`); `cob=`
//! and `cfi=`/`cfl=` apply to the next call only.

use std::collections::HashMap;

/// One function's costs in a dump (first event only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionCost {
    /// The ELF object it is in (the full path callgrind gives).
    pub object: String,
    /// Its symbol, or `0x…` where the object has none.
    pub name: String,
    pub self_cost: u64,
    /// Self cost and the cost of its calls (recursion left out).
    pub inclusive: u64,
    /// How many times it was called (as a callee, over every caller).
    pub calls: u64,
}

/// A dump: the total cost and every function with a cost or a call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// The event counted (`Ir`: instructions executed).
    pub event: String,
    /// `summary:` (the part's total), or the sum of self costs if absent.
    pub total: u64,
    /// The sum of every function's self cost (`totals:` when present).
    pub self_total: u64,
    pub functions: Vec<FunctionCost>,
}

impl Profile {
    /// The functions of `object` (its path ends with it) named `name`.
    pub fn function(&self, object_suffix: &str, name: &str) -> Option<&FunctionCost> {
        self.functions
            .iter()
            .find(|f| f.name == name && f.object.ends_with(object_suffix))
    }
}

/// The compressed names of one kind (objects, files, functions).
#[derive(Default)]
struct Names(HashMap<u64, String>);

impl Names {
    /// `(id) name` defines, `(id)` refers back, `name` is uncompressed.
    fn resolve(&mut self, spec: &str) -> Result<String, String> {
        let spec = spec.trim();
        let Some(rest) = spec.strip_prefix('(') else {
            return Ok(spec.to_string());
        };
        let (id, name) = rest
            .split_once(')')
            .ok_or_else(|| format!("bad compressed name {spec:?}"))?;
        let id: u64 = id.parse().map_err(|_| format!("bad name id in {spec:?}"))?;
        let name = name.trim();
        if name.is_empty() {
            self.0
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("name ({id}) used before it was defined"))
        } else {
            self.0.insert(id, name.to_string());
            Ok(name.to_string())
        }
    }
}

/// The parser's state between lines.
#[derive(Default)]
struct Reader {
    objects: Names,
    files: Names,
    functions: Names,
    positions: usize,
    object: String,
    /// The function the cost lines belong to: an index into `costs`.
    current: Option<usize>,
    /// The next call's target object (`cob=`), if not the caller's.
    call_object: Option<String>,
    /// The next call's target function, once `cfn=` named it.
    call_target: Option<usize>,
    /// `calls=` was read: the next cost line is that call's cost.
    in_call: bool,
    index: HashMap<(String, String), usize>,
    costs: Vec<FunctionCost>,
}

impl Reader {
    fn function(&mut self, object: String, name: String) -> usize {
        let next = self.costs.len();
        *self
            .index
            .entry((object.clone(), name.clone()))
            .or_insert_with(|| {
                self.costs.push(FunctionCost {
                    object,
                    name,
                    ..FunctionCost::default()
                });
                next
            })
    }

    /// The first event's value on a cost line (positions skipped); 0 when
    /// the line gives no value for it.
    fn cost(&self, line: &str) -> Result<u64, String> {
        match line.split_whitespace().nth(self.positions) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| format!("bad cost line {line:?}")),
        }
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        let first = line.as_bytes().first().copied();
        if matches!(first, Some(b'0'..=b'9' | b'+' | b'-' | b'*')) {
            return self.cost_line(line);
        }
        let Some((key, value)) = line.split_once('=') else {
            return Ok(()); // headers (`key: value`), comments, blank lines
        };
        match key {
            "ob" => self.object = self.objects.resolve(value)?,
            "fl" | "fi" | "fe" | "cfi" | "cfl" => {
                self.files.resolve(value)?;
            }
            "fn" => {
                let name = self.functions.resolve(value)?;
                self.current = Some(self.function(self.object.clone(), name));
            }
            "cob" => self.call_object = Some(self.objects.resolve(value)?),
            "cfn" => {
                let name = self.functions.resolve(value)?;
                let object = self
                    .call_object
                    .clone()
                    .unwrap_or_else(|| self.object.clone());
                self.call_target = Some(self.function(object, name));
            }
            "calls" => {
                let count: u64 = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("bad calls line {line:?}"))?;
                let target = self
                    .call_target
                    .ok_or_else(|| format!("calls= without cfn= ({line:?})"))?;
                self.costs[target].calls += count;
                self.in_call = true;
            }
            _ => {} // jump=, jcnd= and the like carry no instruction cost
        }
        Ok(())
    }

    fn cost_line(&mut self, line: &str) -> Result<(), String> {
        let cost = self.cost(line)?;
        let current = self
            .current
            .ok_or_else(|| format!("cost before any fn= ({line:?})"))?;
        if std::mem::take(&mut self.in_call) {
            let target = self.call_target.take();
            self.call_object = None;
            if target != Some(current) {
                self.costs[current].inclusive += cost;
            }
        } else {
            self.costs[current].self_cost += cost;
            self.costs[current].inclusive += cost;
        }
        Ok(())
    }
}

/// Parses a callgrind dump. Errors name the line that could not be read.
pub fn parse(text: &str) -> Result<Profile, String> {
    let mut reader = Reader {
        positions: 1,
        ..Reader::default()
    };
    let mut event = None;
    let mut summary = None;
    let mut totals = None;
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", number + 1);
        if let Some(v) = line.strip_prefix("positions:") {
            reader.positions = v.split_whitespace().count().max(1);
        } else if let Some(v) = line.strip_prefix("events:") {
            event = v.split_whitespace().next().map(str::to_string);
        } else if let Some(v) = line.strip_prefix("summary:") {
            summary = first_number(v).map_err(at)?;
        } else if let Some(v) = line.strip_prefix("totals:") {
            totals = first_number(v).map_err(at)?;
        } else {
            reader.line(line).map_err(at)?;
        }
    }
    let event = event.ok_or("no events: line: not a callgrind dump")?;
    let self_total = reader.costs.iter().map(|f| f.self_cost).sum();
    Ok(Profile {
        event,
        total: summary.unwrap_or(self_total),
        self_total: totals.unwrap_or(self_total),
        functions: reader.costs,
    })
}

fn first_number(v: &str) -> Result<Option<u64>, String> {
    v.split_whitespace()
        .next()
        .map(|n| n.parse().map_err(|_| format!("bad number {n:?}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-written in the format's documented shape: compressed names,
    /// a call into another object, relative positions, recursion.
    const DUMP: &str = "# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000

ob=(1) /bin/envoy
fl=(1) ???
fn=(1) main
0 10
cob=(2) /lib/libturnout_native.so
cfn=(2) hook
calls=3 0
+2 300
cfn=(1)
calls=1 0
* 50
*
fn=(2)
0 5
ob=(2)
fn=(2)
-1 100
cob=(1)
cfn=(3) callback
calls=2 0
0 120
fn=(3)
0 30
ob=(1)
fn=(3)
0 120

totals: 265
";

    #[test]
    fn costs_are_self_plus_calls_and_objects_follow_cob() {
        let p = parse(DUMP).unwrap();
        assert_eq!(p.event, "Ir");
        assert_eq!((p.total, p.self_total), (1000, 265));
        let main = p.function("/bin/envoy", "main").unwrap();
        // 10 own, a call of 300 into the module, a recursive call left out.
        assert_eq!((main.self_cost, main.inclusive, main.calls), (10, 310, 1));
        let hook = p.function("libturnout_native.so", "hook").unwrap();
        assert_eq!((hook.self_cost, hook.inclusive, hook.calls), (100, 220, 3));
        // `fn=(2)` under `ob=(1)` before `ob=(2)`: the name, in envoy.
        assert_eq!(p.function("/bin/envoy", "hook").unwrap().self_cost, 5);
        let callback = p.function("/bin/envoy", "callback").unwrap();
        assert_eq!((callback.inclusive, callback.calls), (120, 2));
        assert_eq!(
            p.function("libturnout_native.so", "callback")
                .unwrap()
                .self_cost,
            30
        );
    }

    /// A real dump: `valgrind --tool=callgrind --toggle-collect=exit
    /// /bin/true` (valgrind 3.19, Debian 12), whose figures
    /// `callgrind_annotate --inclusive=yes` gives as below.
    #[test]
    fn a_real_dump_gives_what_callgrind_annotate_gives() {
        let p = parse(include_str!("../fixtures/exit.callgrind")).unwrap();
        assert_eq!((p.event.as_str(), p.total), ("Ir", 1242));
        assert_eq!(
            p.self_total,
            p.functions.iter().map(|f| f.self_cost).sum::<u64>()
        );
        let inclusive = |object: &str, name: &str| p.function(object, name).map(|f| f.inclusive);
        let libc = "libc.so.6";
        let ld = "ld-linux-x86-64.so.2";
        assert_eq!(inclusive(libc, "exit"), Some(1242));
        assert_eq!(inclusive(libc, "__run_exit_handlers"), Some(1237));
        assert_eq!(inclusive(ld, "_dl_fini"), Some(900));
        assert_eq!(inclusive(ld, "_dl_sort_maps"), Some(300));
        assert_eq!(inclusive(ld, "_dl_call_fini"), Some(286));
        assert_eq!(inclusive(libc, "_IO_cleanup"), Some(240));
        assert_eq!(p.function(libc, "exit").map(|f| f.calls), Some(1));
    }

    #[test]
    fn a_malformed_dump_is_an_error_that_names_the_line() {
        assert!(parse("events: Ir\nfn=(7)\n")
            .unwrap_err()
            .starts_with("line 2"));
        assert!(parse("events: Ir\n0 5\n").is_err());
        assert!(parse("hello\n").is_err());
    }
}
