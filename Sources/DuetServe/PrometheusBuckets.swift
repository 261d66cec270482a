public import Prometheus

extension PrometheusMetricsFactory {
    /// Prometheus with duration buckets from 0.25 ms: the library's start at 5 ms, and a
    /// recommendation answers in well under that, so its p99 would only show as "≤ 5 ms".
    public static func serve(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                                   .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                                   .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10)]
        return factory
    }
}
