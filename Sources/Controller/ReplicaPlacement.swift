import TernCore

/// Chooses replicas for new partitions: Kafka's rack-unaware round-robin, with the random start
/// and shift replaced by values derived from the topic name through a stable hash. Leaders (first
/// replicas) go round the brokers one partition at a time; followers follow at a shift that grows
/// each time the partitions wrap around the brokers, so replica sets differ between rounds.
public enum ReplicaPlacement {
    /// Replicas for partitions `firstPartition ..< firstPartition + partitionCount` of `topic`,
    /// over `brokers` (sorted, distinct, at least `replicationFactor` of them).
    public static func assign(topic: String, firstPartition: Int32, partitionCount: Int32,
                              replicationFactor: Int, brokers: [NodeID]) -> [[NodeID]] {
        precondition(replicationFactor >= 1 && replicationFactor <= brokers.count,
                     "replication factor \(replicationFactor) needs at least that many brokers, have \(brokers.count)")
        precondition(brokers == brokers.sorted() && Set(brokers).count == brokers.count, "brokers must be sorted and distinct")
        precondition(firstPartition >= 0 && partitionCount >= 0, "partition numbers are not negative")
        let brokerCount = brokers.count
        let hash = mixBits(stableHash(topic))
        let startIndex = Int(hash % UInt64(brokerCount))
        let initialShift = Int((hash >> 32) % UInt64(brokerCount))
        var assignments: [[NodeID]] = []
        assignments.reserveCapacity(Int(partitionCount))
        for partition in Int(firstPartition)..<Int(firstPartition + partitionCount) {
            let shift = initialShift + partition / brokerCount
            let first = (startIndex + partition) % brokerCount
            var replicas = [brokers[first]]
            for follower in 0..<(replicationFactor - 1) {
                replicas.append(brokers[followerIndex(first: first, shift: shift, follower: follower, brokerCount: brokerCount)])
            }
            assignments.append(replicas)
        }
        return assignments
    }

    /// Never lands on `first` and gives distinct brokers for distinct `follower` values below
    /// `brokerCount - 1`: the offset from `first` is 1 + ((shift + follower) mod (brokerCount - 1)).
    private static func followerIndex(first: Int, shift: Int, follower: Int, brokerCount: Int) -> Int {
        (first + 1 + (shift + follower) % (brokerCount - 1)) % brokerCount
    }
}
