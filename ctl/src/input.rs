//! Reading a CONFIG argument. Every command takes either a plain JSON
//! config or an ECDS resource file holding one, told apart by content, so an
//! operator can point turnoutctl at whatever file Envoy is given.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use turnout::config::{self, Problem};
use turnout::plan::Plan;

use crate::ecds::{self, Resource};
use crate::fail::Fail;

pub struct Input {
    pub path: PathBuf,
    /// The file's text, as read.
    pub text: String,
    pub form: Form,
}

pub enum Form {
    /// The file is the config itself.
    Plain,
    /// An ECDS file: its turnout resources, or what is wrong with its shape.
    Ecds(Result<Vec<Resource>, Vec<Problem>>),
}

/// Reads `path`; a file that cannot be read is a usage error (exit 2).
pub fn read(path: &Path) -> Result<Input, Fail> {
    let bytes =
        fs::read(path).map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Fail::Refused(format!("{}: not UTF-8 text", path.display())))?;
    let form = match serde_json::from_str::<Value>(&text) {
        Ok(doc) if ecds::is_ecds(&doc) => Form::Ecds(ecds::resources(&doc)),
        // Anything else is a config; the filter's parser says what is wrong.
        _ => Form::Plain,
    };
    Ok(Input {
        path: path.to_path_buf(),
        text,
        form,
    })
}

impl Input {
    /// The one config a command works on: the file itself, or the only
    /// turnout resource of an ECDS file.
    pub fn single(&self) -> Result<(&str, Option<&Resource>), Fail> {
        match &self.form {
            Form::Plain => Ok((&self.text, None)),
            Form::Ecds(Err(problems)) => Err(Fail::Refused(format!(
                "{}: not a usable ECDS file:\n{}",
                self.path.display(),
                lines(problems)
            ))),
            Form::Ecds(Ok(found)) => match found.as_slice() {
                [one] => Ok((&one.config, Some(one))),
                _ => Err(Fail::Refused(format!(
                    "{}: has {} turnout resources; turnoutctl works on files with one",
                    self.path.display(),
                    found.len()
                ))),
            },
        }
    }

    /// How messages name a config: the file, and the resource in it.
    pub fn label(&self, resource: Option<&Resource>) -> String {
        match resource {
            None => self.path.display().to_string(),
            Some(r) => format!("{} (resource {:?})", self.path.display(), r.name),
        }
    }

    /// The single config, validated by the filter's own parser.
    pub fn plan(&self) -> Result<(Plan, String), Fail> {
        let (config, resource) = self.single()?;
        let plan = parse(config, &self.label(resource))?;
        Ok((plan, config.to_string()))
    }
}

/// Validates `config` exactly as the filter does; a refusal lists every
/// problem on its own line, as Envoy's log would.
pub fn parse(config: &str, label: &str) -> Result<Plan, Fail> {
    config::parse(config.as_bytes()).map_err(|e| {
        Fail::Refused(format!(
            "{label}: the configuration is refused:\n{}",
            lines(&e.problems)
        ))
    })
}

/// One problem per line.
pub fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
