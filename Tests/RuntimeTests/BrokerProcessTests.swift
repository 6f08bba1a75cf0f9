import Glibc
@testable import Runtime
import TernCore
import Testing

/// A `tern broker` child process with its standard error in a file.
private final class BrokerProcess {
    let pid: pid_t
    let logPath: String

    init(executable: String, configPath: String, logPath: String) throws {
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let arguments = [executable, "broker", "--config", configPath]
        var argumentVector: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argumentVector { free(pointer) } }
        var spawned = pid_t()
        let code = posix_spawn(&spawned, executable, &actions, nil, &argumentVector, environ)
        try #require(code == 0, "posix_spawn failed (\(code))")
        pid = spawned
    }

    var log: String {
        guard let file = fopen(logPath, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit (generous deadline); the exit code, or nil if it did not exit normally.
    func waitForExit(seconds: Int = 90) -> Int32? {
        for _ in 0..<(seconds * 50) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                return status & 0x7f == 0 ? (status >> 8) & 0xff : nil
            }
            sleepMilliseconds(20)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return nil
    }
}

@Suite(.serialized) struct BrokerProcessTests {
    /// Three `tern broker` processes from server.properties files: they elect a controller,
    /// register and get unfenced over real sockets; SIGTERM makes a broker shut down under the
    /// controller's control and exit 0.
    @Test func threeBrokerProcessesFormAClusterAndStopOnSIGTERM() throws {
        let executable = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let directory = TemporaryDirectory(prefix: "tern-broker-process")
        let ports = try reserveLoopbackPorts(6)
        let voters = (0..<3).map { "\($0 + 1)@127.0.0.1:\(ports[3 + $0])" }.joined(separator: ",")
        var processes: [BrokerProcess] = []
        defer { for process in processes { process.signal(SIGKILL); _ = process.waitForExit() } }
        for index in 0..<3 {
            let properties = """
                node.id=\(index + 1)
                process.roles=broker,controller
                controller.quorum.voters=\(voters)
                listeners=CLIENT://127.0.0.1:\(ports[index]),INTERNAL://127.0.0.1:\(ports[3 + index])
                log.dirs=\(directory.child("data-\(index + 1)"))
                cluster.id=tern-process-test
                broker.heartbeat.interval.ms=200
                """
            let configPath = directory.child("node-\(index + 1).properties")
            let file = try #require(fopen(configPath, "w"))
            fputs(properties + "\n", file)
            fclose(file)
            processes.append(try BrokerProcess(executable: executable, configPath: configPath,
                                               logPath: directory.child("node-\(index + 1).log")))
        }
        #expect(eventually { processes.allSatisfy { $0.log.contains("unfenced") } },
                "logs: \(processes.map(\.log))")
        #expect(eventually { processes.contains { $0.log.contains("became the active controller") } })

        let leaving = try #require(processes.first { !$0.log.contains("became the active controller") })
        leaving.signal(SIGTERM)
        #expect(leaving.waitForExit() == 0, "log: \(leaving.log)")
        #expect(leaving.log.contains("controlled shutdown complete"), "log: \(leaving.log)")

        for process in processes where process !== leaving {
            // A second signal during the controlled shutdown stops the process at once.
            process.signal(SIGTERM)
            process.signal(SIGINT)
            #expect(process.waitForExit() == 0, "log: \(process.log)")
        }
        processes.removeAll()
    }
}
