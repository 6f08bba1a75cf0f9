// The `tern` command line. Each subcommand lives in its own file; this file only dispatches.
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: tern <command> [options]

    commands:
      broker --config FILE       run one node (broker, controller or both, as process.roles says)
                                   from a server.properties file; SIGTERM: controlled shutdown
      bench log [options]        storage engine benchmark (group-committed appends, reads, recovery, CRC)
      bench codec [options]      encode+decode cost of a 1,000-record Produce and Fetch in Kafka's
                                   wire format; see 'tern bench codec --help'
      bench produce|consume --bootstrap HOST:PORT --topic T [options]
                                 cluster benchmark over the Kafka protocol: records/s, MB/s,
                                 send-to-ack latency p50/p99/p999 (produce), time to first record
                                 (consume); see 'tern bench produce --help'
      topics create|list|describe|delete [NAME] --bootstrap HOST:PORT [options]
                                 manage topics (create: --partitions N --replication-factor R
                                 --config KEY=VALUE ...); describe shows leader, epoch, replicas, ISR
      configs describe|set|delete --topic NAME | --broker ID [KEY=VALUE ... | KEY ...] --bootstrap HOST:PORT
                                 a topic's or broker's configs: every value with its source; set and
                                 delete through the controller, applied by the brokers at once
      produce TOPIC --bootstrap HOST:PORT [--acks all|1|0] [--key-separator C] [--partition P]
                                 console producer: one record per stdin line (idempotent, acks=all
                                 by default); exits once all are acknowledged
      consume TOPIC --bootstrap HOST:PORT [--from-beginning] [--partition P] [--max-records N]
                  [--exit-at-end] [--print-key] [--print-offset]
                                 console consumer: prints each record's value
      cluster up DIR [--timeout-seconds N]
                                 start a local cluster: one detached `tern broker` per DIR/*.properties
                                 (see cluster-configs/), logs in DIR/logs, pids in DIR/run; waits until
                                 every listener accepts connections (default 60 s), then prints the
                                 bootstrap servers as its last line
      cluster down DIR [--timeout-seconds N]
                                 stop it: SIGTERM, then SIGKILL after N s (default 35)
      cluster status --bootstrap HOST:PORT
                                 active controller, brokers, topics, under-replicated and offline partitions
      demo log DIR               append, crash-free reopen and read back a small log in DIR
      simulate [options]         deterministic cluster simulation under faults:
                                   --seed N | --seeds A..B   one run with a summary, or a sweep
                                   --profile none|network|crash|disk|all|broker-failure
                                             (default all; a sweep takes a comma-separated list;
                                             broker-failure: one broker fails once mid-run,
                                             nothing else, and writes must resume in time)
                                   --controllers N --brokers M | --combined N [--brokers M]
                                                             dedicated controllers and brokers
                                                             (default 3 + 5), or N combined nodes
                                                             (and M brokers beside them)
                                   --safety-seconds S --liveness-seconds L      (default 60, 30)
                                   --fault-weights K=N,...   only these faults (of those the profile
                                                             enables), with these weights, e.g.
                                                             power-loss=8,crash=1
                                   --fault-interval-ms N     mean time between faults (default 400)
                                   --fault-duration-ms A..B  how long a partition, pause, skew or
                                                             EIO window lasts (default 50..2000)
                                   --restart-delay-ms A..B   how long a crashed, killed or powered-off
                                                             node stays down (default 10..1000)
                                   --sync-latency-ms A..B    every fsync takes A to B ms (default
                                                             0.2 to 5; slower disks widen the window
                                                             between a write and its durability)
                                   --trace FILE              write every event, one line each
                                   --no-workload             only the control plane: no producer,
                                                             consumer or operator actions (by default
                                                             an idempotent acks=all producer, a
                                                             consumer and an operator run, and every
                                                             write and read is checked)
                                   --unclean-leader-election UNSAFE: a replica outside the ISR may
                                                             become leader (Kafka's setting)
                                   --durability synced|page-cache   what counts toward the high
                                                             watermark (default synced; page-cache,
                                                             Kafka's default, is UNSAFE under
                                                             coordinated power loss)
                                   --watch TOPIC-PARTITION   print each change of one partition's
                                                             replicas and registration (one seed)
                                   --jobs N                  split a sweep across N worker processes
                                                             (default 1), reporting what one would
                                   --stop-on-failure         end a sweep at the first failing seed
                                                             (profiles and seeds left are not run)
      help                       this text

    exit codes: 0 success, 1 an operation failed (message on stderr), 2 usage error

    internal:
      storage-crash-child DIR SEED   append and sync until killed, printing each durable offset (used by tests)
    """

func fail(_ message: String) -> Never {
    var standardError = StandardError()
    print("tern: \(message)", to: &standardError)
    exit(2)
}

struct StandardError: TextOutputStream {
    mutating func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { print(usage); exit(2) }
arguments.removeFirst()

switch command {
case "broker":
    runBroker(arguments)
case "bench":
    switch arguments.first {
    case "log": runLogBenchmark(Array(arguments.dropFirst()))
    case "codec":
        if arguments.contains("--help") { print(codecBenchmarkUsage); exit(0) }
        runCodecBenchmark(Array(arguments.dropFirst()))
    case "produce", "consume":
        if arguments.contains("--help") { print(kafkaBenchmarkUsage); exit(0) }
        runKafkaBenchmark(arguments[0], Array(arguments.dropFirst()))
    default: fail("unknown benchmark '\(arguments.first ?? "")'; try 'tern bench log|codec|produce|consume'")
    }
case "topics":
    runTopics(arguments)
case "configs":
    runConfigs(arguments)
case "produce":
    runProduce(arguments)
case "consume":
    runConsume(arguments)
case "cluster":
    if arguments.first == "status" {
        runClusterStatus(Array(arguments.dropFirst()))
    } else {
        runCluster(arguments)
    }
case "demo":
    guard arguments.first == "log", arguments.count == 2 else { fail("usage: tern demo log DIR") }
    runLogDemo(directory: arguments[1])
case "simulate":
    runSimulate(arguments)
case "storage-crash-child":
    guard arguments.count == 2, let seed = UInt64(arguments[1]) else { fail("usage: tern storage-crash-child DIR SEED") }
    runStorageCrashChild(directory: arguments[0], seed: seed)
case "help", "--help", "-h":
    print(usage)
default:
    fail("unknown command '\(command)'\n\(usage)")
}
