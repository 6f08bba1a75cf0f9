// `tern configs describe|set|delete`: a topic's or a broker's configs over the Kafka protocol.
import KafkaClient
import KafkaProtocol
import TernCore

func runConfigs(_ arguments: [String]) {
    let options = parseToolOptions(configsUsage) { () throws(UsageError) in try ConfigsOptions(arguments) }
    let admin = KafkaAdminClient(bootstrap: options.bootstrap)
    defer { admin.close() }
    do {
        switch options.command {
        case .describe:
            let result = try admin.describeConfigs(options.target)
            if result.errorCode != 0 { failOperation("\(kafkaErrorName(result.errorCode)): \(result.errorMessage ?? "")") }
            for config in result.configs.sorted(by: { $0.name < $1.name }) {
                let flags = [configSourceName(config.configSource), config.readOnly ? "read-only" : nil].compactMap { $0 }
                print("\(config.name)=\(config.value ?? "(null)")  (\(flags.joined(separator: ", ")))")
            }
        case let .set(assignments):
            try report(admin.alterConfigs(options.target, changes: assignments.map { ($0.name, $0.value) }), verb: "set")
        case let .delete(names):
            try report(admin.alterConfigs(options.target, changes: names.map { ($0, nil) }), verb: "deleted")
        }
    } catch {
        failOperation(error.description)
    }
}

private func report(_ result: KafkaWire.IncrementalAlterConfigsResponse.AlterConfigsResourceResponse, verb: String) {
    guard result.errorCode == 0 else { failOperation("\(kafkaErrorName(result.errorCode)): \(result.errorMessage ?? "")") }
    print("\(verb) configs of \(result.resourceType == 2 ? "topic" : "broker") \(result.resourceName)")
}

/// Kafka's ConfigSource names, as kafka-configs prints them.
private func configSourceName(_ source: Int8) -> String {
    switch source {
    case 1: return "DYNAMIC_TOPIC_CONFIG"
    case 2: return "DYNAMIC_BROKER_CONFIG"
    case 3: return "DYNAMIC_DEFAULT_BROKER_CONFIG"
    case 4: return "STATIC_BROKER_CONFIG"
    case 5: return "DEFAULT_CONFIG"
    default: return "UNKNOWN"
    }
}
