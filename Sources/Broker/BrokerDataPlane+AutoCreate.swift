import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// Kafka's automatic topic creation (`auto.create.topics.enable`): a Metadata request that names
/// a topic nobody created, and allows creating it (every version before 4, and later ones that
/// say so), makes the broker ask the active controller to create it with the cluster's defaults
/// (`num.partitions`, `default.replication.factor`, as a CreateTopics with -1 for both). The
/// client is answered LEADER_NOT_AVAILABLE meanwhile and asks again, as against Kafka; once the
/// topic is in this broker's image, Metadata names its leaders.
extension BrokerDataPlane {
    /// Names waiting to be sent or in flight at once; past it, a name waits for the next request.
    static let maximumAutoCreations = 1_000

    /// The answer for a topic the image does not know: LEADER_NOT_AVAILABLE while it is being
    /// created, INVALID_TOPIC_EXCEPTION for a name no topic may have, else UNKNOWN_TOPIC_OR_PARTITION.
    func unknownTopicAnswer(_ name: String, mayCreate: Bool) -> KafkaErrorCode {
        guard mayCreate, configuration.autoCreateTopicsEnabled else { return .unknownTopicOrPartition }
        guard TopicRules.topicNameProblem(name) == nil, name != TopicRules.clusterMetadataTopicName else { return .invalidTopic }
        if !autoCreationsWanted.contains(name), !autoCreationsInFlight.values.contains(where: { $0.names.contains(name) }),
           autoCreationsWanted.count + autoCreationsInFlight.values.reduce(0, { $0 + $1.names.count }) < Self.maximumAutoCreations {
            autoCreationsWanted.append(name)
        }
        return .leaderNotAvailable
    }

    /// Sends the names wanted since the last event in one CreateTopics.
    func sendAutoCreations(now: Instant, effects: inout [NodeEffect]) {
        guard !autoCreationsWanted.isEmpty, brokerEpoch != nil else { return }
        let names = autoCreationsWanted
        autoCreationsWanted.removeAll()
        let correlationID = takeCorrelationID()
        autoCreationsInFlight[correlationID] = AutoCreation(names: names, sentAt: now)
        let request = CreateTopicsRequest(topics: names.map { CreateTopicsRequest.Topic(name: $0) })
        effects.append(.send(to: controller, bytes: PeerMessage.controllerRequest(
            correlationID: correlationID, request: .createTopics(request)).encoded()))
    }

    /// Forgets creations the controller answered, refused or left unanswered: a client still
    /// asking for the topic sets them off again.
    func forgetAutoCreation(_ correlationID: UInt64) {
        autoCreationsInFlight[correlationID] = nil
    }

    func expireAutoCreations(now: Instant) {
        for correlationID in autoCreationsInFlight.keys.sorted()
        where now - autoCreationsInFlight[correlationID]!.sentAt >= configuration.controllerRequestTimeout {
            autoCreationsInFlight[correlationID] = nil
        }
    }
}

/// Topics one CreateTopics asked the controller to create for Metadata requests.
struct AutoCreation {
    let names: [String]
    let sentAt: Instant
}
