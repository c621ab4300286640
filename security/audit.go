package security

import (
	"sync"
	"time"
)

// DefaultAuditSize is how many events an AuditLog keeps by default.
const DefaultAuditSize = 1024

// Event is one authentication, or one change to the ACLs (Op set), as the
// audit log keeps it.
type Event struct {
	Time time.Time `json:"time"`
	// Op is "" for an authentication; "acl.create" or "acl.delete" for a
	// change to the ACLs, made by User, with Detail the ACL.
	Op        string `json:"op,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Edge      string `json:"edge"`
	Remote    string `json:"remote"`
	Mechanism string `json:"mechanism"`
	User      string `json:"principal"`
	Success   bool   `json:"success"`
	Reason    string `json:"reason,omitempty"`
}

// AuditLog keeps the last events in memory: a ring of fixed size, so that
// a flood of failed attempts costs no more memory than a quiet day.
type AuditLog struct {
	mu    sync.Mutex
	ring  []Event
	next  int
	full  bool
	total uint64
	// sink, when set, keeps every event in a file too (auditfile.go).
	sink *auditFile
}

// NewAuditLog returns a log keeping the last size events (at least 1).
func NewAuditLog(size int) *AuditLog {
	return &AuditLog{ring: make([]Event, max(size, 1))}
}

// Add appends an event, dropping the oldest when full, and hands it to the
// log's file when it has one.
func (l *AuditLog) Add(e Event) {
	l.mu.Lock()
	sink := l.sink
	l.mu.Unlock()
	if sink != nil {
		sink.append(e)
	}
	l.add(e)
}

func (l *AuditLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = e
	l.next++
	l.total++
	if l.next == len(l.ring) {
		l.next, l.full = 0, true
	}
}

// Events returns the events kept, oldest first, and how many were ever
// added (more than returned once the ring wrapped).
func (l *AuditLog) Events() ([]Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Event(nil), l.ring[:l.next]...), l.total
	}
	out := make([]Event, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	out = append(out, l.ring[:l.next]...)
	return out, l.total
}
