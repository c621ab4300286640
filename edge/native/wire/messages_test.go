package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sensehq/sense/result"
)

// msgCase is one message, encoded, with the decoder of its payload and the
// value that decoder must return.
type msgCase struct {
	name   string
	frame  []byte
	typ    Type
	corr   uint32
	decode func([]byte) (any, error)
	want   any
	// prefixOK reports whether the payload cut to n bytes is itself valid
	// (nil: no strict prefix is).
	prefixOK func(n int) bool
}

func messageCases() []msgCase {
	b1, b2 := buildBatch(3, "hello"), buildBatch(1, strings.Repeat("x", 300))
	batches := append(append([]byte(nil), b1...), b2...)
	atBatchBoundary := func(fixed int) func(int) bool {
		return func(n int) bool { return n == fixed || n == fixed+len(b1) }
	}
	hello := Hello{MinVersion: 1, MaxVersion: 3, ClientID: "sense-go/0.1 host-a"}
	helloOK := HelloOK{Version: 1, MaxFrameBytes: 16 << 20, MaxEventsPerProduce: 100000, MaxEventBytes: 1 << 20, ServerID: "sense/dev n1"}
	sub := Subscribe{Pipeline: "payments", Partition: 3, Offset: OffsetEarliest, Credit: 1 << 20, MaxWaitMs: 5}
	subd := Subscribed{Partition: 3, StartOffset: 42, HighWatermark: 1 << 40}
	data := Data{Partition: 3, HighWatermark: 99, Batches: batches}
	fetch := Fetch{Pipeline: "payments", Partition: -1, Offset: 1<<63 - 1, MaxBytes: 1 << 30}
	fres := FetchResult{Code: result.OK, Partition: 7, HighWatermark: 5, Batches: batches}
	fresErr := FetchResult{Code: result.OffsetOutOfRange, Partition: 7, HighWatermark: 5, Batches: []byte{}}
	results := []EventResult{{result.OK, 0, 0}, {result.NoCompliantHub, -1, -1}, {result.OK, 1 << 30, 1<<63 - 1}}
	return []msgCase{
		{name: "HELLO", frame: AppendHello(nil, 1, hello), typ: TypeHello, corr: 1,
			decode: func(p []byte) (any, error) { return DecodeHello(p) }, want: hello},
		{name: "HELLO_OK", frame: AppendHelloOK(nil, 1, helloOK), typ: TypeHelloOK, corr: 1,
			decode: func(p []byte) (any, error) { return DecodeHelloOK(p) }, want: helloOK},
		{name: "INIT_PRODUCER", frame: AppendInitProducer(nil, 2, InitProducer{}), typ: TypeInitProducer, corr: 2,
			decode: func(p []byte) (any, error) { return DecodeInitProducer(p) }, want: InitProducer{}},
		{name: "INIT_PRODUCER txn", frame: AppendInitProducer(nil, 2, InitProducer{TransactionalID: "tx-1"}), typ: TypeInitProducer, corr: 2,
			decode: func(p []byte) (any, error) { return DecodeInitProducer(p) }, want: InitProducer{TransactionalID: "tx-1"},
			prefixOK: func(n int) bool { return n == 0 }},
		{name: "INIT_PRODUCER_OK", frame: AppendInitProducerOK(nil, 2, InitProducerOK{ProducerID: 1 << 50, Epoch: -3}), typ: TypeInitProducerOK, corr: 2,
			decode: func(p []byte) (any, error) { return DecodeInitProducerOK(p) }, want: InitProducerOK{ProducerID: 1 << 50, Epoch: -3}},
		{name: "PRODUCE_RESULT", frame: AppendProduceResult(nil, 9, results), typ: TypeProduceResult, corr: 9,
			decode: func(p []byte) (any, error) {
				r, err := DecodeProduceResult(p)
				return r.AppendTo(nil), err
			}, want: results},
		{name: "PRODUCE_RESULT empty", frame: AppendProduceResult(nil, 9, nil), typ: TypeProduceResult, corr: 9,
			decode: func(p []byte) (any, error) {
				r, err := DecodeProduceResult(p)
				return r.Len(), err
			}, want: 0},
		{name: "SUBSCRIBE", frame: AppendSubscribe(nil, 4, sub), typ: TypeSubscribe, corr: 4,
			decode: func(p []byte) (any, error) { return DecodeSubscribe(p) }, want: sub},
		{name: "SUBSCRIBED", frame: AppendSubscribed(nil, 4, subd), typ: TypeSubscribed, corr: 4,
			decode: func(p []byte) (any, error) { return DecodeSubscribed(p) }, want: subd},
		{name: "DATA", frame: AppendData(nil, 4, data), typ: TypeData, corr: 4,
			decode: func(p []byte) (any, error) { return DecodeData(p) }, want: data,
			prefixOK: atBatchBoundary(DataHeaderSize)},
		{name: "DATA empty", frame: AppendData(nil, 4, Data{Partition: 1, HighWatermark: 2, Batches: []byte{}}), typ: TypeData, corr: 4,
			decode: func(p []byte) (any, error) { return DecodeData(p) }, want: Data{Partition: 1, HighWatermark: 2, Batches: []byte{}}},
		{name: "CREDIT", frame: AppendCredit(nil, 4, 1<<32-1), typ: TypeCredit, corr: 4,
			decode: func(p []byte) (any, error) { return DecodeCredit(p) }, want: uint32(1<<32 - 1)},
		{name: "UNSUBSCRIBE", frame: AppendUnsubscribe(nil, 4), typ: TypeUnsubscribe, corr: 4,
			decode: func(p []byte) (any, error) { return nil, DecodeEmpty(TypeUnsubscribe, p) }, want: nil},
		{name: "UNSUBSCRIBED", frame: AppendUnsubscribed(nil, 4), typ: TypeUnsubscribed, corr: 4,
			decode: func(p []byte) (any, error) { return nil, DecodeEmpty(TypeUnsubscribed, p) }, want: nil},
		{name: "FETCH", frame: AppendFetch(nil, 5, fetch), typ: TypeFetch, corr: 5,
			decode: func(p []byte) (any, error) { return DecodeFetch(p) }, want: fetch},
		{name: "FETCH_RESULT", frame: AppendFetchResult(nil, 5, fres), typ: TypeFetchResult, corr: 5,
			decode: func(p []byte) (any, error) { return DecodeFetchResult(p) }, want: fres,
			prefixOK: atBatchBoundary(FetchResultHeaderSize)},
		{name: "FETCH_RESULT error", frame: AppendFetchResult(nil, 5, fresErr), typ: TypeFetchResult, corr: 5,
			decode: func(p []byte) (any, error) { return DecodeFetchResult(p) }, want: fresErr},
		{name: "ADMIN", frame: AppendAdmin(nil, 6, []byte(`{"op":"pipeline.list"}`)), typ: TypeAdmin, corr: 6,
			decode: func(p []byte) (any, error) { return string(p), nil }, want: `{"op":"pipeline.list"}`,
			prefixOK: func(int) bool { return true }},
		{name: "ADMIN_RESULT", frame: AppendAdminResult(nil, 6, []byte(`{"pipelines":[]}`)), typ: TypeAdminResult, corr: 6,
			decode: func(p []byte) (any, error) { return string(p), nil }, want: `{"pipelines":[]}`,
			prefixOK: func(int) bool { return true }},
		{name: "PING", frame: AppendPing(nil, 7, []byte("t=1")), typ: TypePing, corr: 7,
			decode: func(p []byte) (any, error) { return string(p), nil }, want: "t=1",
			prefixOK: func(int) bool { return true }},
		{name: "PONG", frame: AppendPong(nil, 7, []byte("t=1")), typ: TypePong, corr: 7,
			decode: func(p []byte) (any, error) { return string(p), nil }, want: "t=1",
			prefixOK: func(int) bool { return true }},
		{name: "ERROR", frame: AppendError(nil, 8, result.UnknownPipeline, `pipeline "x" does not exist`), typ: TypeError, corr: 8,
			decode: func(p []byte) (any, error) { return DecodeError(p) }, want: &result.Error{Code: result.UnknownPipeline, Message: `pipeline "x" does not exist`}},
		{name: "ERROR conn", frame: AppendError(nil, 0, result.Malformed, ""), typ: TypeError, corr: 0,
			decode: func(p []byte) (any, error) { return DecodeError(p) }, want: &result.Error{Code: result.Malformed}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, tc := range messageCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := readOne(t, tc.frame, tc.typ, tc.corr)
			got, err := tc.decode(f.Payload)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded %#v\nwant    %#v", got, tc.want)
			}
			// Appending to a non-empty buffer gives the same frame.
			if !bytes.Equal(tc.frame, reencode(t, tc)) {
				t.Fatal("encoding depends on dst")
			}
		})
	}
}

// reencode encodes tc again after a prefix and strips the prefix.
func reencode(t *testing.T, tc msgCase) []byte {
	t.Helper()
	prefix := []byte("prefix")
	var b []byte
	switch tc.typ {
	case TypeProduceResult:
		r, _ := DecodeProduceResult(tc.frame[FrameHeaderSize:])
		b = AppendProduceResult(prefix, tc.corr, r.AppendTo(nil))
	default:
		b = AppendFrame(prefix, tc.typ, 0, tc.corr, tc.frame[FrameHeaderSize:])
	}
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("prefix overwritten")
	}
	return b[len(prefix):]
}

// Every strict prefix of a payload, and every payload with a byte added,
// is refused unless the format allows it, with an error rather than a
// panic.
func TestMessageTruncated(t *testing.T) {
	for _, tc := range messageCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.frame[FrameHeaderSize:]
			for n := 0; n < len(p); n++ {
				cut := append([]byte(nil), p[:n]...)
				_, err := tc.decode(cut)
				ok := tc.prefixOK != nil && tc.prefixOK(n)
				if ok && err != nil {
					t.Fatalf("payload cut at %d: %v, want success", n, err)
				}
				if !ok {
					mustMalformed(t, err, fmt.Sprintf("payload cut at %d of %d", n, len(p)))
				}
			}
			long := append(append([]byte(nil), p...), 0)
			_, err := tc.decode(long)
			switch tc.typ {
			case TypeHello, TypeAdmin, TypeAdminResult, TypePing, TypePong:
				if err != nil {
					t.Fatalf("trailing byte refused: %v", err)
				}
			default:
				mustMalformed(t, err, "trailing byte")
			}
		})
	}
}

func TestHelloMagic(t *testing.T) {
	p := AppendHello(nil, 1, Hello{MinVersion: 1, MaxVersion: 1})[FrameHeaderSize:]
	p[0] = 'G' // "GNS1": say, an HTTP client would send "GET "
	_, err := DecodeHello(p)
	mustMalformed(t, err, "bad magic")
	if !strings.Contains(err.Error(), "magic") {
		t.Fatalf("error does not name the magic: %v", err)
	}
}

func TestNegotiateVersion(t *testing.T) {
	for _, tc := range []struct {
		min, max uint16
		want     uint16
	}{{1, 1, 1}, {1, 9, 1}, {0, 1, 1}, {0, 0, 0}, {2, 3, 0}, {3, 1, 0}} {
		v, err := NegotiateVersion(Hello{MinVersion: tc.min, MaxVersion: tc.max})
		if v != tc.want {
			t.Fatalf("[%d,%d]: version %d, want %d", tc.min, tc.max, v, tc.want)
		}
		if (tc.want == 0) != errors.Is(err, result.ErrUnsupportedVersion) {
			t.Fatalf("[%d,%d]: error %v", tc.min, tc.max, err)
		}
		if err != nil && !strings.Contains(err.Error(), "this server speaks 1 to 1") {
			t.Fatalf("message does not give the server's range: %v", err)
		}
	}
}

func TestHelloOKLimits(t *testing.T) {
	h := NewHelloOK(1, Limits{MaxEventBytes: 4096}, "s")
	if h.MaxFrameBytes != DefaultMaxFrameBytes || h.MaxEventsPerProduce != DefaultMaxEventsPerProduce || h.MaxEventBytes != 4096 {
		t.Fatalf("NewHelloOK = %+v", h)
	}
	l := h.Limits()
	if l.MaxEventBytes != 4096 || l.MaxHeaders != DefaultMaxHeaders {
		t.Fatalf("Limits() = %+v", l)
	}
	tiny := AppendHelloOK(nil, 1, HelloOK{Version: 1, MaxFrameBytes: 10})[FrameHeaderSize:]
	_, err := DecodeHelloOK(tiny)
	mustMalformed(t, err, "max frame 10")
}

func TestPipelineNameTooLong(t *testing.T) {
	long := strings.Repeat("p", MaxPipelineLen+1)
	ok := strings.Repeat("p", MaxPipelineLen)
	for _, tc := range []struct {
		name   string
		encode func(string) []byte
		decode func([]byte) error
	}{
		{"SUBSCRIBE", func(s string) []byte { return AppendSubscribe(nil, 1, Subscribe{Pipeline: s}) },
			func(p []byte) error { _, err := DecodeSubscribe(p); return err }},
		{"FETCH", func(s string) []byte { return AppendFetch(nil, 1, Fetch{Pipeline: s}) },
			func(p []byte) error { _, err := DecodeFetch(p); return err }},
		{"PRODUCE", func(s string) []byte { return AppendProduce(nil, 1, ProduceHeader{Pipeline: s}, nil) },
			func(p []byte) error { _, err := DecodeProduce(p); return err }},
	} {
		if err := tc.decode(tc.encode(ok)[FrameHeaderSize:]); err != nil {
			t.Fatalf("%s: %d-byte name: %v", tc.name, len(ok), err)
		}
		if err := tc.decode(tc.encode(long)[FrameHeaderSize:]); !errors.Is(err, result.ErrInvalidPipelineName) {
			t.Fatalf("%s: %d-byte name: %v, want INVALID_PIPELINE_NAME", tc.name, len(long), err)
		}
	}
}

func TestDataBatchesChecked(t *testing.T) {
	b := buildBatch(2, "v")
	bad := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(bad[8:], 1<<31-1) // batch length far past the end
	for _, tc := range []struct {
		name    string
		batches []byte
	}{
		{"cut batch", b[:len(b)-1]},
		{"huge batch length", bad},
		{"garbage", []byte("not a batch at all")},
		{"negative length", append(make([]byte, 8), 0xff, 0xff, 0xff, 0xff)},
	} {
		_, err := DecodeData(AppendData(nil, 1, Data{Batches: tc.batches})[FrameHeaderSize:])
		mustMalformed(t, err, "DATA "+tc.name)
		_, err = DecodeFetchResult(AppendFetchResult(nil, 1, FetchResult{Batches: tc.batches})[FrameHeaderSize:])
		mustMalformed(t, err, "FETCH_RESULT "+tc.name)
	}
	// An error code with batches is malformed too.
	_, err := DecodeFetchResult(AppendFetchResult(nil, 1, FetchResult{Code: result.NotLeader, Batches: b})[FrameHeaderSize:])
	mustMalformed(t, err, "FETCH_RESULT with a code and batches")
}

// The header-only encoders let a server write batches straight from a
// file: header plus batches must equal the whole frame.
func TestDataHeaderThenBatches(t *testing.T) {
	b := buildBatch(4, "abc")
	whole := AppendData(nil, 3, Data{Partition: 2, HighWatermark: 10, Batches: b})
	split := append(AppendDataHeader(nil, 3, 2, 10, len(b)), b...)
	if !bytes.Equal(whole, split) || len(split)-len(b) != DataOverhead {
		t.Fatal("DATA header + batches differs from AppendData")
	}
	whole = AppendFetchResult(nil, 3, FetchResult{Partition: 2, HighWatermark: 10, Batches: b})
	split = append(AppendFetchResultHeader(nil, 3, result.OK, 2, 10, len(b)), b...)
	if !bytes.Equal(whole, split) {
		t.Fatal("FETCH_RESULT header + batches differs from AppendFetchResult")
	}
}

func TestErrorMessages(t *testing.T) {
	long := strings.Repeat("é", MaxErrorMessage) // 2 bytes a rune
	e, err := DecodeError(AppendError(nil, 1, result.Unknown, long)[FrameHeaderSize:])
	if err != nil || len(e.Message) > MaxErrorMessage || !strings.HasPrefix(long, e.Message) || len(e.Message)%2 != 0 {
		t.Fatalf("long message: %d bytes, %v", len(e.Message), err)
	}
	inner := &result.Error{Code: result.UnknownPipeline, Message: "no pipeline x"}
	for _, tc := range []struct {
		err  error
		code result.Code
		msg  string
	}{
		{inner, result.UnknownPipeline, "no pipeline x"},
		{fmt.Errorf("produce: %w", inner), result.UnknownPipeline, "produce: sense: UNKNOWN_PIPELINE: no pipeline x"},
		{errors.New("disk on fire"), result.Unknown, "disk on fire"},
	} {
		e, err := DecodeError(AppendErrorFrom(nil, 1, tc.err)[FrameHeaderSize:])
		if err != nil || e.Code != tc.code || e.Message != tc.msg {
			t.Fatalf("AppendErrorFrom(%v) decodes as %v, %v", tc.err, e, err)
		}
	}
}

func TestDecodeEmpty(t *testing.T) {
	if err := DecodeEmpty(TypeUnsubscribe, nil); err != nil {
		t.Fatal(err)
	}
	mustMalformed(t, DecodeEmpty(TypeUnsubscribe, []byte{0}), "UNSUBSCRIBE with a byte")
}
