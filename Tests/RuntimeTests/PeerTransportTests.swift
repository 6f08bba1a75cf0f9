import Glibc
import Posix
@testable import Runtime
import TernCore
import Testing

@Suite struct PeerTransportTests {
    /// Two (or three) transports on one loop, each knowing the others' listeners.
    final class Fixture {
        let loop: EventLoop
        var transports: [NodeID: PeerTransport] = [:]
        var received: [NodeID: [(from: NodeID, bytes: [UInt8])]] = [:]
        var addresses: [NodeID: SocketAddress] = [:]

        init() throws { loop = try EventLoop() }

        @discardableResult
        func add(_ id: NodeID, clusterID: String = "cluster-a") throws -> PeerTransport {
            let transport = try PeerTransport(localNodeID: id, clusterID: clusterID,
                                              listenAddress: SocketAddress(host: "127.0.0.1", port: 0), loop: loop,
                                              log: RuntimeLog(nodeID: id, isEnabled: false))
            transport.addressOf = { [unowned self] peer in self.addresses[peer] }
            transport.deliver = { [unowned self] sender, bytes in self.received[id, default: []].append((sender, bytes)) }
            transports[id] = transport
            addresses[id] = transport.listenAddress
            return transport
        }

        func messages(at id: NodeID) -> [[UInt8]] { received[id, default: []].map(\.bytes) }
        func senders(at id: NodeID) -> [NodeID] { received[id, default: []].map(\.from) }
    }

    @Test func helloThenMessagesBothWaysOverOneConnection() throws {
        let fixture = try Fixture()
        let one = try fixture.add(NodeID(1))
        let two = try fixture.add(NodeID(2))

        // Queued while the connection is being opened, delivered in order after the hello.
        for index in 0..<100 { one.send([UInt8(index)], to: NodeID(2)) }
        #expect(drive(fixture.loop) { fixture.messages(at: NodeID(2)).count == 100 })
        #expect(fixture.messages(at: NodeID(2)) == (0..<100).map { [UInt8($0)] })
        #expect(Set(fixture.senders(at: NodeID(2))) == [NodeID(1)])
        #expect(drive(fixture.loop) { one.connectedPeers == [NodeID(2)] })
        #expect(drive(fixture.loop) { two.connectedPeers == [NodeID(1)] })

        // The answer uses the connection node 1 opened: node 2 opens none of its own.
        two.send(Array("answer".utf8), to: NodeID(1))
        #expect(drive(fixture.loop) { fixture.messages(at: NodeID(1)).count == 1 })
        #expect(fixture.received[NodeID(1)]?.first?.from == NodeID(2))
        #expect(two.statistics.connectionsOpened == 1, "only the accepted connection")
        #expect(one.statistics.connectionsOpened == 1)
        #expect(one.statistics.messagesDropped == 0 && two.statistics.messagesDropped == 0)
    }

    @Test func aMessageToItselfIsDeliveredLocally() throws {
        let fixture = try Fixture()
        let one = try fixture.add(NodeID(1))
        one.send([42], to: NodeID(1))
        #expect(fixture.messages(at: NodeID(1)) == [[42]])
        #expect(fixture.senders(at: NodeID(1)) == [NodeID(1)])
        #expect(one.statistics.connectionsOpened == 0)
    }

    @Test func anotherClustersNodeIsRefused() throws {
        let fixture = try Fixture()
        let one = try fixture.add(NodeID(1))
        let stranger = try fixture.add(NodeID(3), clusterID: "cluster-b")
        stranger.send([1], to: NodeID(1))
        #expect(drive(fixture.loop) { one.statistics.handshakesRejected == 1 })
        for _ in 0..<20 { fixture.loop.runOnce(maximumWait: .milliseconds(1)) }
        #expect(fixture.messages(at: NodeID(1)).isEmpty)
        #expect(one.connectedPeers.isEmpty)
    }

    @Test func messagesToAnUnknownOrUnreachablePeerAreDroppedAndTheLinkRecovers() throws {
        let fixture = try Fixture()
        let one = try fixture.add(NodeID(1))
        one.send([1], to: NodeID(9))
        #expect(one.statistics.messagesDropped == 1, "no address for node 9")

        // Node 2's address is known but nothing listens there yet.
        let port = try reserveLoopbackPorts(1)[0]
        fixture.addresses[NodeID(2)] = SocketAddress(host: "127.0.0.1", port: port)
        one.send([2], to: NodeID(2))
        #expect(drive(fixture.loop) { one.statistics.connectionsOpened == 1 && one.connectedPeers.isEmpty })
        // Keep sending until node 2 exists and a message gets through: backoff, then reconnect.
        var started = false
        #expect(drive(fixture.loop) {
            if !started, one.statistics.messagesDropped > 1 {
                let two = try! PeerTransport(localNodeID: NodeID(2), clusterID: "cluster-a",
                                             listenAddress: SocketAddress(host: "127.0.0.1", port: port), loop: fixture.loop,
                                             log: RuntimeLog(nodeID: NodeID(2), isEnabled: false))
                two.deliver = { sender, bytes in fixture.received[NodeID(2), default: []].append((sender, bytes)) }
                fixture.transports[NodeID(2)] = two
                started = true
            }
            one.send([3], to: NodeID(2))
            return !fixture.messages(at: NodeID(2)).isEmpty
        })
        #expect(fixture.messages(at: NodeID(2)).allSatisfy { $0 == [3] })
    }

    @Test func aLostConnectionIsReplacedOnTheNextSend() throws {
        let fixture = try Fixture()
        let one = try fixture.add(NodeID(1))
        var two = try fixture.add(NodeID(2))
        one.send([1], to: NodeID(2))
        #expect(drive(fixture.loop) { fixture.messages(at: NodeID(2)).count == 1 })
        // Node 2 restarts on the same port.
        let address = two.listenAddress
        two.close()
        #expect(drive(fixture.loop) { one.connectedPeers.isEmpty })
        two = try PeerTransport(localNodeID: NodeID(2), clusterID: "cluster-a", listenAddress: address, loop: fixture.loop,
                                log: RuntimeLog(nodeID: NodeID(2), isEnabled: false))
        two.deliver = { sender, bytes in fixture.received[NodeID(2), default: []].append((sender, bytes)) }
        #expect(drive(fixture.loop) {
            one.send([2], to: NodeID(2))
            return fixture.messages(at: NodeID(2)).count >= 2
        })
        #expect(fixture.messages(at: NodeID(2)).dropFirst().allSatisfy { $0 == [2] })
        _ = two
    }

    @Test func theHelloRoundTripsAndRejectsGarbage() throws {
        let hello = PeerHello(clusterID: "abc", nodeID: NodeID(7))
        #expect(try PeerHello(decoding: hello.encoded()) == hello)
        #expect(throws: PeerHello.DecodeFailure.wrongMagic) { try PeerHello(decoding: [0, 0, 0, 0, 0, 1]) }
        var wrongVersion = hello.encoded()
        wrongVersion[5] = 9
        #expect(throws: PeerHello.DecodeFailure.unsupportedVersion(9)) { try PeerHello(decoding: wrongVersion) }
        #expect(throws: PeerHello.DecodeFailure.malformed) { try PeerHello(decoding: Array(hello.encoded().dropLast())) }
        #expect(throws: PeerHello.DecodeFailure.malformed) { try PeerHello(decoding: hello.encoded() + [0]) }
    }
}
