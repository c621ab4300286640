package kafka_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/sensehq/sense/edge/kafka"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seeds returns valid frames (without the size) of every supported
// request at its lowest and highest version.
func seeds() [][]byte {
	var out [][]byte
	for _, key := range kafka.SupportedKeys() {
		lo, hi, _ := kafka.VersionRange(key)
		for _, ver := range []int16{lo, hi} {
			req := kmsg.RequestForKey(key)
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
			case *kmsg.IncrementalAlterConfigsRequest:
				res := kmsg.NewIncrementalAlterConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
				for op, name := range []string{"retention.ms", "sense.default.priority"} {
					c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
					c.Name, c.Op, c.Value = name, kmsg.IncrementalAlterConfigOp(op), kmsg.StringPtr("60000")
					res.Configs = append(res.Configs, c)
				}
				r.Resources = append(r.Resources, res)
				r.ValidateOnly = true
			case *kmsg.CreateACLsRequest:
				c := kmsg.NewCreateACLsRequestCreation()
				c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypePrefixed
				c.Principal, c.Host, c.Operation, c.PermissionType = "User:alice", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
				r.Creations = append(r.Creations, c)
			case *kmsg.DeleteACLsRequest:
				f := kmsg.NewDeleteACLsRequestFilter()
				f.ResourceType, f.ResourceName, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.StringPtr("orders"), kmsg.ACLResourcePatternTypeMatch
				f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
				r.Filters = append(r.Filters, f)
			case *kmsg.DescribeACLsRequest:
				r.ResourceType, r.ResourceName, r.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("orders"), kmsg.ACLResourcePatternTypeMatch
				r.Principal, r.Operation, r.PermissionType = kmsg.StringPtr("User:alice"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			case *kmsg.DescribeUserSCRAMCredentialsRequest:
				u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
				u.Name = "alice"
				r.Users = append(r.Users, u)
			case *kmsg.AlterUserSCRAMCredentialsRequest:
				up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
				up.Name, up.Mechanism, up.Iterations = "alice", 2, 8192
				up.Salt, up.SaltedPassword = []byte("salt"), bytes.Repeat([]byte{7}, 64)
				r.Upsertions = append(r.Upsertions, up)
				d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
				d.Name, d.Mechanism = "bob", 1
				r.Deletions = append(r.Deletions, d)
			case *kmsg.DescribeTransactionsRequest:
				r.TransactionalIDs = []string{"tx-1", "", "tx-2"}
			case *kmsg.ListTransactionsRequest:
				r.StateFilters = []string{"Ongoing", "Nope"}
				r.ProducerIDFilters = []int64{7, -1}
				r.DurationFilterMillis = 60000
				r.TransactionalIDPattern = kmsg.StringPtr("tx-.*")
			case *kmsg.DeleteRecordsRequest:
				t := kmsg.NewDeleteRecordsRequestTopic()
				t.Topic = "orders"
				for _, off := range []int64{-1, 40} {
					tp := kmsg.NewDeleteRecordsRequestTopicPartition()
					tp.Offset = off
					t.Partitions = append(t.Partitions, tp)
				}
				r.Topics, r.TimeoutMillis = append(r.Topics, t), 1000
			case *kmsg.OffsetDeleteRequest:
				t := kmsg.NewOffsetDeleteRequestTopic()
				t.Topic = "orders"
				for _, p := range []int32{0, 3} {
					tp := kmsg.NewOffsetDeleteRequestTopicPartition()
					tp.Partition = p
					t.Partitions = append(t.Partitions, tp)
				}
				r.Group, r.Topics = "g", append(r.Topics, t)
			case *kmsg.OffsetFetchRequest:
				t := kmsg.NewOffsetFetchRequestTopic()
				t.Topic, t.Partitions = "orders", []int32{0, 3}
				r.Topics = append(r.Topics, t)
				r.Group, r.RequireStable = "g", true
			case *kmsg.TxnOffsetCommitRequest:
				r.TransactionalID, r.Group, r.ProducerID, r.ProducerEpoch = "tx-1", "g", 7, 1
				r.Generation, r.MemberID, r.InstanceID = 3, "m-1", kmsg.StringPtr("i-1")
				t := kmsg.NewTxnOffsetCommitRequestTopic()
				t.Topic = "orders"
				p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				p.Offset, p.Metadata = 42, kmsg.StringPtr("md")
				t.Partitions = append(t.Partitions, p)
				r.Topics = append(r.Topics, t)
			case *kmsg.AlterConfigsRequest:
				res := kmsg.NewAlterConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
				c := kmsg.NewAlterConfigsRequestResourceConfig()
				c.Name = "retention.bytes" // a null value
				res.Configs = append(res.Configs, c)
				r.Resources = append(r.Resources, res)
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
	// DescribeCluster v1 (our own decoder): a tagged-field count past the
	// bytes left, and an unknown tag.
	f.Add([]byte{0, 60, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0, 60, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 1, 1, 7, 2, 0xaa, 0xbb})
	// DescribeCluster v0 whose tagged-field count is 0 in 6 bytes: Kafka's
	// varints are at most 5.
	f.Add([]byte{0, 60, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0})
	// IncrementalAlterConfigs v0 claiming 2^31-1 resources, and v1
	// (flexible, not served) with a tagged-field count past the end.
	f.Add([]byte{0, 44, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 44, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	// AlterConfigs v1: one resource whose config name claims 32767 bytes.
	f.Add([]byte{0, 33, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1, 2, 0, 1, 'x', 0, 0, 0, 1, 0x7f, 0xff})
	// DescribeTransactions v0 claiming 2^28 ids, and a null id list;
	// ListTransactions v2 whose pattern claims 2^31 bytes.
	f.Add([]byte{0, 65, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0, 65, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0})
	f.Add([]byte{0, 66, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x08, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, err := kafka.ParseRequest(frame)
		if err != nil {
			if h.Req != nil {
				t.Fatal("request with an error")
			}
			return
		}
		if h.Unsupported {
			// Answered with UNSUPPORTED_VERSION without decoding the
			// body (ApiVersions keeps its request for the answer).
			if lo, hi, ok := kafka.VersionRange(h.Key); ok && h.Version >= lo && h.Version <= hi {
				t.Fatalf("key %d version %d is served but was called unsupported", h.Key, h.Version)
			}
			if h.Req != nil && h.Key != 18 {
				t.Fatalf("unsupported key %d version %d was decoded", h.Key, h.Version)
			}
			return
		}
		lo, hi, ok := kafka.VersionRange(h.Key)
		if !ok || h.Version < lo || h.Version > hi {
			t.Fatalf("key %d version %d accepted", h.Key, h.Version)
		}
		enc := h.Req.AppendTo(nil)
		if kafka.HasOwnDecoder(h.Key) {
			// Our decoders must agree with kmsg's encoder: what they
			// decoded, encoded again, decodes to the same request.
			again, err := kafka.ParseRequest(rawRequest(h.Req, h.Version, 1)[4:])
			if err != nil {
				t.Fatalf("key %d version %d re-encoded does not decode: %v", h.Key, h.Version, err)
			}
			if enc2 := again.Req.AppendTo(nil); !bytes.Equal(enc, enc2) {
				t.Fatalf("key %d version %d: %x re-decoded encodes as %x", h.Key, h.Version, enc, enc2)
			}
		}
	})
}

func TestSeedsDecode(t *testing.T) {
	for _, s := range seeds() {
		if _, err := kafka.ParseRequest(s); err != nil {
			t.Errorf("seed key %d version %d: %v", binary.BigEndian.Uint16(s), binary.BigEndian.Uint16(s[2:]), err)
		}
	}
}

// A frame claiming 2^31-1 topics in a few bytes is refused without
// allocating for them.
func TestHugeArrayCount(t *testing.T) {
	frame := []byte{0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff}
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := kafka.ParseRequest(frame); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 20 {
		t.Errorf("%v allocations", allocs)
	}
	var before, after runtimeMem
	before.read()
	kafka.ParseRequest(frame)
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

// No served version of an API decoded by kmsg is flexible: kmsg v1.15.0's
// tagged-field loop trusts the client's count (see header.go), so a
// flexible version must have a decoder of our own.
func TestNoFlexibleVersionReachesKmsg(t *testing.T) {
	for _, key := range kafka.SupportedKeys() {
		lo, hi, _ := kafka.VersionRange(key)
		for v := lo; v <= hi; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if req.IsFlexible() && !kafka.HasOwnDecoder(key) {
				t.Errorf("API key %d version %d is flexible and would be decoded by kmsg", key, v)
			}
		}
	}
}

// A varint of more than 5 bytes, or above 2^32-1, is refused, as Kafka's
// and kmsg's readers refuse it (Go's binary.Uvarint reads up to 10).
func TestLongVarintRefused(t *testing.T) {
	for _, tags := range [][]byte{
		{0x80, 0x80, 0x80, 0x80, 0x80, 0}, // 0 in 6 bytes
		{0xff, 0xff, 0xff, 0xff, 0x1f},    // 2^33-1
		{0x80, 0x80, 0x80, 0x80, 0x10},    // 2^32
	} {
		frame := append([]byte{0, 60, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0}, tags...)
		if _, err := kafka.ParseRequest(frame); err == nil {
			t.Errorf("tagged-field count %x accepted", tags)
		}
	}
}

// fuzzOwnDecoder checks one of our decoders on arbitrary bodies: it never
// panics; what it decodes, kmsg decodes alike (kmsg's reader is safe on a
// body whose tagged-field counts ours has checked), and kmsg's encoding of
// it decodes to the same request.
func fuzzOwnDecoder(t *testing.T, key, version int16, body []byte) {
	req, err := kafka.DecodeOwn(key, version, body)
	if err != nil {
		return
	}
	enc := req.AppendTo(nil)
	ref := kmsg.RequestForKey(key)
	ref.SetVersion(version)
	if err := ref.ReadFrom(body); err != nil {
		t.Fatalf("key %d version %d: ours decoded %x, kmsg: %v", key, version, body, err)
	}
	clearTags(reflect.ValueOf(ref).Elem())
	if refEnc := ref.AppendTo(nil); !bytes.Equal(enc, refEnc) {
		t.Fatalf("key %d version %d: %x decodes as %x, kmsg's as %x", key, version, body, enc, refEnc)
	}
	again, err := kafka.DecodeOwn(key, version, enc)
	if err != nil {
		t.Fatalf("key %d version %d: re-encoded %x does not decode: %v", key, version, enc, err)
	}
	if enc2 := again.AppendTo(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("key %d version %d: %x re-decoded encodes as %x", key, version, enc, enc2)
	}
}

// FuzzDescribeTransactions fuzzes the DescribeTransactions body decoder.
func FuzzDescribeTransactions(f *testing.F) {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"tx-1", "", "tx-2"}
	f.Add(req.AppendTo(nil))
	f.Add([]byte{1, 0})                               // no ids
	f.Add([]byte{0, 0})                               // a null list
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x01, 0})    // 2^28 ids in 6 bytes
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}) // an id claiming 2^32 bytes
	f.Add([]byte{2, 0, 0})                            // a null id
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})    // 2^32 tagged fields
	f.Add([]byte{1, 1, 3, 0xff, 0xff, 0x03})          // a tag claiming 64 KiB
	f.Add([]byte{1, 0, 0})                            // a byte after the body
	f.Fuzz(func(t *testing.T, body []byte) { fuzzOwnDecoder(t, 65, 0, body) })
}

// FuzzListTransactions fuzzes the ListTransactions body decoder, at every
// version served.
func FuzzListTransactions(f *testing.F) {
	for v := int16(0); v <= 2; v++ {
		req := kmsg.NewPtrListTransactionsRequest()
		req.SetVersion(v)
		req.StateFilters = []string{"Ongoing", "Nope"}
		req.ProducerIDFilters = []int64{7, -1}
		req.DurationFilterMillis = 60000
		req.TransactionalIDPattern = kmsg.StringPtr("tx-.*")
		f.Add(uint8(v), req.AppendTo(nil))
	}
	f.Add(uint8(0), []byte{1, 1, 0})
	f.Add(uint8(0), []byte{0, 1, 0})                                                    // null states
	f.Add(uint8(0), []byte{1, 0x80, 0x80, 0x80, 0x80, 0x01, 0})                         // 2^28 producer ids
	f.Add(uint8(0), []byte{1, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0})                            // two ids, one sent
	f.Add(uint8(1), []byte{1, 1, 0, 0, 0})                                              // a truncated duration
	f.Add(uint8(2), []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}) // a null pattern
	f.Add(uint8(2), []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 66, int16(v%3), body) })
}

// clearTags zeroes every UnknownTags field of v, a struct, and of the
// structs it holds: our decoders skip unknown tagged fields, kmsg keeps
// them.
func clearTags(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if f.Type() == reflect.TypeFor[kmsg.Tags]() {
				f.Set(reflect.Zero(f.Type()))
				continue
			}
			clearTags(f)
		}
	case reflect.Slice:
		for i := range v.Len() {
			clearTags(v.Index(i))
		}
	}
}

// FuzzTxnOffsetCommit fuzzes the TxnOffsetCommit body decoder at every
// version served (3 to 5 ours, 0 to 2 kmsg's).
func FuzzTxnOffsetCommit(f *testing.F) {
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(v)
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx-1", "g", 7, 1
		req.Generation, req.MemberID, req.InstanceID = 3, "m-1", kmsg.StringPtr("i-1")
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic = "orders"
		for i := range int32(2) {
			p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			p.Partition, p.Offset, p.LeaderEpoch = i, 42, 5
			if i == 0 {
				p.Metadata = kmsg.StringPtr("md")
			}
			t.Partitions = append(t.Partitions, p)
		}
		req.Topics = append(req.Topics, t)
		f.Add(uint8(v), req.AppendTo(nil))
	}
	// Version 3: ids "t" and "g", producer 0 epoch 0, generation -1, no
	// member, a null instance id, then the topics.
	head := []byte{2, 't', 2, 'g', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0}
	f.Add(uint8(3), append(slices.Clone(head), 1, 0))                                    // no topics
	f.Add(uint8(3), append(slices.Clone(head), 0, 0))                                    // null topics
	f.Add(uint8(3), append(slices.Clone(head), 0x80, 0x80, 0x80, 0x80, 0x01, 0))         // 2^28 topics
	f.Add(uint8(3), append(slices.Clone(head), 2, 2, 'o', 0x80, 0x80, 0x80, 0x01, 0, 0)) // 2^21 partitions
	f.Add(uint8(3), append(slices.Clone(head), 2, 2, 'o', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0))
	f.Add(uint8(3), append(slices.Clone(head), 1, 0xff, 0xff, 0xff, 0xff, 0x0f)) // 2^32 tagged fields
	f.Add(uint8(3), append(slices.Clone(head), 1, 1, 3, 0xff, 0xff, 0x03))       // a tag claiming 64 KiB
	f.Add(uint8(3), append(slices.Clone(head), 1, 0, 0))                         // a byte after the body
	f.Add(uint8(3), head[:9])                                                    // truncated
	f.Add(uint8(5), append(slices.Clone(head), 1, 0))                            // version 5, no topics
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 28, int16(v%6), body) })
}

// FuzzOffsetFetch fuzzes the OffsetFetch body decoder at every version
// served (6 and 7 ours, 0 to 5 kmsg's).
func FuzzOffsetFetch(f *testing.F) {
	for v := int16(0); v <= 7; v++ {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.SetVersion(v)
		req.Group, req.RequireStable = "g", true
		t := kmsg.NewOffsetFetchRequestTopic()
		t.Topic, t.Partitions = "orders", []int32{0, 3}
		req.Topics = append(req.Topics, t)
		f.Add(uint8(v), req.AppendTo(nil))
		req.Topics = nil // every partition
		f.Add(uint8(v), req.AppendTo(nil))
	}
	f.Add(uint8(7), []byte{2, 'g', 1, 1, 0})                                       // no topics, stable
	f.Add(uint8(7), []byte{2, 'g', 0x80, 0x80, 0x80, 0x80, 0x01, 1, 0})            // 2^28 topics
	f.Add(uint8(6), []byte{2, 'g', 2, 2, 'o', 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}) // 2^32 partitions
	f.Add(uint8(6), []byte{2, 'g', 2, 2, 'o', 0, 0, 0})                            // null partitions
	f.Add(uint8(7), []byte{2, 'g', 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})            // 2^32 tagged fields
	f.Add(uint8(7), []byte{2, 'g', 0, 1, 1, 3, 0xff, 0xff, 0x03})                  // a tag claiming 64 KiB
	f.Add(uint8(7), []byte{2, 'g', 0, 1, 0, 0})                                    // a byte after the body
	f.Add(uint8(7), []byte{2, 'g', 0})                                             // truncated: no RequireStable
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 9, int16(v%8), body) })
}

// FuzzProduce fuzzes the Produce body decoder at the versions served from
// 3 (9 to 12 ours, the rest kmsg's).
func FuzzProduce(f *testing.F) {
	for _, v := range []int16{3, 8, 9, 11, 12} {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr("tx-1"), -1, 1000
		t := kmsg.NewProduceRequestTopic()
		t.Topic = "orders"
		for i := range int32(2) {
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition = i
			if i == 0 {
				p.Records = txnBatch(7, 1, 0, "v")
			}
			t.Partitions = append(t.Partitions, p)
		}
		req.Topics = append(req.Topics, t)
		f.Add(uint8(v), req.AppendTo(nil))
	}
	// Version 12: a null transactional id, acks -1, timeout 0, then the
	// topics.
	head := []byte{0, 0xff, 0xff, 0, 0, 0, 0}
	f.Add(uint8(12), append(slices.Clone(head), 1, 0))                                                            // no topics
	f.Add(uint8(12), append(slices.Clone(head), 0, 0))                                                            // null topics
	f.Add(uint8(12), append(slices.Clone(head), 0x80, 0x80, 0x80, 0x80, 0x01, 0))                                 // 2^28 topics
	f.Add(uint8(12), append(slices.Clone(head), 2, 2, 'o', 0x80, 0x80, 0x80, 0x01, 0, 0))                         // 2^21 partitions
	f.Add(uint8(12), append(slices.Clone(head), 2, 2, 'o', 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0)) // records claiming 4 GiB
	f.Add(uint8(12), append(slices.Clone(head), 2, 2, 'o', 2, 0, 0, 0, 0, 0, 0, 0, 0))                            // null records
	f.Add(uint8(12), append(slices.Clone(head), 1, 0xff, 0xff, 0xff, 0xff, 0x0f))                                 // 2^32 tagged fields
	f.Add(uint8(12), append(slices.Clone(head), 1, 1, 3, 0xff, 0xff, 0x03))                                       // a tag claiming 64 KiB
	f.Add(uint8(12), append(slices.Clone(head), 1, 0, 0))                                                         // a byte after the body
	f.Add(uint8(12), head[:3])                                                                                    // truncated
	f.Fuzz(func(t *testing.T, v uint8, body []byte) {
		version := 3 + int16(v%10)
		fuzzOwnDecoder(t, 0, version, body)
		// A connection decodes into the request of its last Produce: the
		// body decodes (or fails) as it does on its own.
		var d kafka.ProduceDecoder
		tx := "tx-2"
		if _, err := d.Decode(version, produceRequest(version, 2, 3, &tx).AppendTo(nil)); err != nil {
			t.Fatal(err)
		}
		got, err := d.Decode(version, body)
		fresh, ferr := kafka.DecodeOwn(0, version, body)
		switch {
		case (err == nil) != (ferr == nil):
			t.Fatalf("version %d: %x: reused decoder %v, a new one %v", version, body, err, ferr)
		case err == nil && !bytes.Equal(got.AppendTo(nil), fresh.AppendTo(nil)):
			t.Fatalf("version %d: %x: the reused decode differs", version, body)
		}
	})
}

// FuzzEndTxn fuzzes the EndTxn body decoder at every version served (3
// to 5 ours, 0 to 2 kmsg's).
func FuzzEndTxn(f *testing.F) {
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrEndTxnRequest()
		req.SetVersion(v)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = "tx-1", 7, 3, true
		f.Add(uint8(v), req.AppendTo(nil))
	}
	body := []byte{2, 't', 0, 0, 0, 0, 0, 0, 0, 7, 0, 3, 1, 0}
	f.Add(uint8(5), []byte{0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 3, 1, 0})                          // a null id
	f.Add(uint8(5), append([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, body[2:]...))              // an id claiming 4 GiB
	f.Add(uint8(5), append(slices.Clone(body[:len(body)-1]), 0xff, 0xff, 0xff, 0xff, 0x0f)) // 2^32 tagged fields
	f.Add(uint8(5), append(slices.Clone(body[:len(body)-1]), 1, 1, 3, 0xff, 0xff, 0x03))    // a tag claiming 64 KiB
	f.Add(uint8(4), append(slices.Clone(body), 0))                                          // a byte after the body
	f.Add(uint8(3), body[:7])                                                               // truncated
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 26, int16(v%6), body) })
}

// FuzzInitProducerID fuzzes the InitProducerId body decoder at every
// version served (2 to 5 ours, 0 and 1 kmsg's).
func FuzzInitProducerID(f *testing.F) {
	id := "tx-1"
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = &id, 60000, 7, 3
		f.Add(uint8(v), req.AppendTo(nil))
	}
	body := []byte{2, 't', 0, 0, 0xea, 0x60, 0, 0, 0, 0, 0, 0, 0, 7, 0, 3, 0}
	f.Add(uint8(3), append([]byte{0}, body[2:]...))                                         // a null id (idempotent)
	f.Add(uint8(3), append([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, body[2:]...))              // an id claiming 4 GiB
	f.Add(uint8(4), append(slices.Clone(body[:len(body)-1]), 0xff, 0xff, 0xff, 0xff, 0x0f)) // 2^32 tagged fields
	f.Add(uint8(5), append(slices.Clone(body[:len(body)-1]), 1, 1, 3, 0xff, 0xff, 0x03))    // a tag claiming 64 KiB
	f.Add(uint8(3), append(slices.Clone(body), 0))                                          // a byte after the body
	f.Add(uint8(2), body[:6])                                                               // truncated
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 22, int16(v%6), body) })
}

// FuzzAddPartitionsToTxn fuzzes the AddPartitionsToTxn body decoder at
// every version served (3 ours, 0 to 2 kmsg's).
func FuzzAddPartitionsToTxn(f *testing.F) {
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(v)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = "tx-1", 7, 3
		t := kmsg.NewAddPartitionsToTxnRequestTopic()
		t.Topic, t.Partitions = "orders", []int32{0, 2}
		req.Topics = append(req.Topics, t, kmsg.AddPartitionsToTxnRequestTopic{Topic: "empty"})
		f.Add(uint8(v), req.AppendTo(nil))
	}
	head := []byte{2, 't', 0, 0, 0, 0, 0, 0, 0, 7, 0, 3}
	f.Add(uint8(3), append(slices.Clone(head), 0x80, 0x80, 0x80, 0x80, 0x01, 0))               // 2^28 topics in a few bytes
	f.Add(uint8(3), append(slices.Clone(head), 2, 2, 'x', 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0)) // 2^32 partitions
	f.Add(uint8(3), append(slices.Clone(head), 0, 0))                                          // a null topic list
	f.Add(uint8(3), append(slices.Clone(head), 1, 0xff, 0xff, 0xff, 0xff, 0x0f))               // 2^32 tagged fields
	f.Add(uint8(3), append(slices.Clone(head), 1, 0, 0))                                       // a byte after the body
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 24, int16(v%4), body) })
}

// FuzzAddOffsetsToTxn fuzzes the AddOffsetsToTxn body decoder at every
// version served (3 and 4 ours, 0 to 2 kmsg's).
func FuzzAddOffsetsToTxn(f *testing.F) {
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.SetVersion(v)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = "tx-1", 7, 3, "etl"
		f.Add(uint8(v), req.AppendTo(nil))
	}
	body := []byte{2, 't', 0, 0, 0, 0, 0, 0, 0, 7, 0, 3, 2, 'g', 0}
	f.Add(uint8(3), append(slices.Clone(body[:12]), 0xff, 0xff, 0xff, 0xff, 0x0f, 0))       // a group claiming 4 GiB
	f.Add(uint8(4), append(slices.Clone(body[:len(body)-1]), 0xff, 0xff, 0xff, 0xff, 0x0f)) // 2^32 tagged fields
	f.Add(uint8(4), append(slices.Clone(body), 0))                                          // a byte after the body
	f.Add(uint8(3), body[:9])                                                               // truncated
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 25, int16(v%5), body) })
}

// FuzzApiVersions fuzzes the ApiVersions body decoder at every version
// served (3 ours, 0 to 2 kmsg's).
func FuzzApiVersions(f *testing.F) {
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(v)
		req.ClientSoftwareName, req.ClientSoftwareVersion = "franz-go", "1.22.2"
		f.Add(uint8(v), req.AppendTo(nil))
	}
	f.Add(uint8(3), []byte{0, 1, 0})                            // a null name
	f.Add(uint8(3), []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0}) // a name claiming 4 GiB
	f.Add(uint8(3), []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}) // 2^32 tagged fields
	f.Add(uint8(3), []byte{1, 1, 1, 1, 3, 0xff, 0xff, 0x03})    // a tag claiming 64 KiB
	f.Add(uint8(3), []byte{1, 1, 0, 0})                         // a byte after the body
	f.Add(uint8(3), []byte{2, 'x'})                             // truncated
	f.Fuzz(func(t *testing.T, v uint8, body []byte) { fuzzOwnDecoder(t, 18, int16(v%4), body) })
}
