// swift-tools-version: 6.0
// Tern: a Kafka-compatible distributed replicated log. Toolchain only: no package dependencies.
import PackageDescription


let package = Package(
    name: "Tern",
    products: [
        .executable(name: "tern", targets: ["tern"]),
    ],
    targets: [
        // C shims: the CPU's CRC32 instruction (pure computation), and the syscalls Glibc's module lacks.
        .target(name: "CChecksum", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "CSystem"),

        // Deterministic core: never touches the OS, the clock, threads or a global random source.
        .target(name: "TernCore", dependencies: ["CChecksum"], linkerSettings: [.linkedLibrary("m")]),
        .target(name: "KafkaProtocol", dependencies: ["TernCore"]),
        .target(name: "LogStorage", dependencies: ["TernCore", "KafkaProtocol"]),
        // The contract between node state machines and the two shells.
        .target(name: "NodeKit", dependencies: ["TernCore", "LogStorage"]),
        .target(name: "Raft", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit"]),
        .target(name: "Controller", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft"]),
        .target(name: "Broker", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft", "Controller"]),
        // Sans-IO Kafka client (metadata, idempotent producer, consumer); sits beside Broker.
        .target(name: "Client", dependencies: ["TernCore", "KafkaProtocol"]),
        // The one OS layer under both real shells: system calls and their errors, clocks, sockets,
        // framing, byte buffers. Never linked by the simulator.
        .target(name: "Posix", dependencies: ["TernCore", "CSystem"]),
        // A shell like Runtime (real sockets and clocks) around Client's sans-IO producer and consumer,
        // for the tern tools; never linked by the simulator.
        .target(name: "KafkaClient", dependencies: ["TernCore", "KafkaProtocol", "Client", "Posix"]),

        // The two shells: real IO, and the deterministic simulator.
        .target(name: "Runtime", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft", "Controller", "Broker", "Posix", "CSystem"]),
        // The simulator's world, usable without the cluster simulator: the event queue, simulated
        // clocks, disks (with their crash model) and network (links and client connections).
        .target(name: "SimWorld", dependencies: ["TernCore", "LogStorage", "NodeKit"], path: "Simulation/Sources/SimWorld"),
        .target(name: "Simulator", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft", "Controller", "Broker", "Client",
                                                  "SimWorld"],
                path: "Simulation/Sources/Simulator"),

        .executableTarget(name: "tern", dependencies: ["TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft", "Controller", "Broker", "Client", "KafkaClient", "Posix", "Runtime", "Simulator"]),

        .testTarget(name: "TernCoreTests", dependencies: ["TernCore"]),
        .testTarget(name: "KafkaProtocolTests", dependencies: ["KafkaProtocol"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LogStorageTests", dependencies: ["LogStorage", "SimWorld"]),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "SimWorld", "Simulator"], exclude: ["testdata"]),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "SimWorld", "Simulator"]),
        .testTarget(name: "BrokerTests", dependencies: ["Broker", "SimWorld", "Simulator"]),
        .testTarget(name: "ClientTests", dependencies: ["Client", "KafkaProtocol"]),
        .testTarget(name: "PosixTests", dependencies: ["Posix"]),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient", "Posix"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "TernCore", "KafkaProtocol", "LogStorage", "NodeKit", "Raft", "Controller", "Broker", "Client", "KafkaClient", "Posix", "tern"]),
        .testTarget(name: "SimulatorTests", dependencies: ["Simulator", "SimWorld", "LogStorage"],
                    path: "Simulation/Tests/SimulatorTests"),
    ],
    swiftLanguageModes: [.v6]
)
