extension Duration {
    /// The duration in seconds, for printing figures.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
