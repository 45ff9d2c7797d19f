package backend

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The engine's Prometheus metrics, served at the metrics path (path_metrics.go). An external
// plugin has no channel into Vault's telemetry, so it serves its own. Each mount has its own
// registry: with multiplexing several mounts share one process, and a global registry would
// mix their series (and panic on the second registration).
//
// Counters and the histogram are recorded where things happen, with client_golang's atomic
// collectors: the mint path takes no lock of ours. Gauges are computed at scrape time from
// what the backend holds in memory (the rotation status below, fed by every rotation write,
// and the login windows), so a scrape reads no storage, whatever the number of connections.
//
// Labels carry names only: connection, role, Salesforce username (the logins gauge: the limit
// is per user, and an operator must know which one nears it), the error code from a fixed set,
// and fixed vocabularies (result, flow, kind, state). Never a secret, a token or free text.

const metricsNamespace = "vault_salesforce"

// loginLimitPerHour is Salesforce's limit of logins per user per hour; a user above it is
// refused (LOGIN_RATE_EXCEEDED) until the hour has passed.
const loginLimitPerHour = 3600

// Rotation kinds: what a rotation replaces. Each kind reports its state, failures and next
// rotation through the same calls, with the kind as a label.
const (
	kindKey            = "key"
	kindConsumerSecret = "consumer_secret"
	kindTenantSecret   = "tenant_secret"
)

// rotationKey names one rotating thing: a connection's key, its consumer secret, or one of its
// tenant secrets (target is the secret's type; "" for the others).
type rotationKey struct {
	kind, connection, target string
}

// rotationStatus is what the gauges report of one rotating thing.
type rotationStatus struct {
	state     string
	nextAt    time.Time // next scheduled rotation; zero: none scheduled
	expiresAt time.Time // the active certificate's expiry (kind key); zero: none
	// activeVersion is the version of the active key (or secret), for events.
	activeVersion int
}

// mint results, one per answer class of creds/<role> (see mintErrorResponse).
const (
	resultSuccess     = "success"
	resultRefused     = "refused"     // a Salesforce refusal or a configuration problem: 400
	resultUnavailable = "unavailable" // Salesforce unreachable or failing: 502
	resultError       = "error"       // anything else: 500
)

type metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	mintDuration     *prometheus.HistogramVec
	rotationFailures *prometheus.CounterVec

	// byRole holds each role's counters (mints, cache hits and misses) as plain atomics, rendered
	// at scrape time: a CounterVec child costs about 700 bytes (its label pairs are protobuf
	// values), and 10,000 roles with three series each held 22 MiB of heap, 40 MiB of RSS.
	byRole sync.Map // roleRef -> *roleCounters

	// logins are the per-user login windows, by loginRef.
	logins sync.Map

	// apiRequests is each connection's DailyApiRequests from its last usage fetch (path_usage.go).
	apiRequests sync.Map // connection -> apiRequests

	mu        sync.RWMutex
	rotations map[rotationKey]*rotationStatus
}

type roleRef struct{ connection, role string }

// roleCounters are one role's series.
type roleCounters struct {
	hit, miss counter
	cached    atomic.Bool // a shared-mode read has been seen: the cache series exist
	succeeded counter     // successful mints: most roles never have another class

	mu     sync.Mutex
	minted map[mintClass]uint64 // the other classes, made on the first failure
}

type mintClass struct{ result, code string }

// counter is a monotonic count; Inc is one atomic add.
type counter struct{ n atomic.Uint64 }

func (c *counter) Inc() { c.n.Add(1) }

func (r *roleCounters) countMint(result, code string) {
	if result == resultSuccess && code == "" {
		r.succeeded.Inc()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.minted == nil {
		r.minted = map[mintClass]uint64{}
	}
	r.minted[mintClass{result, code}]++
}

type loginRef struct{ connection, username string }

type apiRequests struct{ max, remaining int }

// dailyAPIRequests records the org's DailyApiRequests as a usage fetch of connection read it.
func (m *metrics) dailyAPIRequests(connection string, allowance, remaining int) {
	m.apiRequests.Store(connection, apiRequests{allowance, remaining})
}

var (
	descLogins = prometheus.NewDesc(metricsNamespace+"_logins_last_hour",
		"Salesforce logins (token requests) the plugin made for a user in the last 60 minutes. Salesforce refuses a user's logins above "+
			"vault_salesforce_login_limit_per_hour; the limit is per user, so sum by username across connections.",
		[]string{"connection", "username"}, nil)
	descMinted = prometheus.NewDesc(metricsNamespace+"_tokens_minted_total",
		"Token requests made to mint creds, by result (success, refused, unavailable, error) and error_code (empty on success).",
		[]string{"connection", "role", "result", "error_code"}, nil)
	descCache = prometheus.NewDesc(metricsNamespace+"_token_cache_requests_total",
		"Reads of shared-mode roles, by result: hit (served from the cache) or miss (a mint was needed).",
		[]string{"connection", "role", "result"}, nil)
	descLoginLimit = prometheus.NewDesc(metricsNamespace+"_login_limit_per_hour",
		"Salesforce's limit of logins per user per hour.", nil, nil)
	descRotationState = prometheus.NewDesc(metricsNamespace+"_rotation_state",
		"1 for the current state of each rotation (kind key, consumer_secret or tenant_secret; target is the tenant secret's type).",
		[]string{"kind", "connection", "target", "state"}, nil)
	descCertExpiry = prometheus.NewDesc(metricsNamespace+"_certificate_expiry_seconds",
		"Seconds until the certificate of the connection's active key expires (negative: expired).",
		[]string{"connection"}, nil)
	descNextRotation = prometheus.NewDesc(metricsNamespace+"_next_rotation_timestamp_seconds",
		"When the next scheduled rotation starts, in Unix seconds. Absent when none is scheduled.",
		[]string{"kind", "connection", "target"}, nil)
	descAPIMax = prometheus.NewDesc(metricsNamespace+"_daily_api_requests_max",
		"The org's DailyApiRequests allowance, as the last read of connections/<name>/usage found it.",
		[]string{"connection"}, nil)
	descAPIRemaining = prometheus.NewDesc(metricsNamespace+"_daily_api_requests_remaining",
		"The org's DailyApiRequests left today, as the last read of connections/<name>/usage found it.",
		[]string{"connection"}, nil)
)

func newMetrics(now func() time.Time) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		now: now,
		mintDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "mint_duration_seconds",
			Help:    "Time to mint a token (signing, the token request with its retries), by connection and flow (jwt_bearer, client_credentials).",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"connection", "flow"}),
		rotationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "rotation_failures_total",
			Help: "Rotations that ended failed (rolled back included), by kind, connection and target."},
			[]string{"kind", "connection", "target"}),
		rotations: map[rotationKey]*rotationStatus{},
	}
	m.reg.MustRegister(m.mintDuration, m.rotationFailures, scrapeCollector{m})
	return m
}

// mintDone records one mint: its result, error code and latency.
func (m *metrics) mintDone(connection, role, flow string, took time.Duration, err error) {
	result, code := mintOutcome(err)
	m.role(connection, role).countMint(result, code)
	m.mintDuration.WithLabelValues(connection, flow).Observe(took.Seconds())
}

// mintRefusedEarly records a read refused before any token request (the role may not use the
// connection, or it does not exist).
func (m *metrics) mintRefusedEarly(connection, role string, err error) {
	result, code := mintOutcome(err)
	m.role(connection, role).countMint(result, code)
}

// role is a role's counters, made on first use.
func (m *metrics) role(connection, role string) *roleCounters {
	ref := roleRef{connection, role}
	v, ok := m.byRole.Load(ref)
	if !ok {
		v, _ = m.byRole.LoadOrStore(ref, &roleCounters{})
	}
	return v.(*roleCounters)
}

// cacheCounters are the counters of a shared-mode role, its hit and miss series shown from now
// on. A miss increments its own; the hit counter is kept on the cached token, so a hit is one
// atomic add.
func (m *metrics) cacheCounters(connection, role string) *roleCounters {
	r := m.role(connection, role)
	r.cached.Store(true)
	return r
}

// login records one token request for username at Salesforce.
func (m *metrics) login(connection, username string) {
	if username == "" {
		return
	}
	// A run-as username comes from Salesforce's identity answer: keep the label valid UTF-8
	// and of a username's length (Salesforce allows 80 characters), whatever it sends.
	if len(username) > 80 || !utf8.ValidString(username) {
		username = strings.ToValidUTF8(username[:min(len(username), 80)], "?")
	}
	ref := loginRef{connection, username}
	v, ok := m.logins.Load(ref)
	if !ok {
		v, _ = m.logins.LoadOrStore(ref, &loginWindow{})
	}
	v.(*loginWindow).add(m.now().Unix() / 60)
}

// rotation records the state of a rotation.
func (m *metrics) rotation(k rotationKey, state string) {
	m.updateRotation(k, func(s *rotationStatus) { s.state = state })
}

// rotationScheduled records when the next rotation of k starts (zero: not scheduled).
func (m *metrics) rotationScheduled(k rotationKey, at time.Time) {
	m.updateRotation(k, func(s *rotationStatus) { s.nextAt = at })
}

// rotationFailed counts a rotation of k that ended failed.
func (m *metrics) rotationFailed(k rotationKey) {
	m.rotationFailures.WithLabelValues(k.kind, k.connection, k.target).Inc()
}

// forgetRotation drops k's gauges (its connection or secret is gone).
func (m *metrics) forgetRotation(k rotationKey) {
	m.mu.Lock()
	delete(m.rotations, k)
	m.mu.Unlock()
	m.rotationFailures.DeleteLabelValues(k.kind, k.connection, k.target)
}

func (m *metrics) updateRotation(k rotationKey, update func(*rotationStatus)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.rotations[k]
	if s == nil {
		s = &rotationStatus{state: stateIdle}
		m.rotations[k] = s
	}
	update(s)
}

// keyRing records a connection's key rotation as ring holds it: state, next scheduled
// rotation and the active certificate's expiry. Every write of a ring ends here (through
// scheduleConnection), and so does the schedule's load at start.
func (m *metrics) keyRing(name string, conn *connectionEntry, ring *keyRing, now time.Time) {
	k := rotationKey{kind: kindKey, connection: name}
	if conn == nil || ring == nil {
		m.forgetRotation(k)
		return
	}
	state := ring.Rotation.State
	if state == "" {
		state = stateIdle
	}
	next := nextScheduled(conn, ring, now)
	var expires time.Time
	active := 0
	if a := ring.active(); a != nil {
		expires, active = a.NotAfter, a.Version
	}
	m.updateRotation(k, func(s *rotationStatus) {
		s.state, s.nextAt, s.expiresAt, s.activeVersion = state, next, expires, active
	})
}

// forgetConnection drops every series of a deleted connection.
func (m *metrics) forgetConnection(name string) {
	m.mu.Lock()
	for k := range m.rotations {
		if k.connection == name {
			delete(m.rotations, k)
		}
	}
	m.mu.Unlock()
	byConn := prometheus.Labels{"connection": name}
	for _, v := range []*prometheus.MetricVec{m.mintDuration.MetricVec, m.rotationFailures.MetricVec} {
		v.DeletePartialMatch(byConn)
	}
	m.byRole.Range(func(k, _ any) bool {
		if k.(roleRef).connection == name {
			m.byRole.Delete(k)
		}
		return true
	})
	m.logins.Range(func(k, _ any) bool {
		if k.(loginRef).connection == name {
			m.logins.Delete(k)
		}
		return true
	})
	m.apiRequests.Delete(name)
}

// forgetRole drops the series of a deleted role.
func (m *metrics) forgetRole(role string) {
	m.byRole.Range(func(k, _ any) bool {
		if k.(roleRef).role == role {
			m.byRole.Delete(k)
		}
		return true
	})
}

// render is the metrics in Prometheus text exposition format.
func (m *metrics) render() ([]byte, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// scrapeCollector computes the gauges at scrape time, from memory only.
type scrapeCollector struct{ m *metrics }

func (c scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMinted, descCache, descLogins, descLoginLimit, descRotationState, descCertExpiry, descNextRotation, descAPIMax, descAPIRemaining} {
		ch <- d
	}
}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.now()
	ch <- prometheus.MustNewConstMetric(descLoginLimit, prometheus.GaugeValue, loginLimitPerHour)
	m.byRole.Range(func(k, v any) bool {
		ref, r := k.(roleRef), v.(*roleCounters)
		if r.cached.Load() {
			ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(r.hit.n.Load()), ref.connection, ref.role, "hit")
			ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(r.miss.n.Load()), ref.connection, ref.role, "miss")
		}
		r.mu.Lock()
		minted := maps.Clone(r.minted) // not sent under the lock: a slow scrape must not hold up mints
		r.mu.Unlock()
		if n := r.succeeded.n.Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(descMinted, prometheus.CounterValue, float64(n), ref.connection, ref.role, resultSuccess, "")
		}
		for c, n := range minted {
			ch <- prometheus.MustNewConstMetric(descMinted, prometheus.CounterValue, float64(n), ref.connection, ref.role, c.result, c.code)
		}
		return true
	})
	minute := now.Unix() / 60
	m.logins.Range(func(k, v any) bool {
		ref := k.(loginRef)
		n := v.(*loginWindow).sum(minute)
		if n == 0 {
			// Idle for an hour: drop the window so that users no longer used cost nothing. A
			// login racing this delete may be lost from the gauge; it is one in an idle hour.
			m.logins.Delete(k)
			return true
		}
		ch <- prometheus.MustNewConstMetric(descLogins, prometheus.GaugeValue, float64(n), ref.connection, ref.username)
		return true
	})
	m.apiRequests.Range(func(k, v any) bool {
		a := v.(apiRequests)
		ch <- prometheus.MustNewConstMetric(descAPIMax, prometheus.GaugeValue, float64(a.max), k.(string))
		ch <- prometheus.MustNewConstMetric(descAPIRemaining, prometheus.GaugeValue, float64(a.remaining), k.(string))
		return true
	})
	m.mu.RLock()
	defer m.mu.RUnlock()
	for k, s := range m.rotations {
		ch <- prometheus.MustNewConstMetric(descRotationState, prometheus.GaugeValue, 1, k.kind, k.connection, k.target, s.state)
		if !s.nextAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descNextRotation, prometheus.GaugeValue, float64(s.nextAt.Unix()), k.kind, k.connection, k.target)
		}
		if k.kind == kindKey && !s.expiresAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, s.expiresAt.Sub(now).Seconds(), k.connection)
		}
	}
}

// loginWindow counts logins per minute over the last hour, in 60 slots. Each slot packs the
// Unix minute it counts (high 32 bits) and the count (low 32 bits) into one word, so adding is
// a lock-free compare-and-swap that also resets a slot left from an earlier hour.
type loginWindow struct{ slots [60]atomic.Uint64 }

func (w *loginWindow) add(minute int64) {
	slot := &w.slots[minute%60]
	for {
		old := slot.Load()
		next := uint64(minute)<<32 | 1 //nolint:gosec // a Unix minute is positive and fits 32 bits for 8,000 years
		switch stamp := int64(old >> 32); {
		case stamp == minute:
			next = old + 1
		case stamp > minute:
			return // the clock went back: not worth a count
		}
		if slot.CompareAndSwap(old, next) {
			return
		}
	}
}

// sum is the count of the 60 minutes up to and including minute.
func (w *loginWindow) sum(minute int64) uint64 {
	var n uint64
	for i := range w.slots {
		v := w.slots[i].Load()
		if stamp := int64(v >> 32); stamp > minute-60 && stamp <= minute {
			n += v & (1<<32 - 1)
		}
	}
	return n
}

// knownOAuthCodes are the OAuth error codes reported as such; any other code an endpoint
// sends is reported as "other", so that no endpoint can grow the label set or put text in it.
var knownOAuthCodes = map[string]bool{
	"invalid_grant": true, "invalid_client_id": true, "invalid_client": true, "invalid_app_access": true,
	"inactive_user": true, "inactive_org": true, "rate_limit_exceeded": true, "unsupported_grant_type": true,
	"invalid_scope": true, "invalid_request": true, "unauthorized_client": true,
}

// mintOutcome is a mint's result and error code, from a fixed vocabulary.
func mintOutcome(err error) (result, code string) {
	var oe *salesforce.OAuthError
	var ae *salesforce.APIError
	var ue *salesforce.UpstreamError
	var mr *mintRefused
	switch {
	case err == nil:
		return resultSuccess, ""
	case errors.As(err, &oe):
		if knownOAuthCodes[oe.Code] {
			return resultRefused, oe.Code
		}
		return resultRefused, "other"
	case errors.As(err, &ae):
		return resultRefused, "api_refused"
	case errors.As(err, &mr):
		return resultRefused, "configuration"
	case errors.As(err, &ue):
		return resultUnavailable, "unreachable"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return resultError, "canceled"
	}
	return resultError, "internal"
}

// recordMint records a mint that started at start and ended with err: the counters, the
// latency and, for a failure, the repeated-failure event's window.
func (b *backend) recordMint(connection, role, flow string, start time.Time, err error) {
	b.metrics.mintDone(connection, role, flow, time.Since(start), err)
	if err != nil {
		_, code := mintOutcome(err)
		b.events.mintFailed(connection, role, code, b.now())
	}
}
