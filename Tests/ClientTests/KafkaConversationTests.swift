import KafkaProtocol
import Testing
import TernCore
@testable import Client

/// A broker's side of a conversation, for driving the client's: decodes request frames and
/// answers them with real response frames.
private struct FakeBroker {
    var ranges: [KafkaAPIKey: ClosedRange<Int16>] = [.apiVersions: 0...3, .metadata: 0...12]

    func decode(_ frame: [UInt8]) throws -> DecodedKafkaRequest {
        #expect(frame.count >= 4)
        return try decodeKafkaRequest(frame[4...])
    }

    /// The answer frame without its size prefix, as a shell hands it to the conversation.
    func answer(_ request: DecodedKafkaRequest, errorCode: Int16 = 0) -> [UInt8] {
        let response: KafkaResponse
        switch request.body {
        case .apiVersions:
            var answer = KafkaWire.ApiVersionsResponse()
            answer.errorCode = errorCode
            answer.apiKeys = ranges.keys.sorted { $0.rawValue < $1.rawValue }.map { key in
                var entry = KafkaWire.ApiVersionsResponse.ApiVersion()
                entry.apiKey = key.rawValue
                entry.minVersion = ranges[key]!.lowerBound
                entry.maxVersion = ranges[key]!.upperBound
                return entry
            }
            response = .apiVersions(answer)
        default:
            response = .metadata(KafkaWire.MetadataResponse())
        }
        return Array(encodeKafkaResponse(response, for: request.header).dropFirst(4))
    }
}

private func metadataRequest(token: UInt64, timeout: Duration = .seconds(5)) -> OutgoingRequest {
    OutgoingRequest(apiKey: .metadata, token: token, timeout: timeout) { _ in .metadata(KafkaWire.MetadataRequest()) }
}

@Suite struct KafkaConversationTests {
    /// A request Kafka never answers (Produce acks=0) ends with its own answer once its frame is
    /// written, and nothing waits for the broker: a later request's answer is the next one read.
    @Test func aRequestKafkaNeverAnswersEndsWhenWritten() throws {
        var broker = FakeBroker()
        broker.ranges[.produce] = 3...9
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.connected(now: .zero)
        conversation.receive(broker.answer(try broker.decode(try #require(conversation.takeFrames().first))), now: .zero, events: &events)
        let written = KafkaResponse.produce(KafkaWire.ProduceResponse(responses: [.init(name: "t", partitionResponses: [.init(index: 0)])]))
        conversation.enqueue(OutgoingRequest(apiKey: .produce, token: 3, timeout: .seconds(5), answerWhenWritten: written) { _ in
            .produce(KafkaWire.ProduceRequest(acks: 0, timeoutMs: 1_000, topicData: []))
        }, now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 4), now: .zero, events: &events)
        let frames = conversation.takeFrames()
        #expect(frames.count == 2)
        guard case let .response(token, response, version) = try #require(events.first) else { Issue.record("no answer"); return }
        #expect(token == 3 && response == written && version == 9)
        conversation.receive(broker.answer(try broker.decode(frames[1])), now: .zero, events: &events)
        guard case let .response(nextToken, _, _) = try #require(events.last) else { Issue.record("no answer"); return }
        #expect(events.count == 2 && nextToken == 4)
    }

    @Test func handshakesFirstThenSendsWhatWaitedAtTheNegotiatedVersion() throws {
        let broker = FakeBroker()
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.enqueue(metadataRequest(token: 7), now: .zero, events: &events)
        #expect(conversation.takeFrames().isEmpty)  // nothing before the connection is up
        conversation.connected(now: .zero)
        let handshake = try broker.decode(try #require(conversation.takeFrames().first))
        #expect(handshake.header.apiKey == KafkaAPIKey.apiVersions.rawValue && handshake.header.apiVersion == 3)
        conversation.receive(broker.answer(handshake), now: .zero, events: &events)
        let frames = conversation.takeFrames()
        #expect(frames.count == 1)
        let metadata = try broker.decode(frames[0])
        #expect(metadata.header.apiKey == KafkaAPIKey.metadata.rawValue && metadata.header.apiVersion == 12)
        #expect(metadata.header.clientID == "test")
        conversation.receive(broker.answer(metadata), now: .zero, events: &events)
        guard case let .response(token, _, version) = try #require(events.first) else { Issue.record("no answer"); return }
        #expect(token == 7 && version == 12)
    }

    @Test func retriesTheHandshakeAtVersionZeroWhenRefused() throws {
        let broker = FakeBroker()
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.connected(now: .zero)
        let first = try broker.decode(conversation.takeFrames()[0])
        // An old broker answers in the v0 layout with UNSUPPORTED_VERSION and names no range.
        var refusal = first
        refusal.header.apiVersion = 0
        conversation.receive(FakeBroker(ranges: [:]).answer(refusal, errorCode: KafkaErrorCode.unsupportedVersion.rawValue),
                             now: .zero, events: &events)
        let retry = try broker.decode(try #require(conversation.takeFrames().first))
        #expect(retry.header.apiVersion == 0 && !conversation.isClosed)
    }

    @Test func anAnswerOutOfOrderClosesTheConversationAndFailsEveryRequest() throws {
        let broker = FakeBroker()
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.connected(now: .zero)
        conversation.receive(broker.answer(try broker.decode(conversation.takeFrames()[0])), now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 1), now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 2), now: .zero, events: &events)
        let frames = conversation.takeFrames()
        conversation.receive(broker.answer(try broker.decode(frames[1])), now: .zero, events: &events)
        #expect(conversation.isClosed)
        let failed = events.compactMap { event -> UInt64? in if case let .failed(token, _) = event { token } else { nil } }
        #expect(failed == [1, 2])
        guard case .protocolViolation = conversation.failure else { Issue.record("closed for \(String(describing: conversation.failure))"); return }
    }

    @Test func theOldestRequestPastItsDeadlineEndsTheConversation() throws {
        let broker = FakeBroker()
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.connected(now: .zero)
        conversation.receive(broker.answer(try broker.decode(conversation.takeFrames()[0])), now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 1, timeout: .seconds(2)), now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 2, timeout: .seconds(9)), now: .zero, events: &events)
        #expect(conversation.nextDeadline == Instant.zero + .seconds(2))
        conversation.expire(now: Instant.zero + .seconds(1), events: &events)
        #expect(events.isEmpty && !conversation.isClosed)
        conversation.expire(now: Instant.zero + .seconds(2), events: &events)
        #expect(conversation.isClosed)
        guard events.count == 2, case .failed(1, .requestTimedOut(.metadata)) = events[0], case .failed(2, .connectionLost) = events[1] else {
            Issue.record("events: \(events)")
            return
        }
    }

    @Test func aHandshakeWithoutAnswerTimesOut() {
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 8)
        var events: [ConversationEvent] = []
        conversation.enqueue(metadataRequest(token: 3), now: .zero, events: &events)
        conversation.connected(now: .zero)
        conversation.expire(now: Instant.zero + .seconds(1), events: &events)
        #expect(conversation.failure == .handshakeTimedOut(.seconds(1)))
        guard case .failed(3, _) = events.first else { Issue.record("events: \(events)"); return }
    }

    @Test func refusesRequestsPastItsBound() {
        var conversation = KafkaConversation(clientID: "test", handshakeTimeout: .seconds(1), maximumQueuedRequests: 1)
        var events: [ConversationEvent] = []
        conversation.enqueue(metadataRequest(token: 1), now: .zero, events: &events)
        conversation.enqueue(metadataRequest(token: 2), now: .zero, events: &events)
        guard events.count == 1, case .failed(2, .tooManyQueuedRequests) = events[0] else { Issue.record("events: \(events)"); return }
    }
}

@Suite struct VersionNegotiationTests {
    @Test func choosesTheHighestCommonVersion() {
        #expect(BrokerAPIVersions.negotiate(client: 3...11, broker: 0...9) == 9)
        #expect(BrokerAPIVersions.negotiate(client: 3...11, broker: 0...12) == 11)
        #expect(BrokerAPIVersions.negotiate(client: 3...11, broker: 0...2) == nil)
        #expect(BrokerAPIVersions.negotiate(client: 0...4, broker: 5...7) == nil)
        let versions = BrokerAPIVersions(ranges: [1: 4...12])
        #expect(versions.negotiatedVersion(apiKey: 1, clientRange: 4...16) == 12)
        #expect(versions.negotiatedVersion(apiKey: 60, clientRange: 0...1) == nil)
    }

    @Test func apiVersionsFallsBackLikeKafkaPython() {
        // The broker named its ApiVersions range in the v0 answer: the highest both know.
        #expect(ClientAPIVersions.apiVersionsRetryVersion(triedVersion: 3, brokerRange: 0...2) == 2)
        // No range named: v0, which every broker answers.
        #expect(ClientAPIVersions.apiVersionsRetryVersion(triedVersion: 3, brokerRange: nil) == 0)
        // v0 itself refused: nothing left to try.
        #expect(ClientAPIVersions.apiVersionsRetryVersion(triedVersion: 0, brokerRange: 0...4) == nil)
    }
}

