//! The page's figures from the proxies' own series (guard trips, shadow
//! copies), read from Prometheus or the proxies' admin endpoints as
//! `turnoutctl shadow` reads them (`crate::scrape`). Read when the page
//! asks and kept a moment, so that several open pages cost one read every
//! `FRESH`; a read runs on the blocking pool, away from the xDS streams.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::splits::{Figures, LABELS, SERIES};
use crate::scrape::{self, Source};
use crate::serve::hub::now_ms;

/// How long a read is shown before the next page's request reads again.
const FRESH: Duration = Duration::from_secs(2);

/// How long one request to Prometheus or a proxy may take.
const TIMEOUT: Duration = Duration::from_secs(3);

pub struct FigureReader {
    source: Option<Source>,
    last: Mutex<Option<(Instant, Figures)>>,
}

impl FigureReader {
    /// Reads from `source`; with none, the page says where the figures
    /// would come from.
    pub fn new(source: Option<Source>) -> FigureReader {
        FigureReader {
            source,
            last: Mutex::new(None),
        }
    }

    /// The figures, as read within the last `FRESH`, or read now. One read
    /// at a time: a page that asks meanwhile waits for it.
    pub async fn figures(&self) -> Figures {
        let Some(source) = &self.source else {
            return Figures::Unconfigured;
        };
        let mut last = self.last.lock().await;
        if let Some((at, figures)) = last.as_ref() {
            if at.elapsed() < FRESH {
                return figures.clone();
            }
        }
        let asked = source.clone();
        let read =
            tokio::task::spawn_blocking(move || scrape::read(&asked, &SERIES, &LABELS, TIMEOUT))
                .await
                .unwrap_or_else(|e| Err(format!("the read stopped: {e}")));
        let (source, at) = (source.describe(), now_ms());
        let figures = match read {
            Ok(samples) => Figures::Read {
                source,
                at,
                samples,
            },
            Err(error) => Figures::Failed { source, at, error },
        };
        *last = Some((Instant::now(), figures.clone()));
        figures
    }
}
