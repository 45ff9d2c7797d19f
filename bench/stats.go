package bench

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Sample is one request: when it started and how long it took.
type Sample struct {
	At  time.Time
	Lat time.Duration
	Err bool
}

// Window is what a closed-loop load window measured.
type Window struct {
	Samples []Sample      // every request that started inside the window
	Length  time.Duration // the window's length (throughput denominator)
	Errors  int
	ErrMsgs []string // the first few errors, for the report
}

// OK is the number of successful requests.
func (w Window) OK() int { return len(w.Samples) - w.Errors }

// Throughput is successful requests per second.
func (w Window) Throughput() float64 {
	if w.Length <= 0 {
		return 0
	}
	return float64(w.OK()) / w.Length.Seconds()
}

// Latencies returns the sorted latencies of the successful requests, optionally only of those
// that started in [from, to] (zero times: no bound).
func (w Window) Latencies(from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, s := range w.Samples {
		if s.Err || (!from.IsZero() && s.At.Before(from)) || (!to.IsZero() && s.At.After(to)) {
			continue
		}
		out = append(out, s.Lat)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Pct is the q-quantile (0..1) of sorted latencies by nearest rank; 0 when empty.
func Pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// Summary is the latency profile and throughput of one window.
type Summary struct {
	N          int
	Errors     int
	P50, P99   time.Duration
	Max        time.Duration
	Throughput float64 // ok requests per second
}

// Summarize reduces a window to its summary.
func Summarize(w Window) Summary {
	l := w.Latencies(time.Time{}, time.Time{})
	s := Summary{N: len(w.Samples), Errors: w.Errors, Throughput: w.Throughput()}
	if len(l) > 0 {
		s.P50, s.P99, s.Max = Pct(l, 0.50), Pct(l, 0.99), l[len(l)-1]
	}
	return s
}

// Median of a set of numbers (the mean of the middle two for an even count); NaN when empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianDur is Median over durations.
func MedianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	m := Median(xs)
	if math.IsNaN(m) {
		return 0
	}
	return time.Duration(m)
}

// Rounds collects one measurement's per-round summaries, so that the report shows medians over
// rounds (a noisy machine shifts single rounds, rarely the median).
type Rounds []Summary

func (r Rounds) pick(f func(Summary) float64) float64 {
	xs := make([]float64, len(r))
	for i, s := range r {
		xs[i] = f(s)
	}
	return Median(xs)
}

// P50 is the median over rounds of each round's p50.
func (r Rounds) P50() time.Duration {
	return time.Duration(r.pick(func(s Summary) float64 { return float64(s.P50) }))
}

// P99 is the median over rounds of each round's p99.
func (r Rounds) P99() time.Duration {
	return time.Duration(r.pick(func(s Summary) float64 { return float64(s.P99) }))
}

// Max is the largest latency seen in any round.
func (r Rounds) Max() time.Duration {
	var m time.Duration
	for _, s := range r {
		m = max(m, s.Max)
	}
	return m
}

// Throughput is the median over rounds of each round's throughput.
func (r Rounds) Throughput() float64 { return r.pick(func(s Summary) float64 { return s.Throughput }) }

// Errors is the total of failed requests over all rounds.
func (r Rounds) Errors() int {
	n := 0
	for _, s := range r {
		n += s.Errors
	}
	return n
}

// N is the total of requests over all rounds.
func (r Rounds) N() int {
	n := 0
	for _, s := range r {
		n += s.N
	}
	return n
}

// RatioOfMedians-style helpers are deliberately absent: ratios are taken per round (both sides
// measured back to back under the same background load) and then the median of those is
// reported, by PerRound.

// PerRound returns the median over rounds of f(a[i], b[i]).
func PerRound(a, b Rounds, f func(a, b Summary) float64) float64 {
	n := min(len(a), len(b))
	xs := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		xs = append(xs, f(a[i], b[i]))
	}
	return Median(xs)
}

// Dur formats a duration for tables: µs below a millisecond, ms with 2 decimals below a second.
func Dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// Bytes formats a byte count.
func Bytes(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
