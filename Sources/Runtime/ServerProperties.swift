// PLACEHOLDER so `tern broker` builds on the i5-runtime branch: the real parser is written on
// branch i5-cli-cluster and replaces this file on merge. Only the API the node host's command
// uses is here.

/// Why a `server.properties` file cannot be used.
public enum ServerPropertiesError: Error, CustomStringConvertible {
    case notImplemented(path: String)

    public var description: String {
        switch self {
        case let .notImplemented(path): "\(path): reading server.properties is not implemented on this branch"
        }
    }
}

/// A parsed `server.properties`.
public struct ServerProperties: Sendable {
    public let path: String

    public static func load(path: String) throws(ServerPropertiesError) -> ServerProperties {
        throw .notImplemented(path: path)
    }

    public func launchConfiguration() throws(ServerPropertiesError) -> NodeLaunchConfiguration {
        throw .notImplemented(path: path)
    }
}
