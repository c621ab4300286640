package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sensehq/sense/result"
)

// Every Sense result code maps to an error code Kafka clients know, and
// the retriable ones to errors Kafka clients retry (or, for a jurisdiction
// refusal, to POLICY_VIOLATION, which resending cannot cure).
func TestResultCodesMapToKafkaErrors(t *testing.T) {
	for c := result.Code(0); c.Known(); c++ {
		k := c.Kafka()
		if c == result.OK {
			if k != 0 {
				t.Fatalf("OK maps to %d", k)
			}
			continue
		}
		err := kerr.ErrorForCode(k)
		ke, ok := err.(*kerr.Error)
		if !ok || ke.Code != k {
			t.Fatalf("%s maps to Kafka error %d, which franz-go does not know", c, k)
		}
		if c.Retriable() && !ke.Retriable && c != result.NoCompliantHub && c != result.StorageError {
			t.Fatalf("%s is retriable but maps to %s, which Kafka clients do not retry", c, ke.Message)
		}
	}
	for c, want := range map[result.Code]*kerr.Error{
		result.Overloaded:         kerr.NotEnoughReplicas,
		result.PolicyViolation:    kerr.PolicyViolation,
		result.NoCompliantHub:     kerr.PolicyViolation,
		result.CorruptBatch:       kerr.CorruptMessage,
		result.OutOfOrderSequence: kerr.OutOfOrderSequenceNumber,
		result.DuplicateSequence:  kerr.DuplicateSequenceNumber,
		result.ProducerFenced:     kerr.InvalidProducerEpoch,
		result.UnknownPipeline:    kerr.UnknownTopicOrPartition,
		result.StorageError:       kerr.KafkaStorageError,
		result.NotLeader:          kerr.NotLeaderForPartition,
	} {
		if c.Kafka() != want.Code {
			t.Fatalf("%s maps to %d, want %s (%d)", c, c.Kafka(), want.Message, want.Code)
		}
	}
}
