#if canImport(Glibc)
import Posix
import Glibc
#endif
import Runtime

/// `tern broker --config FILE`: runs one node process (broker, controller or both, as
/// `process.roles` says) until SIGTERM/SIGINT or a fatal error.
///
/// Exit codes: 0 after a controlled shutdown (or its timeout, or a signal on a controller-only
/// node), 70 when the node halted on a broken invariant, 75 when it stopped after an operating
/// error it cannot continue from (a failed fsync; a supervisor restarts it), 1 when it could not
/// start, 2 for a usage or configuration error.
func runBroker(_ arguments: [String]) -> Never {
    guard arguments.count == 2, arguments[0] == "--config" else { fail("usage: tern broker --config FILE") }
    // Before any thread exists (the disk's sync thread is started by the host): every thread
    // inherits the mask, so SIGTERM and SIGINT reach only the host's signalfd.
    do throws(SystemCallError) {
        try NodeHost.blockTerminationSignals()
    } catch {
        fail("cannot block termination signals: \(error)")
    }
    let configuration: NodeLaunchConfiguration
    do throws(ServerPropertiesError) {
        configuration = try ServerProperties.load(path: arguments[1]).launchConfiguration()
    } catch {
        fail("\(error)")
    }
    var options = NodeHostOptions()
    options.handlesTerminationSignals = true
    let host: NodeHost
    do throws(NodeHostError) {
        host = try NodeHost(configuration: configuration, options: options)
    } catch {
        let outcome = NodeHostOutcome.failedToStart(reason: "\(error)")
        RuntimeLog(nodeID: configuration.nodeID).info("\(outcome)")
        exit(outcome.processExitCode)
    }
    let outcome = host.run()
    exit(outcome.processExitCode)
}
