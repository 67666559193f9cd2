//! Scanning the served directory: every `poll` it lists `NAME.json` files,
//! re-reads those whose metadata changed (a rename gives a new inode, an
//! in-place write a new size or time), and turns them into the catalog's
//! entries. Polling, not inotify: no extra dependency or `unsafe`, the
//! same on every file system, and a stat per file every 20 ms costs
//! nothing next to the push it triggers.
//!
//! A file caught half-written by a writer that does not rename is refused
//! by the parser (not served) and read again once its metadata settles.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::catalog::{check, resource_name, Catalog, Ms, Template};

/// What changed in the catalog, for the server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    Served {
        name: String,
        version: String,
        file: PathBuf,
    },
    Refused {
        name: String,
        version: Option<String>,
        problems: Vec<String>,
        /// What stays served instead, if anything.
        keeps: Option<String>,
    },
}

impl CatalogChange {
    /// Says it on the server's log: a refusal is a warning.
    pub fn log(&self) {
        match self {
            CatalogChange::Served { .. } => tracing::info!("{}", self.describe()),
            CatalogChange::Refused { .. } => tracing::warn!("{}", self.describe()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CatalogChange::Served {
                name,
                version,
                file,
            } => format!("serving {name} version {version} ({})", file.display()),
            CatalogChange::Refused {
                name,
                version,
                problems,
                keeps,
            } => {
                let what = version
                    .as_deref()
                    .map_or(String::new(), |v| format!(" version {v}"));
                let keeps = keeps
                    .as_deref()
                    .map_or("nothing is served for it".into(), |v| {
                        format!("still serving {v}")
                    });
                format!("refused {name}{what} ({keeps}): {}", problems.join("; "))
            }
        }
    }
}

/// Identity of a file's content as the file system tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileStamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The directory, the catalog made of it, and what each file looked like
/// when it was last read.
pub struct Scanner {
    dir: PathBuf,
    template: Template,
    stamps: BTreeMap<String, FileStamp>,
    catalog: Catalog,
}

impl Scanner {
    pub fn new(dir: &Path, template: Template) -> Scanner {
        Scanner {
            dir: dir.to_path_buf(),
            catalog: Catalog {
                version_suffix: template.version_suffix(),
                ..Catalog::default()
            },
            template,
            stamps: BTreeMap::new(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Looks at the directory once; what changed. An unreadable directory
    /// changes nothing (what is served stays) and is an `Err` to log.
    pub fn scan(&mut self, now: Ms) -> Result<Vec<CatalogChange>, String> {
        let listing = fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        let mut present = BTreeMap::new();
        for item in listing.flatten() {
            let file_name = item.file_name().to_string_lossy().into_owned();
            if let Some(name) = resource_name(&file_name) {
                // Follows symlinks: a link to the real file is served as it.
                let stamp = fs::metadata(item.path()).ok().map(|m| FileStamp::of(&m));
                present.insert(name.to_string(), (item.path(), stamp));
            }
        }
        let mut events = Vec::new();
        for (name, (path, stamp)) in &present {
            if stamp.is_some() && self.stamps.get(name) == stamp.as_ref() {
                continue;
            }
            if let Some(event) = self.read(name, path, now) {
                events.push(event);
            }
            match stamp {
                Some(s) => self.stamps.insert(name.clone(), *s),
                None => self.stamps.remove(name),
            };
        }
        let gone: Vec<String> = self
            .stamps
            .keys()
            .filter(|n| !present.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.stamps.remove(&name);
            let file = self.dir.join(format!("{name}.json"));
            let problems = vec!["the file is gone; proxies keep what they have".to_string()];
            if self
                .catalog
                .refuse(&name, file, None, problems.clone(), now)
            {
                events.push(self.refused(&name, None, problems));
            }
        }
        Ok(events)
    }

    /// Reads and checks one file; the change, if the catalog changed.
    fn read(&mut self, name: &str, path: &Path, now: Ms) -> Option<CatalogChange> {
        let (version, checked) = match fs::read(path) {
            Ok(bytes) => (Some(self.template.version(&bytes)), check(name, &bytes)),
            Err(e) => (None, Err(vec![format!("cannot read the file: {e}")])),
        };
        match (version, checked) {
            (Some(version), Ok((config, plan))) => {
                let resource = self.template.resource(name, &config);
                let file = path.to_path_buf();
                self.catalog
                    .serve(name, file.clone(), version.clone(), (resource, plan), now)
                    .then(|| CatalogChange::Served {
                        name: name.to_string(),
                        version,
                        file,
                    })
            }
            (version, Err(problems)) => self
                .catalog
                .refuse(
                    name,
                    path.to_path_buf(),
                    version.clone(),
                    problems.clone(),
                    now,
                )
                .then(|| self.refused(name, version, problems)),
            (None, Ok(_)) => None,
        }
    }

    fn refused(&self, name: &str, version: Option<String>, problems: Vec<String>) -> CatalogChange {
        CatalogChange::Refused {
            name: name.to_string(),
            version,
            problems,
            keeps: self.catalog.versions().get(name).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::catalog::version_of;

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("turnoutctl-scan-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn scanner(dir: &Path) -> Scanner {
        Scanner::new(
            dir,
            Template::Wasm {
                wasm: "m.wasm".into(),
                runtime: crate::ecds::DEFAULT_RUNTIME.into(),
            },
        )
    }

    fn replace(path: &Path, text: &str) {
        crate::write::replace(path, text.as_bytes()).unwrap();
    }

    #[test]
    fn serves_valid_files_keeps_them_through_refusals_and_removal() {
        let dir = scratch("serve");
        let file = dir.join("turnout.json");
        replace(&file, "{}");
        fs::write(dir.join("notes.txt"), "not a resource").unwrap();
        let mut s = scanner(&dir);
        let v1 = version_of(b"{}");
        assert_eq!(
            s.scan(1).unwrap(),
            [CatalogChange::Served {
                name: "turnout".into(),
                version: v1.clone(),
                file: file.clone()
            }]
        );
        assert_eq!(s.scan(2).unwrap(), [], "nothing changed");

        replace(&file, r#"{"version": 2}"#);
        let events = s.scan(3).unwrap();
        let [CatalogChange::Refused {
            version,
            problems,
            keeps,
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}")
        };
        assert_eq!(
            version.as_deref(),
            Some(version_of(br#"{"version": 2}"#).as_str())
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("version: "), "{problems:?}");
        assert_eq!(keeps.as_deref(), Some(v1.as_str()));
        assert_eq!(s.catalog().versions()["turnout"], v1);
        assert!(events[0]
            .describe()
            .contains(&format!("still serving {v1}")));

        // Back to the served content: the refusal is over, nothing is pushed.
        replace(&file, "{}");
        assert_eq!(s.scan(4).unwrap(), []);
        assert!(s.catalog().entries["turnout"].refused.is_none());

        fs::remove_file(&file).unwrap();
        let events = s.scan(5).unwrap();
        assert!(
            matches!(&events[..], [CatalogChange::Refused { version: None, .. }]),
            "{events:?}"
        );
        assert_eq!(
            s.catalog().versions()["turnout"],
            v1,
            "a removed file stays served"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_native_build_serves_its_own_versions_of_the_same_files() {
        let dir = scratch("native");
        replace(&dir.join("turnout.json"), "{}");
        let mut wasm = scanner(&dir);
        let mut native = Scanner::new(&dir, Template::Native);
        wasm.scan(1).unwrap();
        native.scan(1).unwrap();
        assert_eq!(wasm.catalog().versions()["turnout"], version_of(b"{}"));
        assert_eq!(
            native.catalog().versions()["turnout"],
            format!("{}-native", version_of(b"{}"))
        );
        // A refused file is named by the version it would have had.
        replace(&dir.join("turnout.json"), r#"{"version": 2}"#);
        let events = native.scan(2).unwrap();
        let want = format!("{}-native", version_of(br#"{"version": 2}"#));
        assert!(
            matches!(&events[..], [CatalogChange::Refused { version: Some(v), .. }] if *v == want),
            "{events:?}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Points the symlink `link` at `target` atomically (a new link,
    /// renamed over the old), as the kubelet and git-sync do.
    fn swap_link(target: &str, link: &Path) {
        let tmp = link.with_file_name(".swap.tmp");
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        fs::rename(&tmp, link).unwrap();
    }

    #[test]
    fn a_configmap_volume_and_a_git_sync_link_are_read_at_each_swap() {
        // A ConfigMap volume: NAME.json -> ..data/NAME.json, ..data -> a
        // timestamped directory, swapped for a new one at each update.
        let dir = scratch("configmap");
        for (sub, text) in [("..2026_1", "{}"), ("..2026_2", r#"{"splits": []}"#)] {
            fs::create_dir(dir.join(sub)).unwrap();
            fs::write(dir.join(sub).join("turnout.json"), text).unwrap();
        }
        swap_link("..2026_1", &dir.join("..data"));
        std::os::unix::fs::symlink("..data/turnout.json", dir.join("turnout.json")).unwrap();
        let mut s = scanner(&dir);
        s.scan(1).unwrap();
        assert_eq!(s.catalog().versions()["turnout"], version_of(b"{}"));
        swap_link("..2026_2", &dir.join("..data"));
        assert_eq!(s.scan(2).unwrap().len(), 1);
        let want = version_of(br#"{"splits": []}"#);
        assert_eq!(s.catalog().versions()["turnout"], want);
        assert_eq!(
            s.catalog().entries.len(),
            1,
            "the hidden entries are no resources"
        );

        // git-sync: the served directory is a link to the checkout of the
        // current commit; a commit that leaves the file's bytes alone
        // pushes nothing.
        let root = scratch("git-sync");
        for commit in ["c1", "c2"] {
            fs::create_dir(root.join(commit)).unwrap();
            fs::write(root.join(commit).join("turnout.json"), "{}").unwrap();
        }
        swap_link("c1", &root.join("link"));
        let mut s = scanner(&root.join("link"));
        assert_eq!(s.scan(1).unwrap().len(), 1);
        swap_link("c2", &root.join("link"));
        assert_eq!(s.scan(2).unwrap(), [], "the same bytes: nothing to push");
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unreadable_directory_changes_nothing() {
        let dir = scratch("gone");
        replace(&dir.join("a.json"), "{}");
        let mut s = scanner(&dir);
        assert_eq!(s.scan(1).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
        assert!(s.scan(2).unwrap_err().contains("cannot list"));
        assert!(s.catalog().versions().contains_key("a"));
    }
}
