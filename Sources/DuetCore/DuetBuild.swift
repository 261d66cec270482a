/// Which Duet this is: `duet --version` and the `duet_build_info` metric say it.
public enum DuetBuild {
    public static let version = "0.1.0"
}
