package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
)

// Operation names, as the report shows them.
const (
	OpCreds = "plugin creds"
	OpKV    = "KV-v2 read"
	OpLease = "token create"
	OpRaw   = "raw sign+POST"
	OpInfo  = "plugin info (hop floor)"
	OpCC    = "plugin creds, client_credentials"
	// OpCCShared is the client-credentials read in shared mode (warm cache), for the cached read.
	OpCCShared = "plugin creds, client_credentials, shared"
)

// tokenCreate is the leased floor: a token of Vault's own with a short TTL (a lease in Vault's
// expiration manager, like a per_lease creds read). 30m rather than seconds so that no token
// expires, and is revoked in the background, while later measurements run.
var tokenCreate = []byte(`{"ttl":"30m","display_name":"bench"}`)

// ops are the requests the comparisons make.
func (e *Env) ops() map[string]Op {
	ctx := context.Background()
	return map[string]Op{
		"shared": func(int) error { return e.H.Expect("GET", Mount+"/creds/shared", nil, `"access_token"`) },
		"leased": func(int) error {
			return e.H.Expect("GET", Mount+"/creds/leased", nil, `"lease_id":"`+Mount+`/creds/leased/`)
		},
		OpCC: func(int) error {
			return e.H.Expect("GET", Mount+"/creds/cc-leased", nil, `"lease_id":"`+Mount+`/creds/cc-leased/`)
		},
		OpCCShared: func(int) error { return e.H.Expect("GET", Mount+"/creds/cc-shared", nil, `"access_token"`) },
		OpKV:       func(int) error { return e.H.Expect("GET", kvSecret, nil, `"access_token"`) },
		OpLease:    func(int) error { return e.H.Expect("POST", "auth/token/create", tokenCreate, `"client_token"`) },
		// salesforce/info answers from constants: no storage, no lock, no Salesforce. It is the
		// floor of any read served by an external plugin: Vault's gRPC call to the plugin process
		// and the SDK framework's own ReplicationState call back to Vault on every request.
		OpInfo: func(int) error { return e.H.Expect("GET", Mount+"/info", nil, `"go_version"`) },
		OpRaw: func(int) error {
			a, err := salesforce.SignAssertion(e.Main.Keys.Key, e.RawClaims, time.Now())
			if err != nil {
				return err
			}
			_, err = e.Raw.RequestToken(ctx, a)
			return err
		},
	}
}

// rotate returns names rotated left by r, so each round runs the comparisons in another order
// and no side always runs first (after a quiet moment) or last.
func rotate(names []string, r int) []string {
	out := make([]string, len(names))
	for i := range names {
		out[i] = names[(i+r)%len(names)]
	}
	return out
}

// Comparison is one measurement of several operations at several client counts, by round.
type Comparison struct {
	Clients []int
	Ops     []string
	By      map[int]map[string]Rounds
	Errors  []string
}

func (c *Comparison) add(clients int, op string, w Window) {
	if c.By == nil {
		c.By = map[int]map[string]Rounds{}
	}
	if c.By[clients] == nil {
		c.By[clients] = map[string]Rounds{}
	}
	c.By[clients][op] = append(c.By[clients][op], Summarize(w))
	if w.Errors > 0 {
		c.Errors = append(c.Errors, fmt.Sprintf("%s at %d clients: %d failed: %s", op, clients, w.Errors, errString(w.ErrMsgs)))
	}
}

func (e *Env) compare(t testing.TB, what string, clients []int, names []string, ops map[string]Op) *Comparison {
	t.Helper()
	c := &Comparison{Clients: clients, Ops: names}
	for r := 0; r < e.Plan.Rounds; r++ {
		for _, n := range clients {
			for _, name := range rotate(names, r) {
				c.add(n, name, Load(n, e.Plan.Warm, e.Plan.Window, ops[name], nil))
			}
		}
		t.Logf("%s: round %d/%d done", what, r+1, e.Plan.Rounds)
	}
	return c
}

// CachedRead compares creds/<role> in shared mode (a warm cache: no Salesforce call) with the
// same Vault's KV-v2 read of a secret holding the same data, and with token creation (the
// leased floor); and shows the client-credentials cached read beside them.
func (e *Env) CachedRead(t testing.TB) *Comparison {
	t.Helper()
	o := e.ops()
	ops := map[string]Op{OpCreds: o["shared"], OpKV: o[OpKV], OpLease: o[OpLease], OpInfo: o[OpInfo], OpCCShared: o[OpCCShared]}
	return e.compare(t, "cached read", e.Plan.CachedClients, []string{OpCreds, OpKV, OpLease, OpInfo, OpCCShared}, ops)
}

// ColdMint compares creds/<role> in per_lease mode (a token request on every read, and a lease)
// with the raw work done without Vault (sign the same assertion with the same key and POST it
// to the emulator), a KV-v2 read and a token create; and shows the client-credentials mint
// beside them.
func (e *Env) ColdMint(t testing.TB) *Comparison {
	t.Helper()
	o := e.ops()
	ops := map[string]Op{OpCreds: o["leased"], OpRaw: o[OpRaw], OpKV: o[OpKV], OpLease: o[OpLease], OpInfo: o[OpInfo], OpCC: o[OpCC]}
	return e.compare(t, "cold mint", e.Plan.ColdClients, []string{OpCreds, OpRaw, OpKV, OpLease, OpInfo, OpCC}, ops)
}

// StampedeRound is one stampede: clients reading one cold shared role at the same instant.
type StampedeRound struct {
	Clients       int
	TokenRequests int64 // the emulator's count for the burst: must be 1
	Distinct      int   // distinct access tokens handed out: must be 1
	Summary       Summary
	Errors        []string
}

// Stampede creates a new shared role per round and fires StampedeClients reads of it at once.
func (e *Env) Stampede(t testing.TB) []StampedeRound {
	t.Helper()
	var out []StampedeRound
	n := e.Plan.StampedeClients
	for r := 0; r < e.Plan.StampedeRounds; r++ {
		role := fmt.Sprintf("stampede-%d", r)
		e.CreateRole(t, Mount, role, "main", nil)
		tokens := make([]string, n)
		before := e.TokenRequests(t)
		w := Burst(n, func(i int) error {
			status, b, err := e.H.Do("GET", Mount+"/creds/"+role, nil)
			if err != nil {
				return err
			}
			if status != 200 {
				return fmt.Errorf("HTTP %d: %.200s", status, b)
			}
			var resp struct {
				Data struct {
					AccessToken string `json:"access_token"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &resp); err != nil || resp.Data.AccessToken == "" {
				return fmt.Errorf("no access_token in %.200s", b)
			}
			tokens[i] = resp.Data.AccessToken
			return nil
		})
		after := e.TokenRequests(t)
		distinct := map[string]bool{}
		for _, tok := range tokens {
			if tok != "" {
				distinct[tok] = true
			}
		}
		out = append(out, StampedeRound{Clients: n, TokenRequests: after - before, Distinct: len(distinct), Summary: Summarize(w), Errors: w.ErrMsgs})
	}
	return out
}

// RotationResult is reads during metadata_api rotations against reads with no rotation.
type RotationResult struct {
	BaseCached, BaseCold Rounds
	RotCached, RotCold   Rounds
	Rotations            int             // rotations started inside the rotation windows, all completed
	Durations            []time.Duration // rotate call to idle
	Failed               int             // failed reads, all windows
	FailMsgs             []string
	VersionBefore        int64
	VersionAfter         int64
	Errors               []string // harness problems (a rotation that did not finish)
}

// RotationUnderLoad alternates windows with and without back-to-back rotations of connection
// "rot", with cached and cold readers of its roles running throughout.
func (e *Env) RotationUnderLoad(t testing.TB) *RotationResult {
	t.Helper()
	p := e.Plan
	res := &RotationResult{VersionBefore: e.ActiveKeyVersion(t, Mount, "rot")}
	cached := func(int) error { return e.H.Expect("GET", Mount+"/creds/rot-shared", nil, `"access_token"`) }
	cold := func(int) error {
		return e.H.Expect("GET", Mount+"/creds/rot-leased", nil, `"lease_id":"`+Mount+`/creds/rot-leased/`)
	}
	u := e.underLoad(p.RotRounds, p.RotWindow, []Reader{{p.RotCached, cached}, {p.RotCold, cold}}, func(r int, end time.Time) {
		for time.Now().Before(end) {
			start := time.Now()
			if err := e.H.Expect("POST", Mount+"/connections/rot/rotate", []byte(`{}`), `"state"`); err != nil {
				res.Errors = append(res.Errors, "rotate: "+err.Error())
				break
			}
			// The window's cold readers, which run until this returns, promote the key once its
			// certificate has propagated.
			if _, err := e.WaitIdle(Mount, "rot", p.RotationIdleTimeout, nil); err != nil {
				res.Errors = append(res.Errors, err.Error())
				break
			}
			res.Rotations++
			res.Durations = append(res.Durations, time.Since(start))
		}
		t.Logf("rotation under load: round %d/%d: %d rotations so far", r+1, p.RotRounds, res.Rotations)
	})
	res.BaseCached, res.BaseCold, res.RotCached, res.RotCold = u.Base[0], u.Base[1], u.During[0], u.During[1]
	res.Failed, res.FailMsgs = u.Failed, u.FailMsgs
	res.VersionAfter = e.ActiveKeyVersion(t, Mount, "rot")
	return res
}

// KeyGenResult is reads while a rotation generates a key on the connection they read from.
type KeyGenResult struct {
	KeyType                    string
	KeyGen                     []time.Duration // duration of each rotate call (it generates the key)
	BaseCached, BaseCold       Rounds
	DuringCached, DuringCold   Rounds // reads that started while the rotate call ran
	DuringCachedN, DuringColdN int
	Failed                     int
	Errors                     []string
}

func summarizeRange(w Window, from, to time.Time) Summary {
	return summarizeSorted(w.Latencies(from, to))
}

// summarizeSorted is the latency summary of sorted latencies.
func summarizeSorted(l []time.Duration) Summary {
	s := Summary{N: len(l)}
	if len(l) > 0 {
		s.P50, s.P99, s.Max = Pct(l, 0.5), Pct(l, 0.99), l[len(l)-1]
	}
	return s
}

// KeyGenUnderLoad rotates connection "big" (key_type Plan.KeyType): the rotate call generates
// the new key synchronously, holding the connection's lock. Reads of the connection's roles run
// throughout; those that started during the call are compared with a window without rotation.
func (e *Env) KeyGenUnderLoad(t testing.TB) *KeyGenResult {
	t.Helper()
	p := e.Plan
	res := &KeyGenResult{KeyType: p.KeyType}
	cached := func(int) error { return e.H.Expect("GET", Mount+"/creds/big-shared", nil, `"access_token"`) }
	cold := func(int) error {
		return e.H.Expect("GET", Mount+"/creds/big-leased", nil, `"lease_id":"`+Mount+`/creds/big-leased/`)
	}
	for r := 0; r < p.KeyRounds; r++ {
		// Without rotation.
		var wg sync.WaitGroup
		var wc, wl Window
		wg.Add(2)
		go func() { defer wg.Done(); wc = Load(p.KeyCached, p.Warm, p.KeyBaseWindow, cached, nil) }()
		go func() { defer wg.Done(); wl = Load(p.KeyCold, p.Warm, p.KeyBaseWindow, cold, nil) }()
		wg.Wait()
		res.BaseCached = append(res.BaseCached, Summarize(wc))
		res.BaseCold = append(res.BaseCold, Summarize(wl))
		res.Failed += wc.Errors + wl.Errors

		// During the rotate call.
		stop := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); wc = Load(p.KeyCached, p.Warm, 5*time.Minute, cached, stop) }()
		go func() { defer wg.Done(); wl = Load(p.KeyCold, p.Warm, 5*time.Minute, cold, stop) }()
		time.Sleep(p.Warm + 200*time.Millisecond)
		t0 := time.Now()
		err := e.H.Expect("POST", Mount+"/connections/big/rotate", []byte(`{}`), `"pending_certificate"`)
		t1 := time.Now()
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if err != nil {
			res.Errors = append(res.Errors, "rotate: "+err.Error())
		} else {
			res.KeyGen = append(res.KeyGen, t1.Sub(t0))
		}
		dc, dl := summarizeRange(wc, t0, t1), summarizeRange(wl, t0, t1)
		res.DuringCached = append(res.DuringCached, dc)
		res.DuringCold = append(res.DuringCold, dl)
		res.DuringCachedN += dc.N
		res.DuringColdN += dl.N
		res.Failed += wc.Errors + wl.Errors
		for _, m := range append(wc.ErrMsgs, wl.ErrMsgs...) {
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, "read: "+m)
			}
		}
		if _, err := e.WaitIdle(Mount, "big", p.RotationIdleTimeout, func() error { return cold(0) }); err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
		t.Logf("key generation under load: round %d/%d: rotate took %s", r+1, p.KeyRounds, t1.Sub(t0).Round(time.Millisecond))
	}
	return res
}

// ReuseRound is one window of 64-client per_lease reads, counted at the emulator.
type ReuseRound struct {
	Clients     int
	Mints       int64 // token requests the emulator answered in the window
	Connections int64 // TCP connections it accepted in the window
	Summary     Summary
}

// PerMint is new Salesforce connections per token request: 0 when the plugin's client reuses
// its keep-alive connections (issue 15: the transport kept only 16 idle per host).
func (r ReuseRound) PerMint() float64 {
	if r.Mints == 0 {
		return math.NaN()
	}
	return float64(r.Connections) / float64(r.Mints)
}

// ConnectionReuse runs ColdClients' largest count (64 in the full plan) of per_lease readers:
// a warm-up that opens the connections, then a counted window. Only the plugin talks to the
// emulator during it (the counters are read through a keep-alive admin client, before and after).
func (e *Env) ConnectionReuse(t testing.TB) []ReuseRound {
	t.Helper()
	leased := e.ops()["leased"]
	n := e.Plan.ReuseClients
	var out []ReuseRound
	for r := 0; r < e.Plan.Rounds; r++ {
		Load(n, 0, e.Plan.Warm, leased, nil)
		before := e.Emu.Counters(t)
		w := Load(n, 0, e.Plan.Window, leased, nil)
		after := e.Emu.Counters(t)
		out = append(out, ReuseRound{Clients: n, Summary: Summarize(w),
			Mints:       counterDelta(t, before, after, "token_requests"),
			Connections: counterDelta(t, before, after, "connections")})
		t.Logf("connection reuse: round %d/%d: %d mints, %d new connections", r+1, e.Plan.Rounds, out[r].Mints, out[r].Connections)
	}
	return out
}

// counterDelta is after[name] − before[name]; a missing counter fails rather than reading 0.
func counterDelta(t testing.TB, before, after e2e.Counters, name string) int64 {
	t.Helper()
	get := func(c e2e.Counters) int64 {
		var v int64
		if err := json.Unmarshal(c[name], &v); err != nil {
			t.Fatalf("emulator counter %q: %v", name, err)
		}
		return v
	}
	return get(after) - get(before)
}
