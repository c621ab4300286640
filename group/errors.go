package group

import "errors"

// The coordinator's answers, as sentinel errors to check with errors.Is.
// Each is one of the classic group protocol's error codes; an edge maps
// them to its own (edge/kafka: groupErrorCode, one table).
var (
	// ErrInvalidGroupID: the group id is empty.
	ErrInvalidGroupID = errors.New("group: invalid group id")
	// ErrInvalidSessionTimeout: the session timeout is outside
	// [MinSessionTimeout, MaxSessionTimeout].
	ErrInvalidSessionTimeout = errors.New("group: session timeout out of range")
	// ErrInconsistentProtocol: a join without a protocol type or
	// protocols, with another protocol type than the group's members, or
	// with no protocol every other member supports.
	ErrInconsistentProtocol = errors.New("group: inconsistent group protocol")
	// ErrMemberIDRequired: a join without a member id, when the request
	// asked for one first (JoinRequest.RequireMemberID); the result
	// carries the id to join with.
	ErrMemberIDRequired = errors.New("group: member id required")
	// ErrUnknownMemberID: the member is not (or no longer) in the group,
	// or the group does not exist.
	ErrUnknownMemberID = errors.New("group: unknown member id")
	// ErrIllegalGeneration: the member names another generation than the
	// group's.
	ErrIllegalGeneration = errors.New("group: illegal generation")
	// ErrRebalanceInProgress: the group is rebalancing; the member must
	// join again.
	ErrRebalanceInProgress = errors.New("group: rebalance in progress")
	// ErrFencedInstanceID: the static member's instance id is held by a
	// newer member.
	ErrFencedInstanceID = errors.New("group: fenced instance id")
	// ErrGroupIDNotFound: Forget of a group the coordinator does not know.
	ErrGroupIDNotFound = errors.New("group: group id not found")
	// ErrNonEmptyGroup: Forget of a group that has members.
	ErrNonEmptyGroup = errors.New("group: group has members")
)
