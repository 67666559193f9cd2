//! The floor of turnout's load benchmark: the cheapest proxy-wasm filter
//! that routes by a header. It reads one request header (`x-user-id`),
//! writes one (`x-turnout-cluster`: `fastapi` or `legacy`, by one byte of
//! the key), and lets the route's `cluster_header` pick the cluster.
//!
//! On Envoy 1.40 writing a request header from wasm clears the route cache
//! by itself, so a filter that routes by header needs nothing more there.
//! Turnout also calls the `clear_route_cache` foreign function, because
//! later Envoy versions stop clearing implicitly.
//!
//! The plugin configuration can add, one word each (space-separated), the
//! other hostcalls turnout makes, so the load benchmark can price each one
//! in the real Envoy (`cargo bench-load --extra NAME=WORDS`):
//!
//! - `clear_route_cache`: the explicit `clear_route_cache` call;
//! - `pairs`: read the key from the whole header map
//!   (`proxy_get_header_map_pairs`) instead of one `proxy_get_header_map_value`;
//! - `route_name`: read property `xds.route_name`;
//! - `second_write`: write a second request header (`traceparent`);
//! - `echo`: write a response header (`x-trace-id`);
//! - `code`, `duration`: read properties `response.code`,
//!   `request.duration` in `on_log`;
//! - `status`: read the response's `:status` header;
//! - `clock`: read the clock when the request starts and in `on_log`;
//! - `histogram`: record a histogram value in `on_log`;
//! - `noop`: no header read or write at all (the listener then routes
//!   without the header): what any proxy-wasm filter costs.
//!
//! A word may end in `*N` (`route_name*50`): that call is made N times per
//! request (`pairs*N`: N whole-map reads besides the key's own read;
//! `clock*N`: N reads at each end). One call costs about a microsecond,
//! under the noise of this machine; fifty of them stand out of it, so a
//! probe made fifty times prices one call to a fraction of a microsecond.
//!
//! The code exists only in the wasm32 build: the host workspace build sees
//! an empty crate.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { probes: Probes::default() })
        });
    }}

    /// How many times to make each extra hostcall (all 0: the floor itself).
    #[derive(Clone, Copy, Default)]
    struct Probes {
        clear_route_cache: u32,
        pairs: u32,
        route_name: u32,
        second_write: u32,
        echo: u32,
        status: u32,
        code: u32,
        duration: u32,
        clock: u32,
        noop: bool,
        histogram: Option<(u32, u32)>,
    }

    struct Root {
        probes: Probes,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
            let mut p = Probes::default();
            for word in config.split(|b| b.is_ascii_whitespace()) {
                let (name, times) = match word.iter().position(|&b| b == b'*') {
                    Some(star) => {
                        let times = std::str::from_utf8(&word[star + 1..])
                            .ok()
                            .and_then(|t| t.parse().ok());
                        match times {
                            Some(t) => (&word[..star], t),
                            None => return false,
                        }
                    }
                    None => (word, 1),
                };
                match name {
                    b"clear_route_cache" => p.clear_route_cache = times,
                    b"pairs" => p.pairs = times,
                    b"route_name" => p.route_name = times,
                    b"second_write" => p.second_write = times,
                    b"echo" => p.echo = times,
                    b"status" => p.status = times,
                    b"code" => p.code = times,
                    b"duration" => p.duration = times,
                    b"clock" => p.clock = times,
                    b"noop" => p.noop = true,
                    b"histogram" => {
                        p.histogram =
                            hostcalls::define_metric(MetricType::Histogram, "floor.latency")
                                .ok()
                                .map(|id| (id, times))
                    }
                    b"" => {}
                    _ => return false,
                }
            }
            self.probes = p;
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Floor {
                probes: self.probes,
                start: 0,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Floor {
        probes: Probes,
        start: u128,
    }

    impl Context for Floor {}

    fn now() -> u128 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    }

    fn property(path: &[&str]) -> u64 {
        hostcalls::get_property(path.to_vec())
            .ok()
            .flatten()
            .map_or(0, |v| v.len() as u64)
    }

    impl HttpContext for Floor {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let p = self.probes;
            if p.noop {
                return Action::Continue;
            }
            for _ in 0..p.clock {
                self.start = now();
            }
            for _ in 0..p.route_name {
                let _ = property(&["xds", "route_name"]);
            }
            for _ in 0..p.pairs {
                let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
            }
            let key = if p.pairs > 0 {
                hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
                    .ok()
                    .and_then(|m| m.into_iter().find(|(n, _)| n == "x-user-id"))
                    .map(|(_, v)| v)
            } else {
                hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-user-id")
                    .ok()
                    .flatten()
            }
            .unwrap_or_default();
            let cluster: &[u8] = match key.last() {
                Some(b) if b % 2 == 1 => b"fastapi",
                _ => b"legacy",
            };
            for _ in 0..p.second_write {
                let _ = hostcalls::set_map_value_bytes(
                    MapType::HttpRequestHeaders,
                    "traceparent",
                    Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                );
            }
            let _ = hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                "x-turnout-cluster",
                Some(cluster),
            );
            for _ in 0..p.clear_route_cache {
                let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
            }
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            for _ in 0..self.probes.status {
                let _ = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status");
            }
            for _ in 0..self.probes.echo {
                let _ = hostcalls::set_map_value_bytes(
                    MapType::HttpResponseHeaders,
                    "x-trace-id",
                    Some(b"4bf92f3577b34da6a3ce929d0e0e4736"),
                );
            }
            Action::Continue
        }

        fn on_log(&mut self) {
            let p = self.probes;
            let mut value = 0;
            for _ in 0..p.code {
                value += property(&["response", "code"]);
            }
            for _ in 0..p.duration {
                value += property(&["request", "duration"]);
            }
            for _ in 0..p.clock {
                value += (now().saturating_sub(self.start) / 1_000_000) as u64;
            }
            if let Some((id, times)) = p.histogram {
                for _ in 0..times {
                    let _ = hostcalls::record_metric(id, value);
                }
            }
        }
    }
}
