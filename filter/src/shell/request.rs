//! One request's context: glue between Envoy's callbacks and the core's
//! [`Stream`], which decides, writes and counts.

use std::rc::Rc;

use super::abi::{CONTINUE, PAUSE};
use super::host::Host;
use super::runtime::Runtime;
use crate::flow::{Action, Stream};

pub struct Request {
    runtime: Rc<Runtime>,
    stream: Stream,
}

impl Request {
    pub fn new(runtime: Rc<Runtime>) -> Request {
        Request {
            runtime,
            stream: Stream::default(),
        }
    }

    pub fn on_request_headers(&mut self) -> u32 {
        let runtime = &*self.runtime;
        match self
            .stream
            .on_request_headers(runtime, &Host::new(&runtime.metrics))
        {
            Action::Continue => CONTINUE,
            Action::Stop => PAUSE,
        }
    }

    pub fn on_response_headers(&self) {
        let runtime = &*self.runtime;
        self.stream
            .on_response_headers(runtime, &Host::new(&runtime.metrics));
    }

    /// The stream has ended (Envoy destroys the filter after the access
    /// log, so the response code and its details are final).
    pub fn on_done(self) {
        let runtime = &*self.runtime;
        self.stream.on_done(runtime, &Host::new(&runtime.metrics));
    }
}
