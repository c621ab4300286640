package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sensehq/sense/group"
)

// Consumer groups are run by a group.Coordinator (package group: Kafka's
// classic protocol, membership, rebalances, session timeouts, the checks
// on commits), and their committed offsets kept by a group.Store. The
// group APIs (8 to 16, 42) translate requests to the coordinator's plain
// types and its errors to Kafka error codes, here.

// groupErrors maps the coordinator's errors to Kafka error codes.
var groupErrors = []struct {
	err  error
	code int16
}{
	{group.ErrInvalidGroupID, kerr.InvalidGroupID.Code},
	{group.ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout.Code},
	{group.ErrInconsistentProtocol, kerr.InconsistentGroupProtocol.Code},
	{group.ErrMemberIDRequired, kerr.MemberIDRequired.Code},
	{group.ErrUnknownMemberID, kerr.UnknownMemberID.Code},
	{group.ErrIllegalGeneration, kerr.IllegalGeneration.Code},
	{group.ErrRebalanceInProgress, kerr.RebalanceInProgress.Code},
	{group.ErrFencedInstanceID, kerr.FencedInstanceID.Code},
	{group.ErrGroupIDNotFound, kerr.GroupIDNotFound.Code},
	{group.ErrNonEmptyGroup, kerr.NonEmptyGroup.Code},
}

// groupErrorCode returns the Kafka error code for an error of the group
// coordinator: 0 for nil, UNKNOWN_SERVER_ERROR for one it does not know.
func groupErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, e := range groupErrors {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return kerr.UnknownServerError.Code
}

// coordinatorCode returns 0 when this node coordinates group g, else the
// code that sends a client to FindCoordinator again: NOT_COORDINATOR when
// another node does, COORDINATOR_NOT_AVAILABLE when none does now.
func (c *conn) coordinatorCode(g string) int16 {
	b, ok := c.cluster().Coordinator(g)
	switch {
	case !ok:
		return kerr.CoordinatorNotAvailable.Code
	case b.ID != c.cluster().Self():
		return kerr.NotCoordinator.Code
	}
	return 0
}
