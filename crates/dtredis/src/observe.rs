//! `dtredis bench --observe` (feature `observe`): the library's metrics go to a
//! Prometheus recorder and its spans through `tracing-opentelemetry` to a batch span
//! processor, as a service would run them, so the bench rows show what they cost.
//! The spans are exported to an exporter that drops them: the cost measured is the
//! library's and the SDK's, not a collector's network.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The stderr log layer, filtered by `RUST_LOG` (off by default).
fn log_layer() -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync {
    use tracing_subscriber::Layer;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
}

/// Installs the process's `tracing` subscriber: logs to stderr, plus (with `observe`)
/// the OpenTelemetry layer and the Prometheus recorder.
pub(crate) fn init(observe: bool) -> anyhow::Result<()> {
    if !observe {
        tracing_subscriber::registry().with(log_layer()).init();
        return Ok(());
    }
    enabled::init(log_layer())
}

#[cfg(feature = "observe")]
mod enabled {
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    /// Drops every span (after the SDK batched it).
    #[derive(Debug)]
    struct Discard;

    impl SpanExporter for Discard {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    pub(super) fn init<L>(log: L) -> anyhow::Result<()>
    where
        L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync,
    {
        // Both by default; `DTREDIS_BENCH_OBSERVE=metrics` or `=traces` measures one alone.
        let only = std::env::var("DTREDIS_BENCH_OBSERVE").unwrap_or_default();
        if only != "traces" {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
            // What the exporter's HTTP listener does in a service: drain the histograms'
            // samples into their summaries every few seconds. Without it they pile up for
            // the whole run, which no production setup does.
            std::thread::Builder::new()
                .name("bench-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        handle.run_upkeep();
                    }
                })?;
            dtrsfw::redis::observe::describe();
            eprintln!("bench: metrics recorder installed");
        }
        // The library's cap on root spans stays at its default (100 a second) unless
        // `DTREDIS_BENCH_OBSERVE_ROOT_LIMIT` gives a number, or `none` for every span.
        if let Ok(limit) = std::env::var("DTREDIS_BENCH_OBSERVE_ROOT_LIMIT") {
            let limit = match limit.as_str() {
                "none" => None,
                n => Some(n.parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("DTREDIS_BENCH_OBSERVE_ROOT_LIMIT: `{n}` is neither a number nor `none`")
                })?),
            };
            dtrsfw::redis::observe::set_root_span_limit(limit);
            eprintln!("bench: the library's root spans capped at {limit:?} a second");
        }
        // At INFO, as a service exports spans: the library's `send`/`process` spans, not its
        // debug events and spans.
        let otel = (only != "metrics").then(|| {
            // `DTREDIS_BENCH_OBSERVE_SAMPLE=0.01` samples 1 % of traces, as busy services do.
            let mut provider = SdkTracerProvider::builder().with_batch_exporter(Discard);
            if let Some(ratio) = std::env::var("DTREDIS_BENCH_OBSERVE_SAMPLE")
                .ok()
                .and_then(|r| r.parse().ok())
            {
                // The library samples its root spans at the same ratio, before creating
                // them; the SDK's sampler decides the application's own root spans.
                dtrsfw::redis::observe::set_root_span_ratio(ratio);
                let ratio = Sampler::TraceIdRatioBased(ratio);
                provider = provider.with_sampler(Sampler::ParentBased(Box::new(ratio)));
                eprintln!("bench: spans sampled by trace id, root spans by the library");
            }
            let provider = provider.build();
            eprintln!("bench: OpenTelemetry span pipeline installed");
            // `DTREDIS_BENCH_OBSERVE_LEAN=1`: the layer without its per-span extras (busy/idle
            // timings and context activation on every poll, thread, code location, target).
            let lean = std::env::var_os("DTREDIS_BENCH_OBSERVE_LEAN").is_some();
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("dtredis"))
                .with_tracked_inactivity(!lean)
                .with_context_activation(!lean)
                .with_threads(!lean)
                .with_location(!lean)
                .with_target(!lean)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        });
        tracing_subscriber::registry().with(log).with(otel).init();
        Ok(())
    }
}

#[cfg(not(feature = "observe"))]
mod enabled {
    pub(super) fn init<L>(_: L) -> anyhow::Result<()> {
        anyhow::bail!("--observe needs dtredis built with `--features observe`")
    }
}
