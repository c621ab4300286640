package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sensehq/sense/group"
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

// Every error of the group coordinator maps to its Kafka error code, in
// one table; anything else is UNKNOWN_SERVER_ERROR.
func TestGroupErrorsMapToKafkaErrors(t *testing.T) {
	for err, want := range map[error]*kerr.Error{
		group.ErrInvalidGroupID:        kerr.InvalidGroupID,
		group.ErrInvalidSessionTimeout: kerr.InvalidSessionTimeout,
		group.ErrInconsistentProtocol:  kerr.InconsistentGroupProtocol,
		group.ErrMemberIDRequired:      kerr.MemberIDRequired,
		group.ErrUnknownMemberID:       kerr.UnknownMemberID,
		group.ErrIllegalGeneration:     kerr.IllegalGeneration,
		group.ErrRebalanceInProgress:   kerr.RebalanceInProgress,
		group.ErrFencedInstanceID:      kerr.FencedInstanceID,
		group.ErrGroupIDNotFound:       kerr.GroupIDNotFound,
		group.ErrNonEmptyGroup:         kerr.NonEmptyGroup,
		fmt.Errorf("%w: %w", group.ErrRebalanceInProgress, context.Canceled): kerr.RebalanceInProgress,
		errors.New("something else"):                                         kerr.UnknownServerError,
	} {
		if got := groupErrorCode(err); got != want.Code {
			t.Errorf("%v maps to %d, want %s (%d)", err, got, want.Message, want.Code)
		}
	}
	if got := groupErrorCode(nil); got != 0 {
		t.Errorf("nil maps to %d", got)
	}
	if len(groupErrors) != 10 {
		t.Errorf("the table has %d entries; this test checks 10", len(groupErrors))
	}
}
