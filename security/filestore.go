package security

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/sensehq/sense/vfs"
)

// FileName is the file a node alone keeps its users and token key in,
// under its data directory.
const FileName = "security.json"

// FileStore keeps the users, the token key and the ACLs of a node alone (dev mode:
// no cluster section) in one JSON file, rewritten whole and atomically
// (temporary file, fdatasync, rename, directory sync) at every change, with
// mode 0600. It is a Directory.
//
// The file:
//
//	{"version": 1, "body": {"users": [User...], "token_key": "<base64>", "acls": [ACL...]}, "crc": <CRC-32C of the body>}
type FileStore struct {
	fs   vfs.FS
	path string

	mu    sync.RWMutex
	users map[string]User
	key   []byte
	acls  []ACL // sorted (Compare), never changed in place
}

type fileBody struct {
	Users    []User `json:"users"`
	TokenKey []byte `json:"token_key,omitempty"`
	ACLs     []ACL  `json:"acls,omitempty"`
}

type fileImage struct {
	Version int             `json:"version"`
	Body    json.RawMessage `json:"body"`
	CRC     uint32          `json:"crc"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// OpenFileStore reads the store at path (an absent file is an empty
// store). A file that does not decode, fails its checksum or holds an
// invalid user is an error naming the file: Sense does not start on a
// user table it cannot trust.
func OpenFileStore(fs vfs.FS, path string) (*FileStore, error) {
	s := &FileStore{fs: fs, path: path, users: map[string]User{}}
	raw, err := vfs.ReadFile(fs, path)
	if vfs.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("security: read %s: %w", path, err)
	}
	var img fileImage
	if err := json.Unmarshal(raw, &img); err != nil {
		return nil, fmt.Errorf("security: %s is not a Sense security file: %w (restore it from a backup, or move it away to start with no users)", path, err)
	}
	if img.Version != 1 {
		return nil, fmt.Errorf("security: %s has version %d; this Sense reads version 1", path, img.Version)
	}
	if crc32.Checksum(img.Body, crcTable) != img.CRC {
		return nil, fmt.Errorf("security: %s fails its checksum: it is damaged (restore it from a backup, or move it away to start with no users)", path)
	}
	var body fileBody
	if err := json.Unmarshal(img.Body, &body); err != nil {
		return nil, fmt.Errorf("security: %s: %w", path, err)
	}
	for _, u := range body.Users {
		if err := u.Validate(); err != nil {
			return nil, fmt.Errorf("security: %s: %w", path, err)
		}
		s.users[u.Name] = u
	}
	s.key = body.TokenKey
	for i := range body.ACLs {
		a := body.ACLs[i]
		a.Normalize()
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("security: %s: ACL %d: %w", path, i, err)
		}
		s.acls = append(s.acls, a)
	}
	slices.SortFunc(s.acls, Compare)
	return s, nil
}

// User implements Directory.
func (s *FileStore) User(name string) (User, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	return u, ok
}

// TokenKey implements Directory.
func (s *FileStore) TokenKey() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.key
}

// Users returns every user, sorted by name.
func (s *FileStore) Users() []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ErrUnknownUser is returned when deleting a user that does not exist.
var ErrUnknownUser = errors.New("security: unknown user")

// PutUser creates or replaces a user, durably.
func (s *FileStore) PutUser(u User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	users := make(map[string]User, len(s.users)+1)
	for k, v := range s.users {
		users[k] = v
	}
	users[u.Name] = u
	if err := s.save(users, s.key, s.acls); err != nil {
		return err
	}
	s.users = users
	return nil
}

// DeleteUser removes a user, durably.
func (s *FileStore) DeleteUser(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	users := make(map[string]User, len(s.users))
	for k, v := range s.users {
		if k != name {
			users[k] = v
		}
	}
	if err := s.save(users, s.key, s.acls); err != nil {
		return err
	}
	s.users = users
	return nil
}

// EnsureTokenKey returns the token key, making and saving one first if
// there is none.
func (s *FileStore) EnsureTokenKey() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	key := NewTokenKey()
	if err := s.save(s.users, key, s.acls); err != nil {
		return nil, err
	}
	s.key = key
	return key, nil
}

func (s *FileStore) save(users map[string]User, key []byte, acls []ACL) error {
	body := fileBody{TokenKey: key, Users: make([]User, 0, len(users)), ACLs: acls}
	for _, u := range users {
		body.Users = append(body.Users, u)
	}
	slices.SortFunc(body.Users, func(a, b User) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	img, err := json.Marshal(fileImage{Version: 1, Body: b, CRC: crc32.Checksum(b, crcTable)})
	if err != nil {
		return err
	}
	if err := writePrivate(s.fs, s.path, img); err != nil {
		return fmt.Errorf("security: write %s: %w", s.path, err)
	}
	return nil
}

// ACLs returns the ACLs, sorted.
func (s *FileStore) ACLs() []ACL {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.acls
}

// CreateACLs adds ACLs (normalized and valid), durably; those present
// already are not added twice. It returns the ACLs after the change.
func (s *FileStore) CreateACLs(add []ACL) ([]ACL, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acls, changed := AddACLs(s.acls, add)
	if !changed {
		return s.acls, nil
	}
	if err := s.save(s.users, s.key, acls); err != nil {
		return s.acls, err
	}
	s.acls = acls
	return acls, nil
}

// DeleteACLs removes the ACLs every one of which is in del, durably. It
// returns the ACLs after the change.
func (s *FileStore) DeleteACLs(del []ACL) ([]ACL, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acls, changed := RemoveACLs(s.acls, del)
	if !changed {
		return s.acls, nil
	}
	if err := s.save(s.users, s.key, acls); err != nil {
		return s.acls, err
	}
	s.acls = acls
	return acls, nil
}

// AddACLs returns a new sorted slice of acls and add, without duplicates,
// and whether it differs from acls; acls is not changed.
func AddACLs(acls, add []ACL) ([]ACL, bool) {
	out := slices.Clone(acls)
	changed := false
	for _, a := range add {
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, cloneACL(a))
			changed = true
		}
	}
	slices.SortFunc(out, Compare)
	return out, changed
}

// RemoveACLs returns a new slice of acls without those in del, and
// whether it differs from acls; acls is not changed.
func RemoveACLs(acls, del []ACL) ([]ACL, bool) {
	out := make([]ACL, 0, len(acls))
	for _, a := range acls {
		if !slices.ContainsFunc(del, a.Equal) {
			out = append(out, a)
		}
	}
	return out, len(out) != len(acls)
}

func cloneACL(a ACL) ACL {
	a.Jurisdictions = slices.Clone(a.Jurisdictions)
	return a
}

// writePrivate is vfs.WriteFileAtomic with the file's mode 0600 where it
// is an OS file: it holds the token key.
func writePrivate(fs vfs.FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if of, ok := f.(interface{ OSFile() *os.File }); ok {
		if err := of.OSFile().Chmod(0o600); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}
