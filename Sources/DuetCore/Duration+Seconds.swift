extension Duration {
    /// The duration in seconds, for printing figures.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    /// Whole milliseconds, truncated, for logs and registry settings.
    package var wholeMilliseconds: Int { Int(components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000) }
}
