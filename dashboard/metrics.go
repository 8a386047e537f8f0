package dashboard

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serverMetrics are the dashboard's own metrics, served on /metrics:
//
//	warren_dashboard_requests_total{route,code}
//	warren_dashboard_request_duration_seconds{route}   histogram
//	warren_dashboard_sample_duration_seconds           histogram
//	warren_dashboard_sample_errors_total
//	warren_dashboard_workers{state}                    live or gone
//	warren_broker_connected                            1 or 0
//
// with the Go runtime's and the process's.
type serverMetrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	durations    *prometheus.HistogramVec
	sampleTime   prometheus.Histogram
	sampleErrors prometheus.Counter
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warren_dashboard_requests_total",
			Help: "HTTP requests served, by route pattern and status code."}, []string{"route", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "warren_dashboard_request_duration_seconds",
			Help: "HTTP request durations, by route pattern.", Buckets: prometheus.DefBuckets}, []string{"route"}),
		sampleTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "warren_dashboard_sample_duration_seconds",
			Help: "How long sampling every queue's counts took.", Buckets: prometheus.DefBuckets}),
		sampleErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "warren_dashboard_sample_errors_total",
			Help: "Samples that failed."}),
	}
	m.reg.MustRegister(m.requests, m.durations, m.sampleTime, m.sampleErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *serverMetrics) sampled(d time.Duration, err error) {
	m.sampleTime.Observe(d.Seconds())
	if err != nil {
		m.sampleErrors.Inc()
	}
}

// handler serves the registry, with the gauges read from s at each scrape.
func (m *serverMetrics) handler(s *Server) http.Handler {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warren_broker_connected",
		Help: "1 while the dashboard is connected to the broker."}, func() float64 {
		if s.conn.Connected() {
			return 1
		}
		return 0
	}))
	workers := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "warren_dashboard_workers",
		Help: "Worker pools the dashboard hears from (live) or heard from (gone)."}, []string{"state"})
	m.reg.MustRegister(workers)
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		live, gone := 0, 0
		for _, wk := range s.roster.Workers() {
			if wk.Gone {
				gone++
			} else {
				live++
			}
		}
		workers.WithLabelValues("live").Set(float64(live))
		workers.WithLabelValues("gone").Set(float64(gone))
		h.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times every request by its route pattern.
func (m *serverMetrics) instrument(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		_, route := mux.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(max(sw.code, 200))).Inc()
		m.durations.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
