// Shared by the Kafka tools (topics, produce, consume, cluster status, bench produce|consume):
// exit codes and messages. 0 ok, 1 an operation failed, 2 the command line was wrong.
#if canImport(Glibc)
import Glibc
#endif
import KafkaClient
import TernCore

/// An operation failed (broker unreachable, topic refused, records not acknowledged): exit 1.
func failOperation(_ message: String) -> Never {
    var standardError = StandardError()
    print("tern: \(message)", to: &standardError)
    exit(1)
}

/// Parses a tool's options, or exits 2 with the message and the tool's usage.
func parseToolOptions<Options>(_ usage: String, _ parse: () throws(UsageError) -> Options) -> Options {
    do { return try parse() } catch { fail("\(error.message)\n\(usage)") }
}

func printToStandardError(_ text: String) {
    var standardError = StandardError()
    print(text, to: &standardError)
}

/// Milliseconds with two decimals, as Kafka's perf tools print latencies.
func formatMilliseconds(_ nanoseconds: Int64) -> String { formatFixed(Double(nanoseconds) / 1e6, places: 2) }

let topicsUsage = """
    usage: tern topics create NAME [--partitions N] [--replication-factor R] [--config KEY=VALUE ...] --bootstrap HOST:PORT
           tern topics list --bootstrap HOST:PORT
           tern topics describe [NAME] --bootstrap HOST:PORT
           tern topics delete NAME --bootstrap HOST:PORT
    """
let configsUsage = """
    usage: tern configs describe --topic NAME | --broker ID --bootstrap HOST:PORT
           tern configs set --topic NAME | --broker ID KEY=VALUE ... --bootstrap HOST:PORT
           tern configs delete --topic NAME | --broker ID KEY ... --bootstrap HOST:PORT
      describe: every config with its value and source; set/delete: IncrementalAlterConfigs
    """
let produceUsage = """
    usage: tern produce TOPIC --bootstrap HOST:PORT [--acks all|1|0] [--key-separator C] [--partition P]
      reads lines from standard input, one record each (KEY<C>VALUE with --key-separator)
    """
let consumeUsage = """
    usage: tern consume TOPIC --bootstrap HOST:PORT [--from-beginning] [--partition P] [--max-records N]
                        [--exit-at-end] [--print-key] [--print-offset]
    """
let clusterStatusUsage = "usage: tern cluster status --bootstrap HOST:PORT"
let kafkaBenchmarkUsage = """
    usage: tern bench produce --bootstrap HOST:PORT --topic T [--records N] [--record-bytes B] [--acks all|1|0]
                              [--partitions P] [--replication-factor R] [--window W] [--sync-records S]
           (N records with at most W unacknowledged, default 1000; then S records one at a time, default 0)
           tern bench consume --bootstrap HOST:PORT --topic T [--records N] [--timeout-seconds S]
    """
func exitWithoutMessage(code: Int32) -> Never { exit(code) }
