import Controller
import KafkaProtocol
import SimWorld
import TernCore

/// Topics come only from requests that may create them: every topic that appears in the committed
/// metadata was named by a CreateTopics request or by a Metadata request that allows automatic
/// creation (any version before 4 does), delivered to a broker before it appeared; and a topic
/// only a Metadata request could have made has the controllers' defaults (`num.partitions`
/// partitions of `default.replication.factor` replicas). Judged from the committed image the
/// metadata checker keeps (each topic when it first appears, and again after each deletion).
public final class TopicCreationChecker: SimulationChecker {
    public let name = "topic-creation"
    private let metadata: MetadataChecker
    private let defaults: (partitions: Int32, replicationFactor: Int16)
    private var traffic = ClientTraffic(apis: [.createTopics, .metadata])
    private var namedByCreateTopics: Set<String> = []
    private var allowedByMetadata: Set<String> = []
    private var present: Set<String> = []
    private var checkedImageOffset: Offset?
    /// Topics that appeared after only a Metadata request named them.
    public private(set) var automaticallyCreated = 0

    init(metadata: MetadataChecker, defaults: ControllerConfiguration) {
        self.metadata = metadata
        self.defaults = (defaults.defaultPartitionCount, defaults.defaultReplicationFactor)
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        if let (_, request) = traffic.request(in: delivered, simulation: simulation) {
            note(request, version: Self.requestVersion(delivered))
        }
        _ = traffic.answers(in: delivered)  // only requests matter; answers are let go
        let image = metadata.referenceImage
        guard checkedImageOffset != image.offset else { return .ok }
        checkedImageOffset = image.offset
        let names = image.topicNames
        present = present.filter { image.topic(named: $0) != nil }
        for name in names where !present.contains(name) {
            present.insert(name)
            guard let topic = image.topic(named: name) else { continue }
            if let problem = problem(topic) { return .violation("topic \(name) appeared at metadata offset \(image.offset): \(problem)") }
        }
        return .ok
    }

    private func note(_ request: KafkaRequest, version: Int16?) {
        switch request {
        case let .createTopics(create):
            namedByCreateTopics.formUnion(create.topics.map(\.name))
        case let .metadata(ask):
            guard (version ?? 4) < 4 || ask.allowAutoTopicCreation else { return }
            allowedByMetadata.formUnion((ask.topics ?? []).compactMap(\.name))
        default:
            return
        }
    }

    /// The pure rule for one topic as it appears.
    func problem(_ topic: TopicImage) -> String? {
        if namedByCreateTopics.contains(topic.name) { return nil }
        guard allowedByMetadata.contains(topic.name) else {
            return "no CreateTopics named it and no Metadata request allowing creation did"
        }
        automaticallyCreated += 1
        let factors = Set(topic.partitions.map { $0.replicas.count })
        guard topic.partitions.count == Int(defaults.partitions), factors == [Int(defaults.replicationFactor)] else {
            return "created automatically with \(topic.partitions.count) partitions of \(factors.sorted()) replicas, "
                + "not the defaults \(defaults.partitions) of \(defaults.replicationFactor)"
        }
        return nil
    }

    /// The version a client request frame asked for (bytes 2-3 of the frame), if the event is one.
    static func requestVersion(_ delivered: DeliveredEvent) -> Int16? {
        guard case let .clientRequest(_, frame) = delivered.event, frame.count >= 4 else { return nil }
        return Int16(bitPattern: UInt16(frame[2]) << 8 | UInt16(frame[3]))
    }
}
