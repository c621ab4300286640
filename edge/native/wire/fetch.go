package wire

import (
	"encoding/binary"
	"math"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// Special offsets accepted by SUBSCRIBE and FETCH.
const (
	// OffsetEarliest starts at the first offset the partition still holds.
	OffsetEarliest int64 = -2
	// OffsetLatest starts at the high watermark: only events stored later.
	OffsetLatest int64 = -1
)

// Subscribe is the payload of SUBSCRIBE:
//
//	string pipeline
//	i32    partition
//	i64    offset          (or OffsetEarliest, OffsetLatest)
//	u32    initial credit  (bytes of record batches; also the window, see CreditAccount)
//	u32    max wait ms     (how long the server may hold data back to fill a larger DATA)
//
// The SUBSCRIBE's correlation id names the subscription from then on: the
// server's DATA frames carry it, and the client's CREDIT and UNSUBSCRIBE
// frames use it.
type Subscribe struct {
	Pipeline  string
	Partition int32
	Offset    int64
	Credit    uint32
	MaxWaitMs uint32
}

// AppendSubscribe appends a SUBSCRIBE frame.
func AppendSubscribe(dst []byte, corr uint32, m Subscribe) []byte {
	dst, start := BeginFrame(dst, TypeSubscribe, 0, corr)
	dst = appendString(dst, m.Pipeline)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Offset))
	dst = binary.BigEndian.AppendUint32(dst, m.Credit)
	dst = binary.BigEndian.AppendUint32(dst, m.MaxWaitMs)
	return EndFrame(dst, start)
}

// DecodeSubscribe decodes a SUBSCRIBE payload. A pipeline name longer than
// MaxPipelineLen gives result.ErrInvalidPipelineName.
func DecodeSubscribe(p []byte) (Subscribe, error) {
	c := newCursor(TypeSubscribe, p)
	m := Subscribe{
		Pipeline:  string(c.pipeline()),
		Partition: int32(c.u32("partition")),
		Offset:    int64(c.u64("offset")),
		Credit:    c.u32("credit"),
		MaxWaitMs: c.u32("max wait"),
	}
	if err := c.end(); err != nil {
		return Subscribe{}, err
	}
	return m, nil
}

// Subscribed is the payload of SUBSCRIBED:
//
//	i32 partition
//	i64 start offset    (the offset of the first record the subscription delivers)
//	i64 high watermark  (the offset the next stored record will get)
type Subscribed struct {
	Partition     int32
	StartOffset   int64
	HighWatermark int64
}

// AppendSubscribed appends a SUBSCRIBED frame.
func AppendSubscribed(dst []byte, corr uint32, m Subscribed) []byte {
	dst, start := BeginFrame(dst, TypeSubscribed, 0, corr)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.StartOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.HighWatermark))
	return EndFrame(dst, start)
}

// DecodeSubscribed decodes a SUBSCRIBED payload.
func DecodeSubscribed(p []byte) (Subscribed, error) {
	c := newCursor(TypeSubscribed, p)
	m := Subscribed{
		Partition:     int32(c.u32("partition")),
		StartOffset:   int64(c.u64("start offset")),
		HighWatermark: int64(c.u64("high watermark")),
	}
	if err := c.end(); err != nil {
		return Subscribed{}, err
	}
	return m, nil
}

// DataHeaderSize is the size of DATA's fixed fields (partition, high
// watermark); the record batches follow.
const DataHeaderSize = 4 + 8

// DataOverhead is the size of a whole DATA frame without its batches.
// A server sending DATA to a client that accepts frames of at most
// maxFrame bytes (length field) can put maxFrame+LengthSize-DataOverhead
// bytes of batches in one frame.
const DataOverhead = FrameHeaderSize + DataHeaderSize

// Data is the payload of DATA, pushed by the server on a subscription:
//
//	i32 partition
//	i64 high watermark
//	record batches (Kafka RecordBatch v2, whole batches) to the end of the frame
//
// A DATA frame without batches reports a new high watermark and takes no
// credit.
type Data struct {
	Partition     int32
	HighWatermark int64
	// Batches aliases the payload. DecodeData has checked that it is a
	// sequence of whole batches by their length fields; check each one
	// (CRC included) with batch.Check or batch.NewIter before use.
	Batches []byte
}

// AppendData appends a DATA frame.
func AppendData(dst []byte, corr uint32, m Data) []byte {
	dst = AppendDataHeader(dst, corr, m.Partition, m.HighWatermark, len(m.Batches))
	return append(dst, m.Batches...)
}

// AppendDataHeader appends the start of a DATA frame whose batchBytes bytes
// of record batches the caller writes next, for instance straight from a
// segment file with sendfile. The length field already counts them.
func AppendDataHeader(dst []byte, corr uint32, partition int32, hw int64, batchBytes int) []byte {
	dst = appendFixedHeader(dst, TypeData, corr, DataHeaderSize+batchBytes)
	dst = binary.BigEndian.AppendUint32(dst, uint32(partition))
	return binary.BigEndian.AppendUint64(dst, uint64(hw))
}

// DecodeData decodes a DATA payload and checks that its batches are whole
// (by their length fields).
func DecodeData(p []byte) (Data, error) {
	c := newCursor(TypeData, p)
	m := Data{
		Partition:     int32(c.u32("partition")),
		HighWatermark: int64(c.u64("high watermark")),
		Batches:       c.rest(),
	}
	if c.err != nil {
		return Data{}, c.err
	}
	if err := checkBatches(TypeData, m.Batches); err != nil {
		return Data{}, err
	}
	return m, nil
}

// AppendCredit appends a CREDIT frame granting n more bytes to the
// subscription whose SUBSCRIBE had correlation id corr. CREDIT is never
// answered.
//
// CREDIT payload: u32 bytes.
func AppendCredit(dst []byte, corr uint32, n uint32) []byte {
	dst, start := BeginFrame(dst, TypeCredit, 0, corr)
	dst = binary.BigEndian.AppendUint32(dst, n)
	return EndFrame(dst, start)
}

// DecodeCredit decodes a CREDIT payload.
func DecodeCredit(p []byte) (uint32, error) {
	c := newCursor(TypeCredit, p)
	n := c.u32("bytes")
	return n, c.end()
}

// AppendUnsubscribe appends an UNSUBSCRIBE frame (empty payload) ending
// the subscription whose SUBSCRIBE had correlation id corr.
func AppendUnsubscribe(dst []byte, corr uint32) []byte {
	return AppendFrame(dst, TypeUnsubscribe, 0, corr, nil)
}

// AppendUnsubscribed appends an UNSUBSCRIBED frame (empty payload): the
// server's promise that no DATA with correlation id corr follows.
func AppendUnsubscribed(dst []byte, corr uint32) []byte {
	return AppendFrame(dst, TypeUnsubscribed, 0, corr, nil)
}

// DecodeEmpty checks that the payload of a frame of type t whose payload is
// empty by definition (UNSUBSCRIBE, UNSUBSCRIBED) is indeed empty.
func DecodeEmpty(t Type, p []byte) error {
	if len(p) != 0 {
		return malformed(t, "payload of %d bytes, want none", len(p))
	}
	return nil
}

// Fetch is the payload of FETCH, a one-shot read for simple tools:
//
//	string pipeline
//	i32    partition
//	i64    offset     (or OffsetEarliest, OffsetLatest)
//	u32    max bytes  (of record batches; the first batch is sent whole even if larger)
type Fetch struct {
	Pipeline  string
	Partition int32
	Offset    int64
	MaxBytes  uint32
}

// AppendFetch appends a FETCH frame.
func AppendFetch(dst []byte, corr uint32, m Fetch) []byte {
	dst, start := BeginFrame(dst, TypeFetch, 0, corr)
	dst = appendString(dst, m.Pipeline)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Offset))
	dst = binary.BigEndian.AppendUint32(dst, m.MaxBytes)
	return EndFrame(dst, start)
}

// DecodeFetch decodes a FETCH payload. A pipeline name longer than
// MaxPipelineLen gives result.ErrInvalidPipelineName.
func DecodeFetch(p []byte) (Fetch, error) {
	c := newCursor(TypeFetch, p)
	m := Fetch{
		Pipeline:  string(c.pipeline()),
		Partition: int32(c.u32("partition")),
		Offset:    int64(c.u64("offset")),
		MaxBytes:  c.u32("max bytes"),
	}
	if err := c.end(); err != nil {
		return Fetch{}, err
	}
	return m, nil
}

// FetchResultHeaderSize is the size of FETCH_RESULT's fixed fields (code,
// partition, high watermark); the record batches follow.
const FetchResultHeaderSize = 2 + 4 + 8

// FetchResult is the payload of FETCH_RESULT:
//
//	u16 code            (result.OK, or why no batches are returned)
//	i32 partition
//	i64 high watermark  (-1 when unknown)
//	record batches (whole batches) to the end of the frame; none unless code is result.OK
type FetchResult struct {
	Code          result.Code
	Partition     int32
	HighWatermark int64
	// Batches aliases the payload; see Data.Batches.
	Batches []byte
}

// AppendFetchResult appends a FETCH_RESULT frame.
func AppendFetchResult(dst []byte, corr uint32, m FetchResult) []byte {
	dst = AppendFetchResultHeader(dst, corr, m.Code, m.Partition, m.HighWatermark, len(m.Batches))
	return append(dst, m.Batches...)
}

// AppendFetchResultHeader appends the start of a FETCH_RESULT frame whose
// batchBytes bytes of record batches the caller writes next; see
// AppendDataHeader.
func AppendFetchResultHeader(dst []byte, corr uint32, code result.Code, partition int32, hw int64, batchBytes int) []byte {
	dst = appendFixedHeader(dst, TypeFetchResult, corr, FetchResultHeaderSize+batchBytes)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = binary.BigEndian.AppendUint32(dst, uint32(partition))
	return binary.BigEndian.AppendUint64(dst, uint64(hw))
}

// DecodeFetchResult decodes a FETCH_RESULT payload and checks that its
// batches are whole (by their length fields).
func DecodeFetchResult(p []byte) (FetchResult, error) {
	c := newCursor(TypeFetchResult, p)
	m := FetchResult{
		Code:          result.Code(c.u16("code")),
		Partition:     int32(c.u32("partition")),
		HighWatermark: int64(c.u64("high watermark")),
		Batches:       c.rest(),
	}
	if c.err != nil {
		return FetchResult{}, c.err
	}
	if m.Code != result.OK && len(m.Batches) != 0 {
		return FetchResult{}, malformed(TypeFetchResult, "code %s with %d bytes of batches", m.Code, len(m.Batches))
	}
	if err := checkBatches(TypeFetchResult, m.Batches); err != nil {
		return FetchResult{}, err
	}
	return m, nil
}

// appendFixedHeader appends a frame header whose payload of n bytes the
// caller writes next.
func appendFixedHeader(dst []byte, typ Type, corr uint32, n int) []byte {
	if n < 0 || uint64(n)+HeaderLen > 1<<32-1 {
		panic("wire: payload of this size cannot be framed")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(HeaderLen+n))
	dst = append(dst, byte(typ), 0)
	return binary.BigEndian.AppendUint32(dst, corr)
}

// checkBatches checks that p is a sequence of whole record batches, by
// their length fields alone.
func checkBatches(t Type, p []byte) error {
	for off := 0; off < len(p); {
		n, err := batch.Size(p[off:])
		if err != nil {
			return malformed(t, "batch at byte %d: %v", off, err)
		}
		if n > len(p)-off {
			return malformed(t, "batch at byte %d is %d bytes long, %d present", off, n, len(p)-off)
		}
		off += n
	}
	return nil
}

// maxCredit bounds a subscription's credit; CREDIT frames beyond it are
// absorbed. No client reaches it in practice.
const maxCredit = 1 << 62

// CreditAccount is a server's account of one subscription's credit. It
// implements the flow-control rule of the protocol, so that every server
// applies it the same way:
//
//   - Credit starts at the SUBSCRIBE's initial credit, which is also the
//     subscription's window. CREDIT frames add to it; the record-batch bytes
//     of each DATA frame are taken from it (frame headers and DATA's fixed
//     fields cost nothing).
//   - A DATA frame may carry b bytes of whole batches when b <= credit.
//   - Progress: when the next batch alone is larger than the credit, the
//     server may send that one batch, alone in its DATA frame, if the credit
//     is above 0 and at least the window (that is, for a client that grants
//     back what it consumes, nothing else is outstanding). The credit then
//     goes below 0, and nothing more is sent until CREDIT brings it above 0
//     again and the rules above allow it.
//
// A client that keeps its window at its initial credit thus never holds
// more than max(window, one batch) bytes of a subscription.
type CreditAccount struct {
	window int64
	credit int64
}

// NewCreditAccount returns the account of a subscription opened with
// initial credit.
func NewCreditAccount(initial uint32) CreditAccount {
	return CreditAccount{window: int64(initial), credit: int64(initial)}
}

// Add records a CREDIT of n bytes.
func (a *CreditAccount) Add(n uint32) {
	a.credit = min(a.credit+int64(n), maxCredit)
}

// Credit returns the credit left; it is negative after an oversized batch.
func (a *CreditAccount) Credit() int64 { return a.credit }

// Allowance returns how many bytes of batches the next DATA frame may
// carry, given the size of the first batch waiting to be sent: 0 when the
// server must wait for credit, next when only that batch may go (it exceeds
// the credit), and otherwise the credit itself, to fill with whole batches.
func (a *CreditAccount) Allowance(next int) int {
	switch {
	case int64(next) <= a.credit:
		return int(min(a.credit, math.MaxInt))
	case a.credit > 0 && a.credit >= a.window:
		return next
	}
	return 0
}

// Spend records a DATA frame carrying n bytes of batches.
func (a *CreditAccount) Spend(n int) { a.credit -= int64(n) }
