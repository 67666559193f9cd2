//! One request's context: glue between Envoy's callbacks and the core's
//! [`Stream`], which decides, writes and counts.

use std::rc::Rc;

use super::abi::{CONTINUE, HTTP_REQUEST_BODY, PAUSE};
use super::host::{self, Host};
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

    /// Whether a copy waits for the request body.
    pub fn wants_request_body(&self) -> bool {
        self.stream.wants_request_body()
    }

    /// A chunk of the request body, for the copy that waits for it.
    pub fn on_request_body(&mut self, size: usize, end_of_stream: bool) {
        let chunk = host::body(HTTP_REQUEST_BODY, size);
        let config = &self.config;
        let host = Host::new(config, true);
        self.stream
            .on_request_body(&config.runtime, &host, &chunk, end_of_stream);
    }

    pub fn on_response_headers(&mut self) {
        let config = &self.config;
        let host = Host::new(config, true);
        self.stream.on_response_headers(&config.runtime, &host);
        if self.stream.wants_response() {
            self.stream.on_response_start(&config.runtime, &host);
        }
    }

    /// The stream has ended (Envoy destroys the filter after the access
    /// log, so the response code and its details are final).
    pub fn on_done(self) {
        let config = &self.config;
        self.stream
            .on_done(&config.runtime, &Host::new(config, true));
    }
}
