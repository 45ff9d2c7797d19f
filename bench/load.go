package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP is the load generator's client for Vault's HTTP API: one keep-alive pool with enough idle
// connections for every concurrent client, shared by the plugin's paths and Vault's own (KV-v2,
// token create), so both sides of a ratio pay the same client cost.
type HTTP struct {
	hc    *http.Client
	addr  string
	token string
}

// NewHTTP returns a client for addr (http://127.0.0.1:PORT) with the given token.
func NewHTTP(addr, token string, maxConns int) *HTTP {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * maxConns,
		MaxIdleConnsPerHost: 2 * maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTP{hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, addr: addr, token: token}
}

// Close drops the idle connections.
func (h *HTTP) Close() { h.hc.CloseIdleConnections() }

// Do sends one request to /v1/<path> and returns the status and body.
func (h *HTTP) Do(method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Vault-Token", h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Expect sends one request and fails unless Vault answers 200 with a body containing want.
func (h *HTTP) Expect(method, path string, body []byte, want string) error {
	status, b, err := h.Do(method, path, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !bytes.Contains(b, []byte(want)) {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, status, b)
	}
	return nil
}

// Op is one request made by client number worker; a non-nil error counts as a failed request.
type Op func(worker int) error

// Load runs clients closed-loop workers (each sends its next request when the previous one is
// answered) for warm + length, and keeps the requests that started in the last length: the
// warm-up opens the keep-alive connections and fills caches. stop, if not nil, ends the window
// early when closed (its actual length is used).
func Load(clients int, warm, length time.Duration, op Op, stop <-chan struct{}) Window {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     []Sample
		errs    int
		errMsgs []string
		done    atomic.Bool
	)
	start := time.Now()
	from := start.Add(warm)
	deadline := from.Add(length)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]Sample, 0, 1024)
			var lerrs int
			var lmsgs []string
			for !done.Load() {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := op(w)
				s := Sample{At: t0, Lat: time.Since(t0), Err: err != nil}
				if t0.Before(from) {
					continue
				}
				local = append(local, s)
				if err != nil {
					lerrs++
					if len(lmsgs) < 3 {
						lmsgs = append(lmsgs, err.Error())
					}
				}
			}
			mu.Lock()
			all = append(all, local...)
			errs += lerrs
			if len(errMsgs) < 5 {
				errMsgs = append(errMsgs, lmsgs...)
			}
			mu.Unlock()
		}(w)
	}
	end := deadline
	if stop != nil {
		go func() {
			select {
			case <-stop:
				if now := time.Now(); now.Before(end) {
					mu.Lock()
					end = now
					mu.Unlock()
				}
				done.Store(true)
			case <-time.After(warm + length + time.Second):
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	mu.Lock()
	defer mu.Unlock()
	l := end.Sub(from)
	if l <= 0 {
		l = time.Millisecond
	}
	return Window{Samples: all, Length: l, Errors: errs, ErrMsgs: errMsgs}
}

// Burst starts n requests at the same instant (a barrier releases them together) and returns
// them as a window: the stampede.
func Burst(n int, op Op) Window {
	var wg sync.WaitGroup
	gate := make(chan struct{})
	samples := make([]Sample, n)
	msgs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			err := op(i)
			samples[i] = Sample{At: t0, Lat: time.Since(t0), Err: err != nil}
			if err != nil {
				msgs[i] = err.Error()
			}
		}(i)
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	w := Window{Samples: samples, Length: time.Since(start)}
	for i, s := range samples {
		if s.Err {
			w.Errors++
			if len(w.ErrMsgs) < 5 {
				w.ErrMsgs = append(w.ErrMsgs, msgs[i])
			}
		}
	}
	return w
}

// Parallel runs f(i) for i in [0, n) on workers goroutines and returns the first error.
func Parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// errString shortens an error list for a table cell.
func errString(msgs []string) string {
	if len(msgs) == 0 {
		return ""
	}
	return strings.Join(msgs, "; ")
}
