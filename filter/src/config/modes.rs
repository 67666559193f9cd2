//! The modes (`mode`, `retry_after_s`, `allow_paths`, `maintenance_body`,
//! at the top level and per split, a split's winning field by field) and
//! `trace`.

use super::*;

/// Mode fields as written at one level, before inheritance.
#[derive(Default)]
pub(super) struct ModeFields {
    pub(super) mode: Option<Mode>,
    pub(super) retry_after_s: Option<u64>,
    pub(super) allow_paths: Option<Vec<String>>,
    pub(super) maintenance_body: Option<String>,
}

impl Validator {
    pub(super) fn trace(&mut self, value: &Value) -> TraceSettings {
        let mut trace = TraceSettings::default();
        let Some(obj) = self.object(value, "trace") else {
            return trace;
        };
        self.known_fields(obj, "trace", &["response_header", "tracestate"]);
        if let Some(v) = obj.get("response_header") {
            if let Some(name) = self.header_name(v, "trace.response_header") {
                trace.response_header = name;
            }
        }
        if let Some(v) = obj.get("tracestate") {
            trace.tracestate = self.boolean(v, "trace.tracestate").unwrap_or(false);
        }
        trace
    }

    pub(super) fn mode_fields(&mut self, obj: &Map<String, Value>, path: &str) -> ModeFields {
        let field = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        let mut fields = ModeFields::default();
        if let Some(v) = obj.get("mode") {
            fields.mode = match self.string(v, &field("mode")) {
                Some("normal") => Some(Mode::Normal),
                Some("read_only") => Some(Mode::ReadOnly),
                Some("maintenance") => Some(Mode::Maintenance),
                Some(other) => {
                    self.fail(
                        &field("mode"),
                        format!("{other:?} is not \"normal\", \"read_only\" or \"maintenance\""),
                    );
                    None
                }
                None => None,
            };
        }
        if let Some(v) = obj.get("retry_after_s") {
            let f = field("retry_after_s");
            fields.retry_after_s = self.whole_number(v, &f).filter(|&s| {
                let ok = s <= MAX_RETRY_AFTER_S;
                if !ok {
                    self.fail(&f, format!("{s} is over {MAX_RETRY_AFTER_S} (one day)"));
                }
                ok
            });
        }
        if let Some(v) = obj.get("allow_paths") {
            let f = field("allow_paths");
            let mut paths = Vec::new();
            for (i, p) in self.array(v, &f).unwrap_or(&Vec::new()).iter().enumerate() {
                let item = format!("{f}[{i}]");
                match self.string(p, &item) {
                    Some(p) if p.starts_with('/') => paths.push(p.to_string()),
                    Some(p) => self.fail(&item, format!("{p:?} does not start with '/'")),
                    None => {}
                }
            }
            fields.allow_paths = Some(paths);
        }
        if let Some(v) = obj.get("maintenance_body") {
            fields.maintenance_body = self
                .string(v, &field("maintenance_body"))
                .map(str::to_string);
        }
        fields
    }
}

/// A split's mode fields win over the top level's, one by one.
pub(super) fn resolve_mode(
    top: &ModeFields,
    split: &ModeFields,
    split_name: Option<&str>,
) -> ModePolicy {
    mode_policy(
        split.mode.or(top.mode).unwrap_or_default(),
        split
            .retry_after_s
            .or(top.retry_after_s)
            .unwrap_or(DEFAULT_RETRY_AFTER_S),
        split
            .allow_paths
            .clone()
            .or_else(|| top.allow_paths.clone())
            .unwrap_or_default(),
        split
            .maintenance_body
            .as_deref()
            .or(top.maintenance_body.as_deref()),
        split_name,
    )
}

pub(super) fn mode_policy(
    mode: Mode,
    retry_after_s: u64,
    allow_paths: Vec<String>,
    maintenance_body: Option<&str>,
    split: Option<&str>,
) -> ModePolicy {
    let split_json = split.map_or("null".to_string(), |s| {
        Value::String(s.to_string()).to_string()
    });
    ModePolicy {
        mode,
        retry_after: retry_after_s.to_string(),
        allow_paths,
        maintenance_body: maintenance_body.map_or_else(
            || format!("{{\"error\":\"maintenance\",\"message\":\"down for maintenance; retry after {retry_after_s} s\"}}"),
            str::to_string,
        ),
        read_only_body: format!(
            "{{\"error\":\"read_only\",\"split\":{split_json},\"message\":\"writes are paused during a migration; retry after {retry_after_s} s\"}}"
        ),
    }
}
