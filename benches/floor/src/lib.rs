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

    /// The extra hostcalls to make (all off: the floor itself).
    #[derive(Clone, Copy, Default)]
    struct Probes {
        clear_route_cache: bool,
        pairs: bool,
        route_name: bool,
        second_write: bool,
        echo: bool,
        status: bool,
        code: bool,
        duration: bool,
        clock: bool,
        noop: bool,
        histogram: Option<u32>,
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
                match word {
                    b"clear_route_cache" => p.clear_route_cache = true,
                    b"pairs" => p.pairs = true,
                    b"route_name" => p.route_name = true,
                    b"second_write" => p.second_write = true,
                    b"echo" => p.echo = true,
                    b"status" => p.status = true,
                    b"code" => p.code = true,
                    b"duration" => p.duration = true,
                    b"clock" => p.clock = true,
                    b"noop" => p.noop = true,
                    b"histogram" => {
                        p.histogram =
                            hostcalls::define_metric(MetricType::Histogram, "floor.latency").ok()
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
            if p.clock {
                self.start = now();
            }
            if p.route_name {
                let _ = property(&["xds", "route_name"]);
            }
            let key = if p.pairs {
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
            if p.second_write {
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
            if p.clear_route_cache {
                let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
            }
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            if self.probes.status {
                let _ = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status");
            }
            if self.probes.echo {
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
            if p.code {
                value += property(&["response", "code"]);
            }
            if p.duration {
                value += property(&["request", "duration"]);
            }
            if p.clock {
                value += (now().saturating_sub(self.start) / 1_000_000) as u64;
            }
            if let Some(id) = p.histogram {
                let _ = hostcalls::record_metric(id, value);
            }
        }
    }
}
