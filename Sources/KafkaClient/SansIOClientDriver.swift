import Client
import KafkaProtocol
import Posix
import TernCore

/// Carries a sans-IO client's requests over a `KafkaNetworkClient`: asks it what to send, sends
/// each to the broker its destination names (bootstrap pseudo ids, then the brokers Metadata
/// named), waits no longer than the client's next wakeup, and hands back every answer or loss.
public struct SansIOClientDriver<Wrapped: SansIOKafkaClient> {
    public var client: Wrapped
    public let network: KafkaNetworkClient
    /// The most recent request failure, so a tool that stalls can say why (e.g. no broker reachable).
    public private(set) var lastNetworkError: KafkaClientError?

    public init(client: Wrapped, network: KafkaNetworkClient) {
        self.client = client
        self.network = network
    }

    /// One round: send what is due, wait up to `maximumWait` (less if the client must wake
    /// sooner, not at all if an answer is already there) and deliver what arrived.
    public mutating func step(maximumWait: Duration) {
        let now = Clocks.wallClockNow()
        let requests = client.nextRequests(now: now)
        network.learnBrokers(client.metadata.sortedBrokerIDs.map { client.metadata.brokers[$0]! })
        for outgoing in requests { send(outgoing) }

        var wait = maximumWait
        if let wakeup = client.nextWakeup() { wait = min(wait, max(wakeup - Clocks.wallClockNow(), .zero)) }
        for event in network.poll(timeout: wait) { deliver(event) }
    }

    private mutating func send(_ outgoing: ClientRequest) {
        // The network's own deadline is a little later than the client's, so the client's
        // timeout decides and the network only cleans up the connection after it.
        network.send(outgoing.outgoing(timeout: client.requestTimeout + .seconds(1)), to: outgoing.destination)
    }

    private mutating func deliver(_ event: NetworkEvent) {
        let now = Clocks.wallClockNow()
        switch event {
        case let .response(token, response, _):
            if case let .metadata(metadata) = response { network.learnBrokers(metadata.brokers) }
            client.handle(response: response, correlation: RequestCorrelation(token), now: now)
        case let .failed(token, error):
            lastNetworkError = error
            client.handleTimeout(correlation: RequestCorrelation(token), now: now)
        }
    }
}
