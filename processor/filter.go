package processor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
)

// filter decides which events of a batch reach the sink: from.jurisdiction
// and where's predicates, all of which must hold.
type filter struct {
	mask      jurisdiction.Mask // 0: any
	key       *string
	keyPrefix string
	headers   []kv
	fields    []field
}

type kv struct{ k, v string }

type field struct {
	path []string
	want string
}

func newFilter(w config.ProcessorWhere, mask jurisdiction.Mask) *filter {
	f := &filter{mask: mask, keyPrefix: w.KeyPrefix}
	if w.Key != "" {
		k := w.Key
		f.key = &k
	}
	for k, v := range w.Header {
		f.headers = append(f.headers, kv{k, v})
	}
	for k, v := range w.JSON {
		f.fields = append(f.fields, field{path: strings.Split(k, "."), want: v})
	}
	return f
}

// pass reports whether r passes every predicate. An event whose mask is
// unrecorded passes a jurisdiction filter only when it has none.
func (f *filter) pass(r *client.Record) bool {
	if f.mask != 0 && r.Mask&f.mask == 0 {
		return false
	}
	if f.key != nil && string(r.Key) != *f.key {
		return false
	}
	if f.keyPrefix != "" && !bytes.HasPrefix(r.Key, []byte(f.keyPrefix)) {
		return false
	}
	for _, h := range f.headers {
		found := false
		for _, rh := range r.Headers {
			if rh.Key == h.k && string(rh.Value) == h.v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(f.fields) > 0 {
		var doc map[string]any
		if json.Unmarshal(r.Value, &doc) != nil {
			return false
		}
		for _, fd := range f.fields {
			if !fd.match(doc) {
				return false
			}
		}
	}
	return true
}

func (fd *field) match(doc map[string]any) bool {
	var v any = doc
	for _, p := range fd.path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[p]; !ok {
			return false
		}
	}
	switch x := v.(type) {
	case string:
		return x == fd.want
	case float64:
		w, err := strconv.ParseFloat(fd.want, 64)
		return err == nil && w == x
	case bool:
		return strconv.FormatBool(x) == fd.want
	case nil:
		return fd.want == "null"
	}
	return false
}
