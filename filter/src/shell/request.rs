//! One request's context: glue between Envoy's callbacks and the core's
//! [`Stream`], which decides, writes and counts.

use std::rc::Rc;

use super::abi::{CONTINUE, PAUSE};
use super::host::Host;
use super::runtime::Config;
use crate::flow::{Action, Stream};

pub struct Request {
    config: Rc<Config>,
    stream: Stream,
}

impl Request {
    pub fn new(config: Rc<Config>) -> Request {
        Request {
            config,
            stream: Stream::default(),
        }
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> u32 {
        let config = &self.config;
        match self
            .stream
            .on_request_headers(&config.runtime, &Host::new(config, end_of_stream))
        {
            Action::Continue => CONTINUE,
            Action::Stop => PAUSE,
        }
    }

    pub fn on_response_headers(&self) {
        let config = &self.config;
        self.stream
            .on_response_headers(&config.runtime, &Host::new(config, true));
    }

    /// The stream has ended (Envoy destroys the filter after the access
    /// log, so the response code and its details are final).
    pub fn on_done(self) {
        let config = &self.config;
        self.stream
            .on_done(&config.runtime, &Host::new(config, true));
    }
}
