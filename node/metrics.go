package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/seglog"
)

// Metrics are the node's Prometheus collectors (prefix sense_, base units).
type Metrics struct {
	Registry       *prometheus.Registry
	eventsIn       *prometheus.CounterVec
	bytesIn        *prometheus.CounterVec
	shedTotal      *prometheus.CounterVec
	droppedTotal   *prometheus.CounterVec
	produceLatency prometheus.Histogram
	appendLatency  prometheus.Histogram
	fsyncLatency   *prometheus.HistogramVec
	queueBytes     prometheus.GaugeFunc
	// laneDelay observes each request's queueing delay, by lane.
	laneDelay [3]prometheus.Observer

	compactRuns     *prometheus.CounterVec
	compactBefore   *prometheus.CounterVec
	compactAfter    *prometheus.CounterVec
	compactRemoved  *prometheus.CounterVec
	compactDuration *prometheus.HistogramVec
}

func newMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.eventsIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_events_in_total", Help: "Events stored, by pipeline, hub and priority.",
	}, []string{"pipeline", "hub", "priority"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_bytes_in_total", Help: "Record-batch bytes stored, by pipeline, hub and priority.",
	}, []string{"pipeline", "hub", "priority"})
	m.shedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_events_shed_total", Help: "Events refused with OVERLOADED, by pipeline, priority and reason (bytes: the ingress memory budget past its level; delay: the lane's queueing delay above router.target_delay).",
	}, []string{"pipeline", "priority", "reason"})
	m.droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_events_dropped_total", Help: "Events refused before storage, by pipeline and reason.",
	}, []string{"pipeline", "reason"})
	buckets := prometheus.ExponentialBuckets(50e-6, 2, 16) // 50 us .. 1.6 s
	m.produceLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sense_produce_latency_seconds", Help: "Time to handle a produce request, durable acknowledgement included.", Buckets: buckets,
	})
	m.appendLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sense_append_latency_seconds", Help: "Time to append one batch to a buffer, fsync under the durability policy included.", Buckets: buckets,
	})
	m.fsyncLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sense_fsync_latency_seconds", Help: "Duration of one group-commit fdatasync of a buffer's segment, by the buffer's lane.", Buckets: buckets,
	}, []string{"priority"})
	m.compactRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_compaction_runs_total", Help: "Compaction passes over a buffer's sealed segments, by pipeline and result (ok, error).",
	}, []string{"pipeline", "result"})
	m.compactBefore = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_compaction_bytes_before_total", Help: "Bytes of the segments compaction replaced, by pipeline.",
	}, []string{"pipeline"})
	m.compactAfter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_compaction_bytes_after_total", Help: "Bytes of the segments that replaced them, by pipeline.",
	}, []string{"pipeline"})
	m.compactRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sense_compaction_records_removed_total", Help: "Records compaction removed (superseded, or tombstones past delete.retention.ms), by pipeline.",
	}, []string{"pipeline"})
	m.compactDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sense_compaction_duration_seconds", Help: "Duration of one compaction pass over a buffer, by pipeline.",
		Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10), // 1 ms .. 4.4 min
	}, []string{"pipeline"})
	m.Registry.MustRegister(m.eventsIn, m.bytesIn, m.shedTotal, m.droppedTotal, m.produceLatency, m.appendLatency, m.fsyncLatency,
		m.compactRuns, m.compactBefore, m.compactAfter, m.compactRemoved, m.compactDuration)
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) stored(pipeline, hub string, p event.Priority, events, bytes int) {
	m.eventsIn.WithLabelValues(pipeline, hub, p.String()).Add(float64(events))
	m.bytesIn.WithLabelValues(pipeline, hub, p.String()).Add(float64(bytes))
}

// compacted returns the seglog.Options.ObserveCompaction of a buffer of
// pipeline.
func (m *Metrics) compacted(pipeline string) func(seglog.CompactStats, error) {
	return func(st seglog.CompactStats, err error) { m.Compacted(pipeline, st, err) }
}

// Compacted counts one compaction pass over a buffer of pipeline.
func (m *Metrics) Compacted(pipeline string, st seglog.CompactStats, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.compactRuns.WithLabelValues(pipeline, res).Inc()
	m.compactBefore.WithLabelValues(pipeline).Add(float64(st.BytesBefore))
	m.compactAfter.WithLabelValues(pipeline).Add(float64(st.BytesAfter))
	m.compactRemoved.WithLabelValues(pipeline).Add(float64(st.Removed))
	m.compactDuration.WithLabelValues(pipeline).Observe(st.Duration.Seconds())
}

// Reasons for shedding, the reason label of sense_events_shed_total.
const (
	shedBytes = "bytes"
	shedDelay = "delay"
)

func (m *Metrics) shed(pipeline string, p event.Priority, reason string, events int) {
	m.shedTotal.WithLabelValues(pipeline, p.String(), reason).Add(float64(events))
}

func (m *Metrics) dropped(pipeline, reason string) {
	m.droppedTotal.WithLabelValues(pipeline, reason).Inc()
}

// watchFiles exports the segment-file cache's open files and evictions.
func (m *Metrics) watchFiles(f *seglog.Files) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sense_storage_open_files", Help: "Segment files the node's logs hold open (storage.max_open_files bounds the idle ones).",
		}, func() float64 { return float64(f.Stats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sense_storage_file_evictions_total", Help: "Segment files closed to stay within storage.max_open_files (reopened on their next use).",
		}, func() float64 { return float64(f.Stats().Evictions) }),
	)
}

// watchBudget exports the bytes held by the ingress budget.
func (m *Metrics) watchBudget(b *budget) {
	m.queueBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sense_ingress_bytes", Help: "Ingress bytes held in memory, waiting to be stored (the router queue depth).",
	}, func() float64 { return float64(b.Used()) })
	m.Registry.MustRegister(m.queueBytes)
}

// watchLanes exports the lanes' queueing delay, shedding time and admitted
// fraction.
func (m *Metrics) watchLanes(l *lanes) {
	delay := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sense_lane_queue_delay_seconds", Help: "Time a produce request waited, from being read to the start of its append, by lane (its highest priority).",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 18), // 10 us .. 1.3 s
	}, []string{"priority"})
	m.Registry.MustRegister(delay)
	for _, p := range []event.Priority{event.Low, event.Medium, event.Critical} {
		m.laneDelay[p] = delay.WithLabelValues(p.String())
		if p == event.Critical {
			continue // never shed
		}
		m.Registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "sense_lane_shedding_seconds_total", Help: "Time the lane spent refusing part of its requests because of its queueing delay.",
				ConstLabels: prometheus.Labels{"priority": p.String()},
			}, func() float64 { return l.stats(p, time.Now()).Shedding.Seconds() }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sense_lane_admitted_ratio", Help: "Fraction of the lane's produce requests admitted now (1: not shedding).",
				ConstLabels: prometheus.Labels{"priority": p.String()},
			}, func() float64 { return l.stats(p, time.Now()).Admitted }),
		)
	}
}
