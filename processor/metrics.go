package processor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processors' Prometheus metrics, labelled by processor.
type metrics struct {
	lagEvents    *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	delivered    *prometheus.CounterVec
	filtered     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	rate         *prometheus.GaugeVec
	inFlight     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	l := []string{"processor"}
	m := &metrics{
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sense_processor_lag_events",
			Help: "Events stored in the processor's partitions and not yet committed by it."}, l),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sense_processor_lag_seconds",
			Help: "Age of the oldest event the processor read and has not yet committed (0 when none waits)."}, l),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sense_processor_delivered_events_total",
			Help: "Events the processor's sink stored."}, l),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sense_processor_filtered_events_total",
			Help: "Events the processor's filters (where, from.jurisdiction) left out."}, l),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sense_processor_retries_total",
			Help: "Deliveries tried again after a failure or a refusal to wait."}, l),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sense_processor_dead_lettered_events_total",
			Help: "Events the sink refused for good, written to the dead-letter pipeline."}, l),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sense_processor_sink_latency_seconds",
			Help:    "Time of one delivery attempt to the sink.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, l),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sense_processor_rate_events_per_second",
			Help: "The rate the processor currently allows itself (its adaptive limit)."}, l),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sense_processor_in_flight_bytes",
			Help: "Bytes of events read and not yet committed (bounded by max_in_flight_bytes)."}, l),
	}
	if reg != nil {
		// A registry that has them already (a node whose processors
		// stopped and start again) keeps its own.
		m.lagEvents = register(reg, m.lagEvents)
		m.lagSeconds = register(reg, m.lagSeconds)
		m.delivered = register(reg, m.delivered)
		m.filtered = register(reg, m.filtered)
		m.retries = register(reg, m.retries)
		m.deadLettered = register(reg, m.deadLettered)
		m.latency = register(reg, m.latency)
		m.rate = register(reg, m.rate)
		m.inFlight = register(reg, m.inFlight)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

func (m *metrics) forget(name string) {
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.lagEvents, m.lagSeconds, m.delivered, m.filtered, m.retries, m.deadLettered, m.latency, m.rate, m.inFlight} {
		v.DeleteLabelValues(name)
	}
}
