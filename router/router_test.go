package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// testRegistry has five codes: MA=bit 0, SN=1, NG=2, KE=3, GH=4.
func testRegistry(t testing.TB) *jurisdiction.Registry {
	t.Helper()
	r, err := jurisdiction.New([]string{"MA", "SN", "NG", "KE", "GH"}, map[string][]string{"ECOWAS": {"SN", "NG", "GH"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustMask(t testing.TB, r *jurisdiction.Registry, s string) jurisdiction.Mask {
	t.Helper()
	m, err := r.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func hub(t testing.TB, r *jurisdiction.Registry, name, juris string, st HubStatus, deny ...string) Hub {
	return Hub{Name: name, Jurisdiction: juris, Mask: mustMask(t, r, juris), Status: st, Deny: deny}
}

func mustBuild(t testing.TB, version uint64, hubs []Hub, pipelines ...Pipeline) *Table {
	t.Helper()
	tab, err := Build(version, hubs, pipelines)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return tab
}

func TestHubStatus(t *testing.T) {
	var zero HubStatus
	if zero != Up {
		t.Fatalf("zero HubStatus is %v, want up", zero)
	}
	for _, s := range []HubStatus{Up, Draining, Down} {
		got, err := ParseHubStatus(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseHubStatus(%q) = %v, %v", strings.ToUpper(s.String()), got, err)
		}
		text, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back HubStatus
		if err := back.UnmarshalText(text); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %v, %v", text, back, err)
		}
	}
	if got := []string{Up.String(), Draining.String(), Down.String(), HubStatus(7).String()}; !slices.Equal(got, []string{"up", "draining", "down", "status(7)"}) {
		t.Errorf("String = %q", got)
	}
	if _, err := ParseHubStatus("gone"); err == nil || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("ParseHubStatus(gone) error = %v", err)
	}
	if _, err := HubStatus(3).MarshalText(); err == nil {
		t.Error("MarshalText of status 3 succeeded")
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		r    Reason
		name string
		ncn  bool
	}{
		{OK, "ok", false},
		{NoHubInMask, "no_hub_in_mask", true},
		{HubsUnavailable, "hubs_unavailable", true},
		{PolicyDenied, "policy_denied", true},
		{InvalidMask, "invalid_mask", false},
		{InvalidPriority, "invalid_priority", false},
		{Reason(99), "reason(99)", false},
	}
	for _, tt := range tests {
		if tt.r.String() != tt.name || tt.r.NoCompliantHub() != tt.ncn {
			t.Errorf("Reason %d: String %q NoCompliantHub %v; want %q %v", uint8(tt.r), tt.r, tt.r.NoCompliantHub(), tt.name, tt.ncn)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	r := testRegistry(t)
	ma := hub(t, r, "tangier", "MA", Up)
	sn := hub(t, r, "dakar", "SN", Up)
	ok := Pipeline{Name: "payments", Partitions: 2}
	many := make([]Hub, 22)
	for i := range many {
		many[i] = Hub{Name: fmt.Sprintf("h%d", i), Mask: 1}
	}
	tests := []struct {
		name      string
		hubs      []Hub
		pipelines []Pipeline
		want      string
	}{
		{"no hubs", nil, []Pipeline{ok}, "no hubs configured"},
		{"empty hub name", []Hub{{Mask: 1}}, nil, `hub 0: hub name "" is 0 bytes long`},
		{"bad hub name", []Hub{{Name: "tan gier", Mask: 1}}, nil, `hub name "tan gier" has ' ' at byte 3`},
		{"long hub name", []Hub{{Name: strings.Repeat("h", 65), Mask: 1}}, nil, "65 bytes long"},
		{"duplicate hub", []Hub{ma, sn, ma}, nil, `hub name "tangier" is used twice (hubs 0 and 2)`},
		{"zero hub mask", []Hub{{Name: "x"}}, nil, `hub "x": jurisdiction mask is 0`},
		{"bad status", []Hub{{Name: "x", Mask: 1, Status: 3}}, nil, `hub "x": status is 3`},
		{"bad pipeline name", []Hub{ma}, []Pipeline{{Name: "a/b", Partitions: 1}}, `"a/b" has '/'`},
		{"empty pipeline name", []Hub{ma}, []Pipeline{{Partitions: 1}}, "the name is empty"},
		{"duplicate pipeline", []Hub{ma}, []Pipeline{ok, ok}, `pipeline "payments" is defined twice`},
		{"zero partitions", []Hub{ma}, []Pipeline{{Name: "p", Partitions: 0}}, `pipeline "p": partitions is 0; set it between 1 and 1024`},
		{"too many partitions", []Hub{ma}, []Pipeline{{Name: "p", Partitions: 1025}}, "partitions is 1025"},
		{"too many buffers", many, []Pipeline{{Name: "p", Partitions: 1000}}, "22 hubs x 3 lanes x 1000 partitions = 66000 buffers, more than 65535; lower partitions to at most 992"},
		{"bad default priority", []Hub{ma}, []Pipeline{{Name: "p", Partitions: 1, DefaultPriority: 3}}, `pipeline "p": default priority is 3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Build(1, tt.hubs, tt.pipelines)
			if err == nil {
				t.Fatalf("Build succeeded (%d pipelines), want error containing %q", len(tab.Pipelines()), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "router: ") {
				t.Errorf("error %q: errors.Is(ErrInvalidConfig) = %v", err, errors.Is(err, ErrInvalidConfig))
			}
		})
	}
	// The limits themselves are accepted.
	if _, err := Build(1, many[:21], []Pipeline{{Name: "p", Partitions: 1024}}); err != nil {
		// 21 x 3 x 1024 = 64512 <= 65535
		t.Errorf("Build at the limits: %v", err)
	}
}

func TestBuildLayoutAndAccessors(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{
		hub(t, r, "tangier", "MA", Up),
		hub(t, r, "dakar", "SN", Down, "payments"),
		hub(t, r, "lagos", "NG", Draining),
	}
	pipes := []Pipeline{
		{Name: "payments", Partitions: 4, DefaultMask: mustMask(t, r, "MA"), DefaultPriority: event.Medium},
		{Name: "audit", Partitions: 1},
	}
	tab := mustBuild(t, 42, hubs, pipes...)
	if tab.Version() != 42 {
		t.Errorf("Version = %d", tab.Version())
	}
	if got := tab.Pipelines(); !slices.Equal(got, []string{"audit", "payments"}) {
		t.Errorf("Pipelines = %q", got)
	}
	if tab.Pipeline("nope") != nil {
		t.Error("Pipeline(nope) is not nil")
	}
	pr := tab.Pipeline("payments")
	if !reflect.DeepEqual(pr.Spec(), pipes[0]) {
		t.Errorf("Spec = %+v", pr.Spec())
	}
	bufs := pr.Partitions()
	if len(bufs) != 3*3*4 || pr.NumPartitions() != 36 {
		t.Fatalf("%d buffers, NumPartitions %d; want 36", len(bufs), pr.NumPartitions())
	}
	for p, b := range bufs {
		want := int32((b.HubIndex*3+int(b.Lane))*4 + b.Index)
		if b.Partition != int32(p) || want != b.Partition || b.Hub != hubs[b.HubIndex].Name || b.Index >= 4 {
			t.Fatalf("buffer %d = %+v", p, b)
		}
		got, ok := pr.Buffer(int32(p))
		if !ok || got != b {
			t.Fatalf("Buffer(%d) = %+v, %v", p, got, ok)
		}
	}
	// Spot checks: lagos (hub 2), critical (lane 2), index 3 = (2*3+2)*4+3 = 35.
	if b := bufs[35]; b.Hub != "lagos" || b.Lane != event.Critical || b.Index != 3 {
		t.Errorf("partition 35 = %+v", b)
	}
	if b := bufs[4]; b.Hub != "tangier" || b.Lane != event.Medium || b.Index != 0 {
		t.Errorf("partition 4 = %+v", b)
	}
	for _, p := range []int32{-1, 36, 1 << 30} {
		if _, ok := pr.Buffer(p); ok {
			t.Errorf("Buffer(%d) found", p)
		}
	}
	if !pr.Allowed(0) || pr.Allowed(1) || !pr.Allowed(2) || pr.Allowed(3) || pr.Allowed(-1) {
		t.Error("Allowed is wrong")
	}
	if !tab.Pipeline("audit").Allowed(1) {
		t.Error("dakar denies audit")
	}
	// Copies: mutating results does not change the table.
	bufs[0].Hub = "x"
	if b, _ := pr.Buffer(0); b.Hub != "tangier" {
		t.Error("Partitions returned the table's slice")
	}
	hs := tab.Hubs()
	hs[1].Deny[0] = "x"
	hs[0].Name = "x"
	if tab.Hubs()[1].Deny[0] != "payments" || tab.Hubs()[0].Name != "tangier" {
		t.Error("Hubs returned the table's data")
	}
}

func TestBuildCopiesInput(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{hub(t, r, "tangier", "MA", Up, "payments"), hub(t, r, "dakar", "SN", Up)}
	tab := mustBuild(t, 1, hubs, Pipeline{Name: "payments", Partitions: 1})
	hubs[0].Deny[0] = "other"
	hubs[0].Name = "renamed"
	hubs[1].Status = Down
	got := tab.Hubs()
	if got[0].Name != "tangier" || got[0].Deny[0] != "payments" || got[1].Status != Up {
		t.Fatalf("table changed with its input: %+v", got)
	}
	if p, reason := tab.Pipeline("payments").Route(mustMask(t, r, "MA"), event.Low, nil, 0); reason != PolicyDenied {
		t.Fatalf("Route = %d, %v; want policy_denied", p, reason)
	}
}

// TestEligibility checks, case by case, the set of buffers Route may choose
// (every keyless choice over a full cycle of spread, and many keyed
// choices) and the reason of a refusal.
func TestEligibility(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{
		hub(t, r, "tangier", "MA", Up),               // 0
		hub(t, r, "dakhla", "MA", Draining),          // 1
		hub(t, r, "dakar", "SN", Up, "payments"),     // 2
		hub(t, r, "lagos", "NG", Down),               // 3
		hub(t, r, "nairobi", "KE", Up, "x", "audit"), // 4
		hub(t, r, "accra", "GH", Down, "payments"),   // 5
	}
	const parts = 2
	tab := mustBuild(t, 1, hubs, Pipeline{Name: "payments", Partitions: parts}, Pipeline{Name: "audit", Partitions: parts})
	tests := []struct {
		name     string
		pipeline string
		mask     string // parsed by the registry; "" = 0
		prio     event.Priority
		hubs     []string // eligible hubs, in config order
		reason   Reason   // when hubs is empty
	}{
		{"mask selects one up hub", "payments", "MA", event.Low, []string{"tangier"}, OK},
		{"lane follows priority", "payments", "MA", event.Critical, []string{"tangier"}, OK},
		{"draining hub excluded, up hub of same code kept", "payments", "MA", event.Medium, []string{"tangier"}, OK},
		{"policy excludes dakar", "payments", "MA,SN", event.Low, []string{"tangier"}, OK},
		{"policy allows dakar for audit", "audit", "MA,SN", event.Low, []string{"tangier", "dakar"}, OK},
		{"policy excludes nairobi for audit", "audit", "*", event.Critical, []string{"tangier", "dakar"}, OK},
		{"wide mask", "payments", "*", event.Low, []string{"tangier", "nairobi"}, OK},
		{"group mask", "audit", "ECOWAS", event.Medium, []string{"dakar"}, OK},
		{"only denying hub up", "payments", "SN", event.Low, nil, PolicyDenied},
		{"denying up hub and down hub", "payments", "SN,NG", event.Low, nil, PolicyDenied},
		{"only down hub", "payments", "NG", event.Low, nil, HubsUnavailable},
		{"down hub that also denies", "payments", "GH", event.Low, nil, HubsUnavailable},
		{"down and draining", "payments", "NG,GH", event.Critical, nil, HubsUnavailable},
		{"no hub in mask", "payments", "bit9", event.Low, nil, NoHubInMask},
		{"zero mask", "payments", "", event.Low, nil, InvalidMask},
		{"zero mask beats bad priority", "payments", "", 7, nil, InvalidMask},
		{"bad priority", "payments", "MA", 3, nil, InvalidPriority},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mask jurisdiction.Mask
			switch tt.mask {
			case "":
			case "bit9":
				mask = 1 << 9
			default:
				mask = mustMask(t, r, tt.mask)
			}
			routes := tab.Pipeline(tt.pipeline)
			var want []int32
			for _, name := range tt.hubs {
				hi := slices.IndexFunc(hubs, func(h Hub) bool { return h.Name == name })
				for i := 0; i < parts; i++ {
					want = append(want, int32((hi*3+int(tt.prio))*parts+i))
				}
			}
			// Keyless over one full cycle: exactly the eligible set, in
			// partition order.
			var got []int32
			for s := uint64(0); s < uint64(max(len(want), 1)); s++ {
				p, reason := routes.Route(mask, tt.prio, nil, s)
				if len(want) == 0 {
					if p != -1 || reason != tt.reason {
						t.Fatalf("keyless Route = %d, %v; want -1, %v", p, reason, tt.reason)
					}
					break
				}
				if reason != OK {
					t.Fatalf("keyless Route(spread %d) = %d, %v", s, p, reason)
				}
				got = append(got, p)
			}
			if len(want) > 0 && !slices.Equal(got, want) {
				t.Fatalf("keyless choices %v, want %v", got, want)
			}
			// Keyed: every choice eligible, and every eligible buffer won
			// by some key.
			hit := map[int32]bool{}
			for k := 0; k < 400; k++ {
				p, reason := routes.Route(mask, tt.prio, fmt.Appendf(nil, "key-%d", k), 0)
				if len(want) == 0 {
					if p != -1 || reason != tt.reason {
						t.Fatalf("keyed Route = %d, %v; want -1, %v", p, reason, tt.reason)
					}
					return
				}
				if reason != OK || !slices.Contains(want, p) {
					t.Fatalf("keyed Route = %d, %v; want one of %v", p, reason, want)
				}
				hit[int32(p)] = true
				b, _ := routes.Buffer(p)
				if !routes.Eligible(b, mask, tt.prio) {
					t.Fatalf("Eligible(%+v) = false for a chosen buffer", b)
				}
			}
			if len(hit) != len(want) {
				t.Fatalf("keys reached %d of %d eligible buffers", len(hit), len(want))
			}
		})
	}
}

func TestExplain(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{
		hub(t, r, "tangier", "MA", Up),
		hub(t, r, "dakar", "SN", Up, "payments"),
		hub(t, r, "lagos", "NG", Down),
		{Name: "star", Mask: r.All(), Status: Draining}, // no Jurisdiction text: shown as *
	}
	tab := mustBuild(t, 3, hubs, Pipeline{Name: "payments", Partitions: 1})
	vs, err := tab.Explain("payments", mustMask(t, r, "MA"), event.Critical, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 12 {
		t.Fatalf("%d verdicts, want 12", len(vs))
	}
	want := []string{
		"lane low, event is critical",
		"lane medium, event is critical",
		"eligible",
		"hub dakar (SN) not in mask MA; policy of hub dakar denies pipeline payments; lane low, event is critical",
		"hub dakar (SN) not in mask MA; policy of hub dakar denies pipeline payments; lane medium, event is critical",
		"hub dakar (SN) not in mask MA; policy of hub dakar denies pipeline payments",
		"hub lagos (NG) not in mask MA; hub lagos is down; lane low, event is critical",
		"hub lagos (NG) not in mask MA; hub lagos is down; lane medium, event is critical",
		"hub lagos (NG) not in mask MA; hub lagos is down",
		"hub star is draining; lane low, event is critical",
		"hub star is draining; lane medium, event is critical",
		"hub star is draining",
	}
	routes := tab.Pipeline("payments")
	for i, v := range vs {
		if v.Why != want[i] || v.Eligible != (want[i] == "eligible") || v.Buffer.Partition != int32(i) {
			t.Errorf("verdict %d = %+v\nwant Why %q", i, v, want[i])
		}
		if routes.Eligible(v.Buffer, mustMask(t, r, "MA"), event.Critical) != v.Eligible {
			t.Errorf("verdict %d disagrees with Eligible", i)
		}
	}
	// Without a registry masks are shown in hex, and a hub without
	// Jurisdiction text by its mask.
	vs, err = tab.Explain("payments", mustMask(t, r, "SN"), event.Low, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := vs[0].Why; got != "hub tangier (MA) not in mask 0x2" {
		t.Errorf("Why = %q", got)
	}
	vs, _ = tab.Explain("payments", mustMask(t, r, "KE"), event.Low, nil)
	if got := vs[9].Why; got != "hub star is draining" {
		t.Errorf("Why = %q", got)
	}
	tab2 := mustBuild(t, 1, []Hub{{Name: "star", Mask: r.All()}, hub(t, r, "dakar", "SN", Up)}, Pipeline{Name: "p", Partitions: 1})
	vs, _ = tab2.Explain("p", mustMask(t, r, "MA"), event.Low, nil)
	if vs[0].Why != "eligible" || vs[3].Why != "hub dakar (SN) not in mask 0x1" {
		t.Errorf("Why = %q, %q", vs[0].Why, vs[3].Why)
	}
	tab3 := mustBuild(t, 1, []Hub{{Name: "star", Mask: r.All()}}, Pipeline{Name: "p", Partitions: 1})
	vs, _ = tab3.Explain("p", 1<<9, event.Low, r)
	if vs[0].Why != "hub star (*) not in mask bit9" {
		t.Errorf("Why = %q", vs[0].Why)
	}

	for _, tt := range []struct {
		pipeline string
		mask     jurisdiction.Mask
		prio     event.Priority
		want     string
	}{
		{"nope", 1, event.Low, `unknown pipeline "nope" in routing table version 3; known pipelines: payments`},
		{"payments", 0, event.Low, "the mask is 0"},
		{"payments", 1, 9, "priority 9 is invalid"},
	} {
		if _, err := tab.Explain(tt.pipeline, tt.mask, tt.prio, r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Explain(%q, %#x, %d) error = %v, want %q", tt.pipeline, uint64(tt.mask), tt.prio, err, tt.want)
		}
	}
}

// reference routes by the definitions alone, buffer by buffer.
func reference(hubs []Hub, p Pipeline, mask jurisdiction.Mask, prio event.Priority, key []byte, spread uint64) (int32, Reason) {
	if mask == 0 {
		return -1, InvalidMask
	}
	if prio > event.Critical {
		return -1, InvalidPriority
	}
	layout := p.Layout
	if layout == nil {
		layout = StandardLayout(len(hubs), p.Partitions)
	}
	// The lane: the event's, else the default priority's, else the lowest
	// the pipeline has.
	has := func(l event.Priority) bool {
		return slices.ContainsFunc(layout, func(s Slot) bool { return s.Lane == l })
	}
	lane := prio
	if !has(lane) {
		lane = p.DefaultPriority
		if !has(lane) {
			for lane = event.Low; !has(lane); lane++ {
			}
		}
	}
	type cand struct {
		part int32
		seed uint64
	}
	var eligible []cand
	inMask, inMaskUp, allowed := false, false, false
	for hi, h := range hubs {
		if h.Mask&mask == 0 {
			continue
		}
		inMask = true
		if h.Status != Up {
			continue
		}
		inMaskUp = true
		if slices.Contains(h.Deny, p.Name) {
			continue
		}
		allowed = true
		index := 0
		for part, sl := range layout {
			if sl.Hub == hi && sl.Lane == lane {
				eligible = append(eligible, cand{int32(part), BufferSeed(h.Name, index)})
				index++
			}
		}
	}
	switch {
	case !inMask:
		return -1, NoHubInMask
	case !inMaskUp:
		return -1, HubsUnavailable
	case !allowed:
		return -1, PolicyDenied
	case len(eligible) == 0:
		return -1, NoBufferInMask
	}
	if key == nil {
		return eligible[spread%uint64(len(eligible))].part, OK
	}
	h := HashKey(key)
	best := eligible[0]
	for _, c := range eligible[1:] {
		if Weight(h, c.seed) > Weight(h, best.seed) {
			best = c
		}
	}
	return best.part, OK
}

// randomConfig returns 2 to 6 hubs with random single-code masks from a
// 5-code registry, sometimes a "*" hub, random statuses and policies, and
// pipelines "p" and "q".
func randomConfig(rng *rand.Rand) ([]Hub, []Pipeline) {
	names := []string{"tangier", "dakhla", "dakar", "lagos", "nairobi", "accra", "rabat", "kano"}
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	hubs := make([]Hub, 2+rng.IntN(5))
	for i := range hubs {
		h := Hub{Name: names[i], Mask: 1 << rng.IntN(5)}
		if rng.IntN(6) == 0 {
			h.Mask = 1<<5 - 1 // "*"
		}
		switch x := rng.IntN(10); {
		case x < 6:
			h.Status = Up
		case x < 8:
			h.Status = Draining
		default:
			h.Status = Down
		}
		if rng.IntN(4) == 0 {
			h.Deny = append(h.Deny, "p")
		}
		if rng.IntN(4) == 0 {
			h.Deny = append(h.Deny, "q")
		}
		hubs[i] = h
	}
	pipes := []Pipeline{{Name: "p", Partitions: 1 + rng.IntN(5)}, {Name: "q", Partitions: 1 + rng.IntN(3)}}
	// "r" is laid out explicitly: any count, any hubs and lanes (often
	// missing some), as Kafka-created or grown pipelines are.
	r := Pipeline{Name: "r", DefaultPriority: event.Priority(rng.IntN(3))}
	lanes := 1 + rng.IntN(3)
	for range 1 + rng.IntN(12) {
		r.Layout = append(r.Layout, Slot{Hub: rng.IntN(len(hubs)), Lane: event.Priority(rng.IntN(lanes))})
	}
	pipes = append(pipes, r)
	return hubs, pipes
}

func randomKey(rng *rand.Rand) []byte {
	switch rng.IntN(10) {
	case 0, 1, 2:
		return nil
	case 3:
		return []byte{}
	}
	k := make([]byte, rng.IntN(48))
	for i := range k {
		k[i] = byte(rng.Uint32())
	}
	return k
}

func randomMask(rng *rand.Rand) jurisdiction.Mask {
	switch rng.IntN(20) {
	case 0:
		return 0
	case 1:
		return jurisdiction.Mask(rng.Uint64()) // bits outside the registry too
	}
	return jurisdiction.Mask(rng.IntN(1 << 5))
}

func TestRouteMatchesReference(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	refusals := map[Reason]int{}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x5e45e))
		hubs, pipes := randomConfig(rng)
		tab := mustBuild(t, uint64(seed), hubs, pipes...)
		for range 200 {
			p := pipes[rng.IntN(len(pipes))]
			mask := randomMask(rng)
			prio := event.Priority(rng.IntN(4))
			if rng.IntN(20) == 0 {
				prio = event.Priority(rng.Uint32())
			}
			key := randomKey(rng)
			spread := rng.Uint64()
			routes := tab.Pipeline(p.Name)
			got, reason := routes.Route(mask, prio, key, spread)
			want, wantReason := reference(hubs, p, mask, prio, key, spread)
			if got != want || reason != wantReason {
				t.Fatalf("seed %d: hubs %+v, pipeline %+v, mask %#x, prio %d, key %x (nil %v), spread %d:\nRoute = %d, %v; reference = %d, %v",
					seed, hubs, p, uint64(mask), prio, key, key == nil, spread, got, reason, want, wantReason)
			}
			if reason == OK {
				b, ok := routes.Buffer(got)
				if !ok || !routes.Eligible(b, mask, prio) {
					t.Fatalf("seed %d: chose %d (%+v), which is not eligible", seed, got, b)
				}
			} else {
				refusals[reason]++
			}
		}
	}
	// The random configs must exercise every refusal.
	for _, r := range []Reason{NoHubInMask, HubsUnavailable, PolicyDenied, NoBufferInMask, InvalidMask, InvalidPriority} {
		if refusals[r] == 0 {
			t.Errorf("no refusal with reason %v in %d seeds", r, seeds)
		}
	}
	t.Logf("refusals: %v", refusals)
}

// placement is where a key went: the (hub, index) of its buffer.
type placement struct {
	hub   string
	index int
}

// placeKeys routes the keys customer-0 .. customer-(n-1) and returns their
// placements.
func placeKeys(t testing.TB, tab *Table, pipeline string, mask jurisdiction.Mask, prio event.Priority, n int) []placement {
	t.Helper()
	routes := tab.Pipeline(pipeline)
	out := make([]placement, n)
	for k := range out {
		p, reason := routes.Route(mask, prio, fmt.Appendf(nil, "customer-%d", k), 0)
		if reason != OK {
			t.Fatalf("key %d: %v", k, reason)
		}
		b, _ := routes.Buffer(p)
		if b.Lane != prio {
			t.Fatalf("key %d in lane %v", k, b.Lane)
		}
		out[k] = placement{b.Hub, b.Index}
	}
	return out
}

func fiveHubs(t testing.TB, r *jurisdiction.Registry) []Hub {
	return []Hub{
		hub(t, r, "tangier", "MA", Up),
		hub(t, r, "dakhla", "MA", Up),
		hub(t, r, "dakar", "SN", Up),
		hub(t, r, "lagos", "NG", Up),
		hub(t, r, "nairobi", "KE", Up),
	}
}

// TestRendezvousStability: when a hub leaves the eligible set (down,
// draining, policy, or outside the event's mask), only the keys on its
// buffers move, and they spread over all the remaining hubs; when it comes
// back, exactly those keys return.
func TestRendezvousStability(t *testing.T) {
	r := testRegistry(t)
	const keys = 20000
	hubs := fiveHubs(t, r)
	pipe := Pipeline{Name: "payments", Partitions: 4}
	all := r.All()
	before := placeKeys(t, mustBuild(t, 1, hubs, pipe), "payments", all, event.Medium, keys)

	check := func(name string, after []placement, gone string) {
		t.Helper()
		moved, stayed := 0, 0
		dest := map[string]int{}
		for k := range before {
			switch {
			case before[k].hub == gone:
				if after[k].hub == gone {
					t.Fatalf("%s: key %d still on %s", name, k, gone)
				}
				moved++
				dest[after[k].hub]++
			case after[k] != before[k]:
				t.Fatalf("%s: key %d moved from %v to %v though its buffer stayed eligible", name, k, before[k], after[k])
			default:
				stayed++
			}
		}
		// About 1/5 of the keys were on the hub that left.
		if moved < keys/5*8/10 || moved > keys/5*12/10 {
			t.Errorf("%s: %d of %d keys were on %s, want about %d", name, moved, keys, gone, keys/5)
		}
		if len(dest) != 4 {
			t.Errorf("%s: moved keys went to %v, want all 4 remaining hubs", name, dest)
		}
		for h, n := range dest {
			if n < moved/4*7/10 {
				t.Errorf("%s: only %d of %d moved keys went to %s", name, n, moved, h)
			}
		}
	}
	for _, change := range []struct {
		name string
		edit func(*Hub)
	}{
		{"down", func(h *Hub) { h.Status = Down }},
		{"draining", func(h *Hub) { h.Status = Draining }},
		{"policy", func(h *Hub) { h.Deny = []string{"payments"} }},
	} {
		changed := slices.Clone(hubs)
		change.edit(&changed[2])
		after := placeKeys(t, mustBuild(t, 2, changed, pipe), "payments", all, event.Medium, keys)
		check(change.name, after, "dakar")
		// And back: every key returns to where it was.
		again := placeKeys(t, mustBuild(t, 3, hubs, pipe), "payments", all, event.Medium, keys)
		if !slices.Equal(again, before) {
			t.Fatalf("%s: placements differ after the hub came back", change.name)
		}
	}
	// An event mask without SN excludes dakar just the same.
	noSN := all &^ mustMask(t, r, "SN")
	check("mask", placeKeys(t, mustBuild(t, 4, hubs, pipe), "payments", noSN, event.Medium, keys), "dakar")

	// The lane does not enter the seed: a key sits on the same (hub,
	// index) in every lane.
	if !slices.Equal(placeKeys(t, mustBuild(t, 5, hubs, pipe), "payments", all, event.Critical, keys), before) {
		t.Error("placements differ between lanes")
	}
}

// TestRendezvousSingleBuffer: with one buffer per hub, removing one buffer
// moves only its keys.
func TestRendezvousSingleBuffer(t *testing.T) {
	r := testRegistry(t)
	hubs := fiveHubs(t, r)
	pipe := Pipeline{Name: "p", Partitions: 1}
	before := placeKeys(t, mustBuild(t, 1, hubs, pipe), "p", r.All(), event.Low, 5000)
	for gone := range hubs {
		changed := slices.Clone(hubs)
		changed[gone].Status = Down
		after := placeKeys(t, mustBuild(t, 2, changed, pipe), "p", r.All(), event.Low, 5000)
		for k := range before {
			if before[k].hub != hubs[gone].Name && after[k] != before[k] {
				t.Fatalf("hub %s down: key %d moved from %v to %v", hubs[gone].Name, k, before[k], after[k])
			}
		}
	}
}

// TestRendezvousPartitionGrowth: raising Partitions moves keys only onto
// the new buffers.
func TestRendezvousPartitionGrowth(t *testing.T) {
	r := testRegistry(t)
	hubs := fiveHubs(t, r)
	before := placeKeys(t, mustBuild(t, 1, hubs, Pipeline{Name: "p", Partitions: 4}), "p", r.All(), event.Low, 10000)
	after := placeKeys(t, mustBuild(t, 2, hubs, Pipeline{Name: "p", Partitions: 6}), "p", r.All(), event.Low, 10000)
	moved := 0
	for k := range before {
		if after[k] != before[k] {
			moved++
			if after[k].index < 4 {
				t.Fatalf("key %d moved from %v to %v, an old buffer", k, before[k], after[k])
			}
		}
	}
	// 10 of 30 buffers are new: about a third of the keys move.
	if moved < 2800 || moved > 3900 {
		t.Errorf("%d of 10000 keys moved, want about 3333", moved)
	}
}

// TestKeyedRoutingIsProcessIndependent: two independently built tables, even
// with the hubs in another order and other pipelines beside, place every
// key on the same (hub, index); and a few placements are pinned so that a
// change of hash or seed, which would move stored keys, fails here.
func TestKeyedRoutingIsProcessIndependent(t *testing.T) {
	r := testRegistry(t)
	hubs := fiveHubs(t, r)
	a := mustBuild(t, 1, hubs, Pipeline{Name: "payments", Partitions: 4})
	reversed := slices.Clone(hubs)
	slices.Reverse(reversed)
	b := mustBuild(t, 99, reversed, Pipeline{Name: "other", Partitions: 7}, Pipeline{Name: "payments", Partitions: 4, DefaultPriority: event.Critical})
	pa := placeKeys(t, a, "payments", r.All(), event.Low, 5000)
	pb := placeKeys(t, b, "payments", r.All(), event.Low, 5000)
	if !slices.Equal(pa, pb) {
		t.Fatal("two tables of the same hubs place keys differently")
	}

	// Computed independently, in Python with the reference C XXH64
	// (libxxhash): argmax over hub#index of fmix64(XXH64(key) ^
	// XXH64("hub#index")).
	pinned := []placement{
		{"lagos", 3}, {"dakar", 3}, {"tangier", 1}, {"dakar", 2}, {"dakhla", 2}, {"dakhla", 3},
	}
	if got := pa[:len(pinned)]; !slices.Equal(got, pinned) {
		t.Errorf("placements of customer-0.. = %v, want %v (a changed hash moves stored keys: keep the contract)", got, pinned)
	}
}

func TestKeylessSpreadIsEven(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{hub(t, r, "tangier", "MA", Up), hub(t, r, "dakar", "SN", Up), hub(t, r, "lagos", "NG", Down), hub(t, r, "accra", "GH", Up)}
	tab := mustBuild(t, 1, hubs, Pipeline{Name: "p", Partitions: 4})
	routes := tab.Pipeline("p")
	mask := mustMask(t, r, "MA,SN,NG")
	const eligible = 8 // tangier and dakar, 4 each
	// A counter: exact round robin.
	counts := map[int32]int{}
	for s := uint64(0); s < 100*eligible; s++ {
		p, reason := routes.Route(mask, event.Medium, nil, s)
		if reason != OK {
			t.Fatal(reason)
		}
		counts[p]++
	}
	if len(counts) != eligible {
		t.Fatalf("counter spread reached %d buffers, want %d", len(counts), eligible)
	}
	for p, n := range counts {
		if n != 100 {
			t.Errorf("counter spread: partition %d got %d, want 100", p, n)
		}
	}
	// Random spreads and random keys: within 5% of the mean (the standard
	// deviation is about 1%).
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 80000
	for _, keyed := range []bool{false, true} {
		clear(counts)
		key := make([]byte, 12)
		for range n {
			var k []byte
			if keyed {
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				k = key
			}
			p, _ := routes.Route(mask, event.Medium, k, rng.Uint64())
			counts[p]++
		}
		if len(counts) != eligible {
			t.Fatalf("keyed %v: reached %d buffers, want %d", keyed, len(counts), eligible)
		}
		for p, c := range counts {
			if c < n/eligible*95/100 || c > n/eligible*105/100 {
				t.Errorf("keyed %v: partition %d got %d of %d, want about %d", keyed, p, c, n, n/eligible)
			}
		}
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	r := testRegistry(t)
	tab := mustBuild(t, 1, fiveHubs(t, r), Pipeline{Name: "payments", Partitions: 4})
	var h Holder
	h.Store(tab)
	key := []byte("customer-12345")
	mask := r.All()
	var spread uint64
	allocs := testing.AllocsPerRun(1000, func() {
		routes := h.Load().Pipeline("payments")
		routes.Route(mask, event.Critical, key, 0)
		routes.Route(mask, event.Low, nil, spread)
		routes.Route(mustMaskNoAlloc(r), event.Low, nil, spread)
		routes.Buffer(3)
		spread++
	})
	if allocs != 0 {
		t.Fatalf("routing allocates %v times per run", allocs)
	}
}

// mustMaskNoAlloc returns a mask with no hub (bit 9) without allocating.
func mustMaskNoAlloc(*jurisdiction.Registry) jurisdiction.Mask { return 1 << 9 }

func TestHolder(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatal("zero Holder holds a table")
	}
	r := testRegistry(t)
	hubs := []Hub{hub(t, r, "tangier", "MA", Up)}
	t5 := mustBuild(t, 5, hubs)
	t4 := mustBuild(t, 4, hubs)
	t6 := mustBuild(t, 6, hubs)
	if !h.StoreNewer(t5) || h.Load() != t5 {
		t.Fatal("StoreNewer into an empty holder failed")
	}
	if h.StoreNewer(t4) || h.StoreNewer(mustBuild(t, 5, hubs)) || h.Load() != t5 {
		t.Fatal("StoreNewer replaced a table by an older or equal version")
	}
	if !h.StoreNewer(t6) || h.Load() != t6 {
		t.Fatal("StoreNewer refused a newer table")
	}
	h.Store(t4)
	if h.Load() != t4 {
		t.Fatal("Store did not replace")
	}
}

// TestHolderConcurrent swaps tables while readers route; run with -race.
func TestHolderConcurrent(t *testing.T) {
	r := testRegistry(t)
	base := fiveHubs(t, r)
	pipe := Pipeline{Name: "payments", Partitions: 2}
	var h Holder
	h.Store(mustBuild(t, 0, base, pipe))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 2 {
		wg.Go(func() {
			key := fmt.Appendf(nil, "k%d", g)
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tab := h.Load()
				routes := tab.Pipeline("payments")
				p, reason := routes.Route(r.All(), event.Low, key, i)
				if reason != OK {
					t.Errorf("version %d: %v", tab.Version(), reason)
					return
				}
				if b, _ := routes.Buffer(p); !routes.Eligible(b, r.All(), event.Low) {
					t.Errorf("version %d: ineligible %+v", tab.Version(), b)
					return
				}
			}
		})
	}
	for v := uint64(1); v <= 200; v++ {
		hubs := slices.Clone(base)
		hubs[v%5].Status = Down
		h.StoreNewer(mustBuild(t, v, hubs, pipe))
	}
	close(stop)
	wg.Wait()
	if h.Load().Version() != 200 {
		t.Errorf("final version %d", h.Load().Version())
	}
}

// With and Without give the table Build gives for the same pipelines: the
// same names and, for every pipeline, the same routes.
func TestWithWithout(t *testing.T) {
	r := testRegistry(t)
	hubs := []Hub{hub(t, r, "tangier", "MA", Up), hub(t, r, "dakar", "SN", Up, "b")}
	a := Pipeline{Name: "a", Partitions: 2}
	b := Pipeline{Name: "b", Layout: []Slot{{Hub: 1, Lane: event.Critical}, {Hub: 0}, {Hub: 0}}, DefaultPriority: event.Critical}
	c := Pipeline{Name: "c", Partitions: 1}
	want := mustBuild(t, 1, hubs, a, b)
	got, err := mustBuild(t, 1, hubs, a, c).With(2, b)
	if err != nil {
		t.Fatal(err)
	}
	got = got.Without(3, "c")
	if !slices.Equal(got.Pipelines(), want.Pipelines()) || got.Version() != 3 {
		t.Fatalf("names %v (version %d), want %v", got.Pipelines(), got.Version(), want.Pipelines())
	}
	for _, name := range want.Pipelines() {
		if !reflect.DeepEqual(got.Pipeline(name), want.Pipeline(name)) {
			t.Fatalf("pipeline %s: routes differ:\n%+v\n%+v", name, got.Pipeline(name), want.Pipeline(name))
		}
	}
	if _, err := want.With(4, Pipeline{Name: "bad", Partitions: 0}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("With of an invalid pipeline: %v", err)
	}
}
