import NodeKit

// The Controller module: KRaft-style cluster metadata, as pure values.
//
//   MetadataRecord            one metadata log entry; versioned codec in MetadataRecordCodec.swift
//   MetadataImage             the records applied in order; refuses records that break an invariant
//                             (epochs only grow, leader ∈ ISR, fenced brokers lead nothing) and has a
//                             canonical encoding and digest for cross-node checkers
//   ControllerCore    the active controller's decisions: requests and ticks in, records to
//                             propose and replies out (see its doc comment for how to drive it)
//   ControllerRequest/...     Tern's internal broker↔controller protocol (ControllerMessages.swift)
//
// Choices where Kafka leaves room, or where Tern differs:
// - Broker epochs come from a counter in the image (highest epoch + 1), not from record offsets,
//   so the controller can decide them before Raft assigns offsets.
// - Topic ids are derived from the name and the image offset through a stable hash (never zero,
//   never an id in use), so no random source is needed and replays are exact.
// - Every record of a decision is applied to a working copy of the image as it is built
//   (ProposalBuilder): the controller's own output is checked against the image's invariants, and a
//   violation stops the node.
// - Controlled shutdown: leaderships move and the broker leaves every ISR it is not the last member
//   of; shutdown is granted once it leads nothing and every other live broker reports having applied
//   the metadata up to the shutdown record. The last ISR member of a partition stays in the ISR when
//   it is fenced or leaves, so it can return as a clean leader.
// - Replica placement is Kafka's rack-unaware round-robin with its random start and shift derived
//   from the topic name.
