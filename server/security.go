package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/vfs"
)

// userStore is where a node keeps its users and token key: the cluster
// metadata, or a node alone's file (security.FileStore).
type userStore interface {
	security.Directory
	Users() []security.User
	PutUser(security.User) error
	DeleteUser(name string) error
	EnsureTokenKey() ([]byte, error)
}

// securityRuntime is a node's authentication and authorization.
type securityRuntime struct {
	auth *security.Authenticator
	// authz is az with security on, and security.DefaultAuthorizer (not
	// asked) with it off; the ACLs are kept either way.
	authz security.Authorizer
	az    *security.ACLAuthorizer
	users userStore
	acls  aclStore
	reg   *jurisdiction.Registry
	aclMu sync.Mutex
}

// openSecurity sets up authentication for a node: its users in the
// cluster metadata (cl not nil) or in a file of its data directory.
func openSecurity(cfg *config.Config, cl *clusterRuntime, log *slog.Logger) (*securityRuntime, error) {
	var users userStore
	var acls aclStore
	if cl != nil {
		users, acls = metaUsers{cl}, metaACLs{cl}
	} else {
		fs, err := security.OpenFileStore(vfs.Default, filepath.Join(cfg.Node.DataDir, security.FileName))
		if err != nil {
			return nil, err
		}
		users, acls = fs, fileACLs{fs}
	}
	sc := cfg.Security
	var boot string
	if sc.BootstrapTokenFile != "" {
		tok, created, err := security.LoadBootstrap(sc.BootstrapTokenFile)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("wrote a new bootstrap token; it acts as a superuser: keep the file secret, and give the CLI --token-file or SENSE_TOKEN_FILE to create the first users", "file", sc.BootstrapTokenFile)
		}
		boot = tok
	} else if sc.Enabled {
		log.Warn("security is enabled without security.bootstrap_token_file: only users created before can authenticate")
	}
	if err := vfs.Default.MkdirAll(cfg.Node.DataDir); err != nil {
		return nil, fmt.Errorf("create the data directory %s: %w", cfg.Node.DataDir, err)
	}
	audit, err := security.OpenAuditFile(vfs.Default, filepath.Join(cfg.Node.DataDir, security.AuditFileName), security.DefaultAuditSize, log)
	if err != nil {
		return nil, err
	}
	auth := security.NewAuthenticator(security.Options{Enabled: sc.Enabled, Directory: users, Bootstrap: boot,
		Superusers: sc.Superusers, CertificateUser: certificateUser(sc.CertificateUser), Audit: audit, Logger: log})
	if sc.Enabled {
		log.Info("authentication required on every edge", "mechanisms", auth.Mechanisms(), "auth_timeout", sc.Timeout().String())
	}
	reg := cfg.Registry()
	sr := &securityRuntime{auth: auth, authz: security.DefaultAuthorizer{}, users: users, acls: acls, reg: reg,
		az: security.NewACLAuthorizer(reg.Parse, log)}
	if sc.Enabled {
		sr.authz = sr.az
	}
	if cl != nil {
		refresh := sr.refreshACLs
		cl.aclsChanged.Store(&refresh)
	}
	sr.refreshACLs()
	if sc.Enabled {
		log.Info("authorization by ACLs: everything not granted is denied", "acls", sr.az.Len(), "superusers", sc.Superusers)
	}
	return sr, nil
}

func certificateUser(s string) string {
	if s == "none" {
		return ""
	}
	return s
}

// close writes out the security audit log.
func (r *securityRuntime) close() {
	if r != nil {
		r.auth.Audit().Close()
	}
}

// metaUsers keeps users and the token key in the cluster metadata.
type metaUsers struct{ c *clusterRuntime }

func (m metaUsers) store() *meta.Store { return m.c.metaStore.Load() }

func (m metaUsers) User(name string) (security.User, bool) {
	if st := m.store(); st != nil {
		return st.User(name)
	}
	return security.User{}, false
}

func (m metaUsers) TokenKey() []byte {
	if st := m.store(); st != nil {
		return st.TokenKey()
	}
	return nil
}

func (m metaUsers) Users() []security.User {
	if st := m.store(); st != nil {
		return st.Users()
	}
	return nil
}

func (m metaUsers) propose(c meta.Command) error {
	rt := m.c.meta
	if rt == nil {
		return result.New(result.NotReady, "this node is starting: it has not opened the cluster metadata yet; retry")
	}
	_, err := rt.propose(c)
	return err
}

func (m metaUsers) PutUser(u security.User) error {
	return m.propose(meta.Command{Op: meta.OpUserPut, User: &u})
}

func (m metaUsers) DeleteUser(name string) error {
	if _, ok := m.User(name); !ok {
		return fmt.Errorf("%w %q", security.ErrUnknownUser, name)
	}
	return m.propose(meta.Command{Op: meta.OpUserDelete, Name: name})
}

func (m metaUsers) EnsureTokenKey() ([]byte, error) {
	if k := m.TokenKey(); k != nil {
		return k, nil
	}
	err := m.propose(meta.Command{Op: meta.OpTokenKey, TokenKey: security.NewTokenKey()})
	if k := m.TokenKey(); k != nil {
		return k, nil // ours, or another node's that came first
	}
	if err == nil {
		err = errors.New("the cluster metadata has no token key after proposing one")
	}
	return nil, err
}

// maxTokenTTL bounds a token's lifetime.
const maxTokenTTL = 366 * 24 * time.Hour

// adminAccess says what an admin request does, for the authorizer.
func adminAccess(req admin.Request) (security.Action, security.Resource) {
	switch r := req.(type) {
	case admin.CreatePipeline:
		return security.Create, security.PipelineResource(r.Pipeline)
	case admin.AlterPipeline:
		return security.AlterConfigs, security.PipelineResource(r.Pipeline)
	case admin.DescribePipeline:
		return security.Describe, security.PipelineResource(r.Pipeline)
	case admin.ExplainRoute:
		return security.Describe, security.PipelineResource(r.Pipeline)
	case admin.Audit:
		if r.Pipeline != "" {
			return security.Describe, security.PipelineResource(r.Pipeline)
		}
		return security.Describe, security.ClusterResource
	case admin.SetHubStatus, admin.SetHubPolicy, admin.CreateUser, admin.DeleteUser, admin.CreateToken, admin.CreateACLs, admin.DeleteACLs,
		// A processor sends events out of Sense: changing one is the
		// cluster's to allow.
		admin.PauseProcessor, admin.ResumeProcessor, admin.ResetProcessor, admin.CreateProcessor, admin.DeleteProcessor:
		return security.Alter, security.ClusterResource
	}
	return security.Describe, security.ClusterResource
}

// AdminContext runs a request on behalf of the principal ctx carries,
// once the authorizer allows it (admin.ContextHandler). A refusal is
// UNAUTHORIZED.
//
// The jurisdiction registry is anyone's (clients need it to read masks),
// and pipeline.list lists the pipelines the principal may describe.
func (a Admin) AdminContext(ctx context.Context, req admin.Request) (admin.Response, error) {
	switch req.(type) {
	case admin.GetRegistry:
		return a.Admin(req)
	case admin.ListPipelines:
		resp, err := a.Admin(req)
		if err != nil || a.sec == nil {
			return resp, err
		}
		p := security.FromContext(ctx)
		resp.Pipelines = slices.DeleteFunc(resp.Pipelines, func(pi admin.PipelineInfo) bool {
			return a.sec.authz.Authorize(p, security.Describe, security.PipelineResource(pi.Name)) != nil
		})
		return resp, nil
	}
	if a.sec != nil {
		act, res := adminAccess(req)
		if err := a.sec.authz.Authorize(security.FromContext(ctx), act, res); err != nil {
			return admin.Response{}, unauthorized(err)
		}
	}
	switch req.(type) {
	case admin.CreateACLs, admin.ListACLs, admin.DeleteACLs:
		return a.aclAdmin(ctx, req)
	}
	return a.Admin(req)
}

// unauthorized gives an authorizer's refusal its result code.
func unauthorized(err error) error {
	var d *security.DeniedError
	if errors.As(err, &d) {
		return d.AsResult()
	}
	return result.New(result.Unauthorized, err.Error())
}

// securityAdmin runs the admin requests of users, tokens and the
// security audit log.
func (a Admin) securityAdmin(req admin.Request) (admin.Response, error) {
	var resp admin.Response
	if a.sec == nil {
		return resp, result.New(result.InvalidRequest, "this node keeps no users")
	}
	users := a.sec.users
	switch r := req.(type) {
	case admin.CreateUser:
		u := security.User{Name: r.User}
		if len(r.Credentials) > 0 {
			if r.Password != "" {
				return resp, result.New(result.InvalidRequest, "give a password or credentials, not both")
			}
			for _, c := range r.Credentials {
				u.Credentials = append(u.Credentials, security.Credential(c))
			}
		} else {
			if r.Password == "" {
				return resp, result.New(result.InvalidRequest, fmt.Sprintf("user %q needs a password (--password P)", r.User))
			}
			var err error
			if u, err = security.UserWithPassword(r.User, r.Password, r.Iterations, r.Mechanism); err != nil {
				return resp, result.New(result.InvalidRequest, err.Error())
			}
		}
		if err := u.Validate(); err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		if err := users.PutUser(u); err != nil {
			return resp, securityError(err)
		}
		resp.Users = []admin.UserInfo{userInfo(u)}
		return resp, nil
	case admin.DeleteUser:
		if err := users.DeleteUser(r.User); err != nil {
			return resp, securityError(err)
		}
		return a.securityAdmin(admin.ListUsers{})
	case admin.ListUsers:
		resp.Users = []admin.UserInfo{}
		for _, u := range users.Users() {
			resp.Users = append(resp.Users, userInfo(u))
		}
		return resp, nil
	case admin.CreateToken:
		ttl, err := time.ParseDuration(r.TTL)
		if err != nil || ttl <= 0 || ttl > maxTokenTTL {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("token lifetime %q is not a duration from 1s to %s such as 24h (--ttl)", r.TTL, maxTokenTTL))
		}
		if _, ok := users.User(r.User); !ok {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("unknown user %q; create it first with `sense user create %s --password P`", r.User, r.User))
		}
		key, err := users.EnsureTokenKey()
		if err != nil {
			return resp, securityError(err)
		}
		tok, c, err := security.SignToken(key, r.User, time.Now(), ttl)
		if err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		resp.Token = &admin.TokenInfo{Token: tok, User: c.User, ID: c.ID, Expires: c.Expires.UTC().Format(time.RFC3339)}
		return resp, nil
	case admin.SecurityAudit:
		evs, total := a.sec.auth.Audit().Events()
		resp.SecurityEvents = []admin.SecurityEvent{}
		for _, e := range evs {
			resp.SecurityEvents = append(resp.SecurityEvents, admin.SecurityEvent{Time: e.Time.Format(time.RFC3339Nano), Edge: e.Edge,
				Remote: e.Remote, Mechanism: e.Mechanism, Principal: e.User, Success: e.Success, Reason: e.Reason, Op: e.Op, Detail: e.Detail})
		}
		resp.SecurityEventsTotal = total
		return resp, nil
	}
	return resp, result.New(result.InvalidRequest, fmt.Sprintf("admin request %T is not known to this node", req))
}

func userInfo(u security.User) admin.UserInfo {
	ui := admin.UserInfo{Name: u.Name, Mechanisms: u.Mechanisms(), Iterations: map[string]int{}}
	for _, c := range u.Credentials {
		ui.Iterations[c.Mechanism] = c.Iterations
		ui.Credentials = append(ui.Credentials, admin.ScramCredential(c))
	}
	return ui
}

// securityError gives an error of the user store its result code.
func securityError(err error) error {
	switch {
	case errors.Is(err, security.ErrUnknownUser):
		return result.New(result.InvalidRequest, err.Error()+"; `sense user list` names the users")
	case errors.Is(err, meta.ErrInvalid), errors.Is(err, security.ErrInvalidACL):
		return result.New(result.InvalidRequest, err.Error())
	case result.CodeOf(err) != result.Unknown:
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return result.New(result.Timeout, err.Error())
	}
	return result.New(result.StorageError, err.Error())
}
