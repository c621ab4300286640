// Package security is Sense's authentication and the seam of its
// authorization: who a connection or request is (Principal), how that is
// proved (SCRAM-SHA-256 and SCRAM-SHA-512 per RFC 5802 and RFC 7677, PLAIN
// checked against the SCRAM credential, HMAC-signed tokens, a bootstrap
// token), and whether it may do what it asks (Authorizer).
//
// Users are kept as SCRAM credentials only: a salt, an iteration count,
// StoredKey and ServerKey per mechanism, never the password. Where they
// are kept is the caller's: the cluster metadata in a cluster, a file in
// the data directory of a node alone (FileStore); an Authenticator reads
// them through a Directory.
//
// Every decoder of bytes a client sends (SCRAM client-first and
// client-final messages, PLAIN messages, tokens) checks its input before
// it uses it and has a fuzz target. Every authentication, successful or
// not, is logged as a structured event and kept in a bounded in-memory
// AuditLog.
//
// docs/security.md is the user's guide.
package security
