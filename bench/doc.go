// Package bench is the measuring core of `sense bench`: open-loop pacing
// (Pacer), coordinated-omission-corrected latency recording (Recorder),
// exactly-once verification of what was acknowledged against what was
// consumed (Verifier), and the results.json contract (Results).
//
// Latency is always measured from an event's intended send time, the time
// the open-loop schedule says it should have left, so a sender that falls
// behind shows the delay in its figures instead of hiding it.
package bench
