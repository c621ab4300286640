package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
)

// killSwitch gives a kgo client connections that can all be cut at once,
// with every later dial refused: the client is as good as a killed
// process, and it does not leave its group.
type killSwitch struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (k *killSwitch) dial(ctx context.Context, network, host string) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		return nil, errors.New("killed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		k.conns = append(k.conns, c)
	}
	return c, err
}

func (k *killSwitch) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	for _, c := range k.conns {
		c.Close()
	}
}

func (k *killSwitch) killed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dead
}

// committedOffsets asks the server for a group's committed offsets.
func committedOffsets(ctx context.Context, cl *kgo.Client, group string) (map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.Topics = nil // every committed partition (v2+)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, err
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// Three members of a group consume a topic of 6 partitions while records
// are produced; one member is killed mid-stream (its connections cut, no
// LeaveGroup). Its session expires, the other two take over its
// partitions from the committed offsets, and every record produced is
// consumed; the committed offsets, watched throughout, never go back.
func TestConsumerGroupMemberKilled(t *testing.T) {
	addr := start(t, `
pipelines:
  - {name: clicks, partitions: 2}
`)
	const topic, group, n = "clicks", "clickers", 30000
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var mu sync.Mutex
	seen := map[string]int{} // value -> times consumed
	consumed := 0

	type consumer struct {
		cl *kgo.Client
		ks *killSwitch
	}
	newConsumer := func(i int) consumer {
		ks := &killSwitch{}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(addr),
			kgo.ClientID(fmt.Sprintf("member-%d", i)),
			kgo.Dialer(ks.dial),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(),
			kgo.SessionTimeout(3*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.RebalanceTimeout(10*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.RetryTimeout(5*time.Second),
		)
		if err != nil {
			t.Fatal(err)
		}
		return consumer{cl, ks}
	}
	var wg sync.WaitGroup
	members := make([]consumer, 3)
	for i := range members {
		members[i] = newConsumer(i)
		m := members[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !m.ks.killed() {
				fs := m.cl.PollFetches(ctx)
				if m.ks.killed() {
					return // a killed process processes nothing more
				}
				var recs []*kgo.Record
				fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
				if len(recs) == 0 {
					continue
				}
				mu.Lock()
				for _, r := range recs {
					seen[string(r.Value)]++
					consumed++
				}
				mu.Unlock()
				// Commit after processing; a failed commit (a rebalance
				// took the partition away) means redelivery, not loss.
				m.cl.CommitRecords(ctx, recs...)
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		for _, m := range members {
			m.cl.Close()
		}
	}()

	// Watch the committed offsets: they must never go back.
	watcher := client(t, addr)
	watchErr := make(chan error, 1)
	stopWatch := make(chan struct{})
	go func() {
		last := map[int32]int64{}
		for {
			select {
			case <-stopWatch:
				watchErr <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			got, err := committedOffsets(ctx, watcher, group)
			if err != nil {
				continue // the watcher's own request failing is not the point
			}
			for p, o := range got {
				if o < last[p] {
					watchErr <- fmt.Errorf("partition %d: committed offset went back from %d to %d", p, last[p], o)
					return
				}
				last[p] = o
			}
		}
	}()

	// Produce in two halves; kill a member between them, once it has
	// consumed and committed something.
	p := client(t, addr, kgo.DefaultProduceTopic(topic))
	produce := func(from, to int) {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%97), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, n/2)
	for {
		mu.Lock()
		c := consumed
		mu.Unlock()
		if c >= n/4 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records before the kill, want %d", c, n/4)
		}
		time.Sleep(20 * time.Millisecond)
	}
	members[1].ks.kill()
	produce(n/2, n)

	for {
		mu.Lock()
		distinct := len(seen)
		mu.Unlock()
		if distinct == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d distinct records", distinct, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range n {
		if seen[fmt.Sprintf("v%d", i)] == 0 {
			t.Fatalf("record v%d never consumed", i)
		}
	}

	// The survivors commit everything: the committed offsets reach the
	// end of every partition.
	hw := latestOffsets(t, ctx, watcher, topic, 0, 1, 2, 3, 4, 5)
	for {
		got, err := committedOffsets(ctx, watcher, group)
		if err == nil {
			done := true
			for p, end := range hw {
				if got[p] != end {
					done = false
				}
			}
			if done {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %v, want the ends %v (last error %v)", got, hw, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stopWatch)
	if err := <-watchErr; err != nil {
		t.Fatal(err)
	}

	// DescribeGroups shows the two survivors, Stable.
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{group}
	dresp, err := dg.RequestWith(ctx, watcher)
	if err != nil {
		t.Fatal(err)
	}
	g := dresp.Groups[0]
	if g.State != "Stable" || len(g.Members) != 2 || g.ProtocolType != "consumer" {
		t.Fatalf("group %s: state %s, %d members, protocol type %q; want Stable, 2, consumer", g.Group, g.State, len(g.Members), g.ProtocolType)
	}
	mu.Lock()
	t.Logf("%d records consumed for %d produced (%d redelivered after the kill)", consumed, n, consumed-n)
	mu.Unlock()
}

// The group APIs' error paths and the admin views of a group, spoken raw.
func TestGroupProtocol(t *testing.T) {
	addr := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := client(t, addr)
	p := client(t, addr, kgo.DefaultProduceTopic("gp"), kgo.AllowAutoTopicCreation())
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	join := func(member string) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = "gp-group", member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
		proto := kmsg.NewJoinGroupRequestProtocol()
		proto.Name, proto.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, proto)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// v4+: an id first, then the join with it.
	r := join("")
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		t.Fatalf("first join: error %d, member %q; want MEMBER_ID_REQUIRED and an id", r.ErrorCode, r.MemberID)
	}
	if u := join("made-up"); u.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("join with an id never handed out: error %d, want UNKNOWN_MEMBER_ID", u.ErrorCode)
	}
	id := r.MemberID
	r = join(id)
	if r.ErrorCode != 0 || r.LeaderID != id || r.Generation != 1 || len(r.Members) != 1 || r.Protocol == nil || *r.Protocol != "range" {
		t.Fatalf("join: %+v", r)
	}

	commit := func(gen int32, member string, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation, req.MemberID = "gp-group", gen, member
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "gp"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	// The generation is forming: commits wait for SyncGroup.
	if code := commit(1, id, 1); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit before sync: error %d, want REBALANCE_IN_PROGRESS", code)
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.Generation, sreq.MemberID = "gp-group", 1, id
	sa := kmsg.NewSyncGroupRequestGroupAssignment()
	sa.MemberID, sa.MemberAssignment = id, []byte("mine")
	sreq.GroupAssignment = append(sreq.GroupAssignment, sa)
	sresp, err := sreq.RequestWith(ctx, cl)
	if err != nil || sresp.ErrorCode != 0 || string(sresp.MemberAssignment) != "mine" {
		t.Fatalf("sync: %v, %+v", err, sresp)
	}
	for _, c := range []struct {
		name   string
		gen    int32
		member string
		want   int16
	}{
		{"stale generation", 0, id, kerr.IllegalGeneration.Code},
		{"unknown member", 1, "nobody", kerr.UnknownMemberID.Code},
		{"no member while the group has one", -1, "", kerr.UnknownMemberID.Code},
		{"the member", 1, id, 0},
	} {
		if code := commit(c.gen, c.member, 1); code != c.want {
			t.Errorf("commit, %s: error %d, want %d", c.name, code, c.want)
		}
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.Generation, hb.MemberID = "gp-group", 1, id
	if resp, err := hb.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("heartbeat: %v, %+v", err, resp)
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"gp-group", "no-such-group"}
	dresp, err := dg.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if g := dresp.Groups[0]; g.State != "Stable" || g.Protocol != "range" || len(g.Members) != 1 || string(g.Members[0].MemberAssignment) != "mine" {
		t.Fatalf("describe: %+v", g)
	}
	if g := dresp.Groups[1]; g.State != "Dead" || g.ErrorCode != 0 {
		t.Fatalf("describe unknown group: %+v", g)
	}
	lg := kmsg.NewPtrListGroupsRequest()
	lresp, err := lg.RequestWith(ctx, cl)
	if err != nil || len(lresp.Groups) != 1 || lresp.Groups[0].Group != "gp-group" || lresp.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("list groups: %v, %+v", err, lresp)
	}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"gp-group"}
	if resp, err := del.RequestWith(ctx, cl); err != nil || resp.Groups[0].ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete a group with members: %v, %+v", err, resp)
	}
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group = "gp-group"
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = id
	lv.Members = append(lv.Members, lm)
	if resp, err := lv.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %v, %+v", err, resp)
	}
	// Empty now: a commit without a member is accepted.
	if code := commit(-1, "", 1); code != 0 {
		t.Fatalf("commit to an empty group: error %d", code)
	}
	if got, err := committedOffsets(ctx, cl, "gp-group"); err != nil || got[0] != 1 {
		t.Fatalf("committed: %v, %v", got, err)
	}
	if resp, err := del.RequestWith(ctx, cl); err != nil || resp.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete an empty group: %v, %+v", err, resp)
	}
	if got, err := committedOffsets(ctx, cl, "gp-group"); err != nil || len(got) != 0 {
		t.Fatalf("committed after delete: %v, %v", got, err)
	}
	if resp, err := del.RequestWith(ctx, cl); err != nil || resp.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete a deleted group: %v, %+v", err, resp)
	}
}

// TestOffsetDelete: kadm's DeleteOffsets (OffsetDelete v0, KIP-496). An
// empty group's offsets of one partition are deleted, the other's kept; an
// unknown group gets GROUP_ID_NOT_FOUND, an empty group id
// INVALID_GROUP_ID, and an unknown partition UNKNOWN_TOPIC_OR_PARTITION. Once a consumer of topic od has joined the
// group, od's offsets are kept (GROUP_SUBSCRIBED_TO_TOPIC) while those of
// od2, which no member reads, are deleted.
func TestOffsetDelete(t *testing.T) {
	addr, _ := startWith(t, "pipelines:\n  - {name: od, partitions: 2}\n  - {name: od2, partitions: 1}\n",
		kafka.Options{GroupInitialRebalanceDelay: 100 * time.Millisecond})
	adm := kadm.NewClient(client(t, addr))
	ctx := ctxFor(t)
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "od", Partition: 0, At: 3, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "od", Partition: 1, At: 4, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "od2", Partition: 0, At: 5, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "odg", os); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	committed := func() map[string]map[int32]int64 {
		t.Helper()
		r, err := adm.FetchOffsets(ctx, "odg")
		if err != nil || r.Error() != nil {
			t.Fatalf("fetch offsets: %v %v", err, r.Error())
		}
		out := map[string]map[int32]int64{}
		r.Each(func(o kadm.OffsetResponse) {
			if out[o.Topic] == nil {
				out[o.Topic] = map[int32]int64{}
			}
			out[o.Topic][o.Partition] = o.At
		})
		return out
	}

	r, err := adm.DeleteOffsets(ctx, "odg", kadm.TopicsSet{"od": {0: {}, 7: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup("od", 0); e != nil {
		t.Fatalf("od/0 of the empty group: %v", e)
	}
	if e, _ := r.Lookup("od", 7); !errors.Is(e, kerr.UnknownTopicOrPartition) {
		t.Fatalf("od/7, no such partition: %v", e)
	}
	if got := committed(); len(got["od"]) != 1 || got["od"][1] != 4 || got["od2"][0] != 5 {
		t.Fatalf("after deleting od/0: %v, want od/1 at 4 and od2/0 at 5", got)
	}
	if _, err := adm.DeleteOffsets(ctx, "no-such-group", kadm.TopicsSet{"od": {0: {}}}); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatalf("an unknown group: %v", err)
	}
	if _, err := adm.DeleteOffsets(ctx, "", kadm.TopicsSet{"od": {0: {}}}); !errors.Is(err, kerr.InvalidGroupID) {
		t.Fatalf("an empty group id: %v", err)
	}

	// A member consuming od joins; od's offsets stay, od2's go.
	cons := client(t, addr, kgo.ConsumerGroup("odg"), kgo.ConsumeTopics("od"), kgo.DisableAutoCommit())
	go func() {
		for ctx.Err() == nil {
			if cons.PollFetches(ctx).IsClientClosed() {
				return
			}
		}
	}()
	for i := 0; ; i++ {
		ds, err := adm.DescribeGroups(ctx, "odg")
		if err == nil && ds["odg"].State == "Stable" {
			break
		}
		if i == 1000 {
			t.Fatalf("the consumer did not join within 10s: %v %+v", err, ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, err = adm.DeleteOffsets(ctx, "odg", kadm.TopicsSet{"od": {1: {}}, "od2": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup("od", 1); !errors.Is(e, kerr.GroupSubscribedToTopic) {
		t.Fatalf("od/1 while a member reads od: %v, want GROUP_SUBSCRIBED_TO_TOPIC", e)
	}
	if e, _ := r.Lookup("od2", 0); e != nil {
		t.Fatalf("od2/0, read by no member: %v", e)
	}
	if got := committed(); len(got["od"]) != 1 || got["od"][1] != 4 || len(got["od2"]) != 0 {
		t.Fatalf("after the second deletion: %v, want od/1 at 4 only", got)
	}
}
