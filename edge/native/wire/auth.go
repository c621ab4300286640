package wire

// FlagAuthRequired is set in the flags of a HELLO_OK frame when the server
// requires authentication: the client must complete an AUTHENTICATE
// exchange before any request other than PING.
const FlagAuthRequired uint8 = 0x01

// Mechanism names are those of package security: SCRAM-SHA-256,
// SCRAM-SHA-512, PLAIN and TOKEN. MaxMechanismLen bounds one, and
// MaxAuthData the data of one AUTHENTICATE step.
const (
	MaxMechanismLen = 64
	MaxAuthData     = 8192
)

// Authenticate is the payload of AUTHENTICATE, one client step of an
// authentication exchange:
//
//	string mechanism  (the same in every step of one exchange)
//	bytes  data       (SCRAM: client-first, then client-final; PLAIN: the
//	                   PLAIN message; TOKEN: the token)
type Authenticate struct {
	Mechanism string
	Data      []byte
}

// AppendAuthenticate appends an AUTHENTICATE frame.
func AppendAuthenticate(dst []byte, corr uint32, m Authenticate) []byte {
	dst, start := BeginFrame(dst, TypeAuthenticate, 0, corr)
	dst = appendString(dst, m.Mechanism)
	dst = appendBytes(dst, m.Data)
	return EndFrame(dst, start)
}

// DecodeAuthenticate decodes an AUTHENTICATE payload; Data is copied.
func DecodeAuthenticate(p []byte) (Authenticate, error) {
	c := newCursor(TypeAuthenticate, p)
	var m Authenticate
	m.Mechanism = c.str("mechanism")
	m.Data = append([]byte(nil), c.bytes("data")...)
	if err := c.end(); err != nil {
		return Authenticate{}, err
	}
	if len(m.Mechanism) == 0 || len(m.Mechanism) > MaxMechanismLen {
		return Authenticate{}, malformed(TypeAuthenticate, "mechanism of %d bytes; give 1 to %d", len(m.Mechanism), MaxMechanismLen)
	}
	if len(m.Data) > MaxAuthData {
		return Authenticate{}, malformed(TypeAuthenticate, "data of %d bytes, more than %d", len(m.Data), MaxAuthData)
	}
	return m, nil
}

// AuthenticateResult is the payload of AUTHENTICATE_RESULT:
//
//	u8     done       0: the exchange goes on (send the next AUTHENTICATE);
//	                  1: authenticated
//	bytes  data       SCRAM: server-first, then server-final; else empty
//	string principal  the authenticated user when done, else empty
//
// A refused step is answered with ERROR AUTHENTICATION_FAILED instead, and
// the connection is closed.
type AuthenticateResult struct {
	Done      bool
	Data      []byte
	Principal string
}

// AppendAuthenticateResult appends an AUTHENTICATE_RESULT frame.
func AppendAuthenticateResult(dst []byte, corr uint32, m AuthenticateResult) []byte {
	dst, start := BeginFrame(dst, TypeAuthenticateResult, 0, corr)
	var done byte
	if m.Done {
		done = 1
	}
	dst = append(dst, done)
	dst = appendBytes(dst, m.Data)
	dst = appendString(dst, m.Principal)
	return EndFrame(dst, start)
}

// DecodeAuthenticateResult decodes an AUTHENTICATE_RESULT payload; Data is
// copied.
func DecodeAuthenticateResult(p []byte) (AuthenticateResult, error) {
	c := newCursor(TypeAuthenticateResult, p)
	var m AuthenticateResult
	done := c.u8("done")
	m.Data = append([]byte(nil), c.bytes("data")...)
	m.Principal = c.str("principal")
	if err := c.end(); err != nil {
		return AuthenticateResult{}, err
	}
	if done > 1 {
		return AuthenticateResult{}, malformed(TypeAuthenticateResult, "done is %d, want 0 or 1", done)
	}
	m.Done = done == 1
	return m, nil
}
