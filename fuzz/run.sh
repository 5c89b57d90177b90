#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20), seeded with the repository's OTLP examples.
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
fixtures=../tests/fixtures/otlp
export RUSTC_BOOTSTRAP=1

seed() { # target, fixture file: the JSON body behind a selector byte that picks JSON
  mkdir -p "corpus/$1"
  { printf '\001'; cat "$fixtures/$2"; } > "corpus/$1/$2"
}
seed otlp_traces trace.json
seed otlp_logs logs.json
seed otlp_logs events.json
seed otlp_metrics metrics.json
mkdir -p corpus/json_lines corpus/trace_ids corpus/query_params corpus/gzip_body
printf '%s\n' '{"ts":"2026-11-26T10:00:00Z","level":"error","msg":"x traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","service":"checkout"}' > corpus/json_lines/seed
printf 'uber-trace-id: 4bf92f3577b34da6:00f067aa0ba902b7:0:1 Root=1-5759e988-bd862e3fe1be46a994272793 dd.trace_id=5208512171318403364' > corpus/trace_ids/seed
printf 'q=card%%20declined&start=now-15m&severity=warn&limit=5' > corpus/query_params/seed
printf 'weft.span.duration{service.name="checkout",span.name=~"GET.*",code!="200"}' > corpus/query_params/selector
gzip -c "$fixtures/logs.json" > corpus/gzip_body/seed
mkdir -p corpus/compat_ingest corpus/compat_queries
printf '%s' '{"streams":[{"stream":{"app":"a"},"values":[["1700000000000000000","x trace_id=4bf92f3577b34da6a3ce929d0e0e4736",{"k":"v"}]]}]}' > corpus/compat_ingest/loki
printf '%s' '[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"b"},"tags":{"error":"x"}}]' > corpus/compat_ingest/zipkin
printf '%s' 'histogram_quantile(0.9, sum by (le) (rate(x_bucket{job="a"}[5m]))) * 2 > bool 1' > corpus/compat_queries/promql
printf '%s' 'sum by (level) (count_over_time({app="a"} |= "x" | json | status >= 500 [5m]))' > corpus/compat_queries/logql
printf '%s' '{ resource.service.name = "x" && (span.http.status_code >= 500 || duration > 1s) }' > corpus/compat_queries/traceql

cargo fuzz build
mkdir -p logs
for target in $(cargo fuzz list); do
  if cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" \
      -rss_limit_mb=2048 -malloc_limit_mb=512 > "logs/$target.log" 2>&1; then
    echo "fuzz: $target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$target.log" | tail -1)"
  else
    echo "fuzz: $target FAILED; the end of its log:" >&2
    grep -v NEW_FUNC "logs/$target.log" | tail -60 >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a crash"
