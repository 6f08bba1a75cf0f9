#!/usr/bin/env python3
"""Usage: create-topic.py NAME PARTITIONS [REPLICATION_FACTOR]. Creates the topic through
confluent-kafka's AdminClient and waits until every partition has a leader (for the kcat tests,
since kcat cannot create topics)."""
import sys

import interop_common as common

if __name__ == "__main__":
    name, partitions = sys.argv[1], int(sys.argv[2])
    replication_factor = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    common.run_test(lambda: common.create_topic(name, partitions, replication_factor))
