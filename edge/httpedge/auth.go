package httpedge

import (
	"net/http"
	"strings"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// authenticated requires credentials on every endpoint but the probes:
// "Authorization: Bearer <token>" (a token of `sense token create`, or
// the bootstrap token) or "Authorization: Basic" (a user and password,
// checked like SASL PLAIN). A request without, or with refused ones, is
// answered 401 with a WWW-Authenticate challenge and a JSON error; the
// principal of an accepted one is in its context for the authorizer.
func (h *handler) authenticated(next http.Handler) http.Handler {
	auth := h.opts.Auth
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		remote := r.RemoteAddr
		hdr := r.Header.Get("Authorization")
		var p security.Principal
		var err error
		mech := ""
		switch {
		case hdr == "" && auth.Enabled() && certificatePrincipal(auth, r, &p):
			mech = security.Certificate
		case hdr == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="sense"`)
			auth.Record("http", remote, "", "", errMissing)
			writeError(w, http.StatusUnauthorized, result.AuthenticationFailed,
				"this server requires authentication: send Authorization: Bearer <token> (sense token create) or Basic credentials")
			return
		case len(hdr) > 7 && strings.EqualFold(hdr[:7], "bearer "):
			mech = security.Token
			p, err = auth.Token(strings.TrimSpace(hdr[7:]))
		default:
			user, pw, ok := r.BasicAuth()
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sense", error="invalid_request"`)
				auth.Record("http", remote, "", "", errScheme)
				writeError(w, http.StatusUnauthorized, result.AuthenticationFailed,
					"the Authorization header is neither Bearer nor Basic; send Authorization: Bearer <token>")
				return
			}
			mech = security.Plain
			p, err = auth.Plain([]byte("\x00" + user + "\x00" + pw))
		}
		auth.Record("http", remote, mech, p.User, err)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sense", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, result.AuthenticationFailed, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(security.NewContext(r.Context(), p)))
	})
}

// certificatePrincipal sets *p to the user the request's verified TLS
// client certificate maps to (security.certificate_user), and reports
// whether there is one.
func certificatePrincipal(auth *security.Authenticator, r *http.Request, p *security.Principal) bool {
	id, verified := tlsconf.IdentityOf(r.TLS)
	cp, ok, err := auth.Certificate(id, verified)
	if err != nil {
		auth.Record("http", r.RemoteAddr, security.Certificate, "", err)
		return false
	}
	if ok {
		*p = cp
	}
	return ok
}

type authErr string

func (e authErr) Error() string { return string(e) }

const (
	errMissing authErr = "no Authorization header"
	errScheme  authErr = "Authorization header neither Bearer nor Basic"
)

// readLimit is the request's principal's read limit on a pipeline (none
// with security off).
func (h *handler) readLimit(req *http.Request, pipeline string) security.ReadLimit {
	if !h.opts.Auth.Enabled() {
		return security.ReadLimit{}
	}
	return security.ReadLimitOf(h.opts.Authorizer, security.FromContext(req.Context()), pipeline)
}

// authorize asks the authorizer whether the request's principal may do a
// on r; a denial is answered 403 and false. With security off nothing is
// asked.
func (h *handler) authorize(w http.ResponseWriter, req *http.Request, a security.Action, r security.Resource) bool {
	if !h.opts.Auth.Enabled() {
		return true
	}
	if err := h.opts.Authorizer.Authorize(security.FromContext(req.Context()), a, r); err != nil {
		writeError(w, http.StatusForbidden, result.Unauthorized, err.Error())
		return false
	}
	return true
}
