package kafka

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seeds returns valid frames (without the size) of every supported
// request at its lowest and highest version.
func seeds() [][]byte {
	var out [][]byte
	for _, v := range supported {
		for _, ver := range []int16{v.min, v.max} {
			req := kmsg.RequestForKey(v.key)
			switch r := req.(type) {
			case *kmsg.ProduceRequest:
				t := kmsg.NewProduceRequestTopic()
				t.Topic = "orders"
				p := kmsg.NewProduceRequestTopicPartition()
				p.Records = []byte("not a batch")
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
			case *kmsg.FetchRequest:
				t := kmsg.NewFetchRequestTopic()
				t.Topic = "orders"
				t.Partitions = append(t.Partitions, kmsg.NewFetchRequestTopicPartition())
				r.Topics = append(r.Topics, t)
			case *kmsg.MetadataRequest:
				t := kmsg.NewMetadataRequestTopic()
				name := "orders"
				t.Topic = &name
				r.Topics = append(r.Topics, t)
			}
			out = append(out, rawRequest(req, ver, 1)[4:])
		}
	}
	return out
}

// FuzzRequest feeds arbitrary frames to the request header and body
// decoders: they must never panic, and a decoded request must re-encode.
func FuzzRequest(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff, 0})
	f.Add([]byte{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := parseRequest(frame)
		if err != nil {
			if req != nil {
				t.Fatal("request with an error")
			}
			return
		}
		if h.unsupported {
			if h.key != 18 {
				t.Fatalf("unsupported version of key %d answered", h.key)
			}
			return
		}
		vr, ok := versions(h.key)
		if !ok || h.version < vr.min || h.version > vr.max {
			t.Fatalf("key %d version %d accepted", h.key, h.version)
		}
		req.AppendTo(nil)
	})
}

func TestSeedsDecode(t *testing.T) {
	for _, s := range seeds() {
		if _, _, err := parseRequest(s); err != nil {
			t.Errorf("seed key %d version %d: %v", binary.BigEndian.Uint16(s), binary.BigEndian.Uint16(s[2:]), err)
		}
	}
}

// A frame claiming 2^31-1 topics in a few bytes is refused without
// allocating for them.
func TestHugeArrayCount(t *testing.T) {
	frame := []byte{0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff}
	allocs := testing.AllocsPerRun(10, func() {
		if _, _, err := parseRequest(frame); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 20 {
		t.Errorf("%v allocations", allocs)
	}
	var before, after runtimeMem
	before.read()
	parseRequest(frame)
	after.read()
	if d := after.total - before.total; d > 1<<20 {
		t.Errorf("allocated %d bytes", d)
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

// rawRequest frames a request with a v1/v2 header.
func rawRequest(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}
