package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// relColdReadBound is the longest a creds read may take when Salesforce does not answer: the
// client's retry budget (9 s: 3 attempts of at most 4 s) plus slack for a loaded machine. A
// read that takes longer is a hang, whatever it returns.
const relColdReadBound = 9*time.Second + 6*time.Second

// relTokenFault is one class of token endpoint fault.
type relTokenFault struct {
	class string
	// persist is injected for every request until cleared: a cold read must fail with a 502
	// naming wantCause within relColdReadBound, while a warm shared read keeps serving.
	persist relFault
	// wantServed: the persistent fault only slows reads down (latency under the attempt
	// timeout): the cold read must be served, taking at least minTime.
	wantServed bool
	wantCause  []string // any of these in the 502
	// burst is shorter than the client's 3 attempts: retries absorb it and the cold read is
	// served, taking at least minTime (backoff, Retry-After, the attempt timeout).
	burst   relFault
	minTime time.Duration
	// leakCheck: count the tokens Salesforce issued that no reader got and nobody revoked.
	leakCheck bool
}

// TestReliabilityTokenFaults injects every token endpoint fault the emulator has, end to end
// through a real Vault: latency under and past the client's attempt timeout, 500/503/429,
// hangs, connection resets, malformed JSON and a plain-http instance_url. For each class:
//   - a warm shared role keeps serving its cached token (no request reaches Salesforce);
//   - a cold read (per_lease, and a never-read shared role) gets HTTP 502 naming the cause
//     within relColdReadBound, never a hang, and the role's last_error reports it;
//   - a burst shorter than the retry attempts is absorbed by the retries;
//   - the key ring and storage are unchanged (keys lost: 0).
//
// Then revoke faults: a lease revoke or a role reset that cannot reach Salesforce fails
// loudly, keeps the lease (so the revocation can be retried), and succeeds once Salesforce is
// back.
func TestReliabilityTokenFaults(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{})
	v := e.Vault
	uuid := relMountUUID(t, v)
	e.Ready(t, v, "conn", "warm", nil)
	e.CreateRole(t, v, "cold", "conn", map[string]any{"token_mode": "per_lease"})
	warmTok := ReadCreds(t, v.Client, "warm").Data["access_token"].(string)
	ringBefore := relMustRing(t, v, "conn")

	cases := []relTokenFault{
		{class: "token_latency_under_timeout", persist: relFault{"endpoint": "token", "kind": "latency", "latency": "1500ms"},
			wantServed: true, minTime: 1500 * time.Millisecond},
		{class: "token_latency_past_timeout", persist: relFault{"endpoint": "token", "kind": "latency", "latency": "6s"},
			wantCause: []string{"timed out"}, burst: relFault{"endpoint": "token", "kind": "latency", "latency": "6s", "count": 1}, minTime: 4 * time.Second},
		{class: "token_status_500", persist: relFault{"endpoint": "token", "kind": "status", "status": 500},
			wantCause: []string{"HTTP 500"}, burst: relFault{"endpoint": "token", "kind": "status", "status": 500, "count": 2}},
		{class: "token_status_503", persist: relFault{"endpoint": "token", "kind": "status", "status": 503},
			wantCause: []string{"HTTP 503"}, burst: relFault{"endpoint": "token", "kind": "status", "status": 503, "count": 2}},
		{class: "token_status_429", persist: relFault{"endpoint": "token", "kind": "status", "status": 429, "latency": "1s"},
			wantCause: []string{"HTTP 429"}, burst: relFault{"endpoint": "token", "kind": "status", "status": 429, "latency": "1s", "count": 1}, minTime: time.Second},
		{class: "token_hang", persist: relFault{"endpoint": "token", "kind": "hang"},
			wantCause: []string{"timed out"}, burst: relFault{"endpoint": "token", "kind": "hang", "count": 1}, minTime: 4 * time.Second},
		{class: "token_connection_reset", persist: relFault{"endpoint": "token", "kind": "reset"},
			wantCause: []string{"connection reset", "EOF"}, burst: relFault{"endpoint": "token", "kind": "reset", "count": 2}},
		{class: "token_malformed_json", persist: relFault{"endpoint": "token", "kind": "malformed"},
			wantCause: []string{"malformed token response"}, burst: relFault{"endpoint": "token", "kind": "malformed", "count": 2}},
		{class: "token_wrong_instance_url", persist: relFault{"endpoint": "token", "kind": "wrong_instance_url"},
			// No burst: a bad instance_url is not retried (Salesforce issued a session, which
			// the plugin revokes rather than piling up more); the persistent case covers it.
			wantCause: []string{"instance_url"}, leakCheck: true},
	}
	for i, c := range cases {
		t.Run(c.class, func(t *testing.T) {
			coldShared := fmt.Sprintf("cold-shared-%d", i)
			e.CreateRole(t, v, coldShared, "conn", nil)
			e.Emu.ClearFaults(t)
			e.Emu.ResetCounters(t)
			var served, failed int

			// Persistent fault: warm reads served from the cache, cold reads fail fast with
			// the cause (or are served slowly, for latency under the attempt timeout).
			e.Emu.SetFault(t, c.persist)
			var wg sync.WaitGroup
			type result struct {
				role string
				d    time.Duration
				err  error
			}
			results := make(chan result, 2)
			for _, role := range []string{"cold", coldShared} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, d, err := relRead(v.NewClient(t, ""), role)
					results <- result{role, d, err}
				}()
			}
			for j := 0; j < 5; j++ {
				s, _, err := relRead(v.Client, "warm")
				if err != nil {
					t.Errorf("warm shared read during %s: %v", c.class, err)
					failed++
					continue
				}
				if s.Data["access_token"] != warmTok {
					t.Errorf("warm shared read during %s returned another token: the cache was not used", c.class)
				}
				served++
			}
			wg.Wait()
			close(results)
			var maxCold time.Duration
			for r := range results {
				maxCold = max(maxCold, r.d)
				if r.d > relColdReadBound {
					t.Errorf("cold read of %s took %s (bound %s): a hang", r.role, r.d, relColdReadBound)
				}
				if c.wantServed {
					if r.err != nil {
						t.Errorf("cold read of %s under %s: %v, want it served", r.role, c.class, r.err)
						failed++
						continue
					}
					if r.d < c.minTime {
						t.Errorf("cold read of %s took %s: the fault (%s) did not apply", r.role, r.d, c.minTime)
					}
					served++
					continue
				}
				if r.err == nil {
					t.Errorf("cold read of %s under %s was served, want a 502", r.role, c.class)
					served++
					continue
				}
				failed++
				if code := StatusCode(r.err); code != 502 {
					t.Errorf("cold read of %s under %s: HTTP %d (%v), want 502", r.role, c.class, code, r.err)
				}
				if !containsAny(r.err.Error(), c.wantCause) {
					t.Errorf("cold read of %s under %s: the error does not name the cause %q: %v", r.role, c.class, c.wantCause, r.err)
				}
				t.Logf("cold read of %s under %s: HTTP %d after %s: %s", r.role, c.class, StatusCode(r.err), r.d.Round(time.Millisecond), oneLine(r.err))
			}
			if !c.wantServed {
				// The role reports the failure to operators (roles/<name> last_error).
				role := v.Read(t, Mount+"/roles/cold")
				if le, _ := role.Data["last_error"].(string); !containsAny(le, c.wantCause) {
					t.Errorf("roles/cold last_error %q does not name the cause %q", le, c.wantCause)
				}
			}
			injected := relCounter(t, e.Emu, "faults_injected")
			e.Emu.ClearFaults(t)

			// A burst shorter than the retry attempts: absorbed.
			if c.burst != nil {
				before := relCounter(t, e.Emu, "faults_injected")
				e.Emu.SetFault(t, c.burst)
				_, d, err := relRead(v.Client, "cold")
				burstHits := relCounter(t, e.Emu, "faults_injected") - before
				injected += burstHits
				switch {
				case err != nil:
					failed++
					t.Errorf("a %s burst (%v) was not absorbed by the retries: %v", c.class, c.burst["count"], err)
				case burstHits == 0:
					t.Errorf("the %s burst was not injected", c.class)
				default:
					served++
					if d < c.minTime {
						t.Errorf("burst read took %s, want at least %s (backoff or Retry-After honoured)", d, c.minTime)
					}
					t.Logf("%s burst of %d absorbed: served after %s", c.class, burstHits, d.Round(time.Millisecond))
				}
				e.Emu.ClearFaults(t)
			}

			// After the fault: the cold shared role mints now (the failure was not cached).
			if _, _, err := relRead(v.Client, coldShared); err != nil {
				t.Errorf("cold shared read after the fault cleared: %v", err)
				failed++
			} else {
				served++
			}
			if c.leakCheck {
				relTokensLeaked(t, e, c.class)
			}
			lost, what := relKeysLost(ringBefore, relMustRing(t, v, "conn"))
			if lost > 0 {
				t.Errorf("keys lost under %s: %v", c.class, what)
			}
			relRequireStorage(t, v, uuid, "conn")
			relReport(t, "fault", c.class, "injected", injected, "served", served, "failed", failed, "keys_lost", lost,
				"max_cold_read", maxCold)
		})
	}

	t.Run("revoke", func(t *testing.T) { relRevokeFaults(t, e, uuid, ringBefore) })
	t.Run("rotation_during_mint", func(t *testing.T) { relRotationDuringMint(t, e, uuid) })
}

// relRotationDuringMint: a mint is on the wire (held 2 s by a latency fault) when a rotation
// starts and the new certificate replaces the old one on the app. Salesforce then refuses the
// assertion signed with the old key. The read must still be served: minting falls back to the
// pending key when the active one is refused (api.md: "token minting falls back to it when the
// active key is refused"; rotate's help: "Reads never fail because of a rotation").
func relRotationDuringMint(t *testing.T, e *Env, uuid string) {
	v := e.Vault
	e.Emu.ClearFaults(t)
	e.Ready(t, v, "race", "race", map[string]any{"token_mode": "per_lease"})
	ringBefore := relMustRing(t, v, "race")
	e.Emu.SetFault(t, relFault{"endpoint": "token", "kind": "latency", "latency": "2s", "count": 1})
	type result struct {
		kv  int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, _, err := relRead(v.NewClient(t, ""), "race")
		r := result{err: err}
		if err == nil {
			r.kv, _ = s.Data["key_version"].(json.Number).Int64()
		}
		done <- r
	}()
	WaitFor(t, 10*time.Second, "the mint to be held at the token endpoint", func() error {
		if relCounter(t, e.Emu, "faults_injected") < 1 {
			return errNotYet
		}
		return nil
	})
	cert := StringField(t, v.Write(t, Mount+"/connections/race/rotate", nil), "pending_certificate")
	e.Emu.RegisterCertificate(t, e.Emu.ConsumerKey, cert)
	r := <-done
	served, failed := 0, 0
	if r.err != nil {
		failed++
		relKnownBug(t, "BUG-7", "a creds read that started before the rotation failed when the new certificate replaced the old one "+
			"during its token request (mint falls back to the pending key only if its key-ring snapshot, read before the rotation, had one): "+oneLine(r.err))
	} else {
		served++
		t.Logf("the read in flight was served with key version %d", r.kv)
	}
	// The next read is served either way (the fresh ring has the pending key).
	s := ReadCreds(t, v.Client, "race")
	served++
	e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
	lost, what := relKeysLost(ringBefore, relMustRing(t, v, "race"))
	if lost > 0 {
		t.Errorf("keys lost: %v", what)
	}
	relRequireStorage(t, v, uuid, "race")
	relReport(t, "fault", "certificate_swap_during_mint", "injected", 1, "served", served, "failed", failed, "keys_lost", lost)
}

// relTokensLeaked checks that every token Salesforce issued during a class either reached a
// reader or was revoked. A token the plugin throws away without revoking stays a live session
// at Salesforce until its idle timeout, and counts against the user's logins.
func relTokensLeaked(t *testing.T, e *Env, class string) {
	t.Helper()
	issued := relCounter(t, e.Emu, "tokens_issued")
	revoked := relCounter(t, e.Emu, "revocations")
	// One read was served in this class and received a token: the cold shared read after the
	// fault (a bad instance_url is not retried, so there is no burst read). Every other session
	// Salesforce issued must have been revoked.
	const handedOut = 1
	if leaked := issued - revoked - handedOut; leaked > 0 {
		relKnownBug(t, "BUG-1", fmt.Sprintf("%s: Salesforce issued %d tokens, %d were handed out and %d revoked: %d live tokens were discarded without revocation",
			class, issued, handedOut, revoked, leaked))
	}
}

// relKnownBug reports a regression of a bug this suite once found (docs/RELIABILITY.md, "Bugs
// found", all fixed). It logs a line `RELIABILITY-BUG id=… …` and fails the test, unless
// RELIABILITY_STRICT=0 (for measuring a tree that still has the bug).
func relKnownBug(t testing.TB, id, msg string) {
	t.Helper()
	t.Logf("RELIABILITY-BUG id=%s %s", id, msg)
	if relStrict() {
		t.Errorf("known bug %s: %s", id, msg)
	}
}

func relStrict() bool { return strings.TrimSpace(os.Getenv("RELIABILITY_STRICT")) != "0" }

// relRevokeFaults: revocation while Salesforce's revoke endpoint fails.
func relRevokeFaults(t *testing.T, e *Env, uuid string, ringBefore map[int]relKey) {
	v := e.Vault
	e.Emu.ClearFaults(t)
	e.Emu.ResetCounters(t)
	var served, failed int

	// A per_lease lease whose revocation fails: the revoke reports the cause, the lease stays
	// (so the revocation can be retried), the token stays usable at Salesforce meanwhile.
	lease := ReadCreds(t, v.Client, "cold")
	tok := lease.Data["access_token"].(string)
	served++
	e.Emu.SetFault(t, relFault{"endpoint": "revoke", "kind": "status", "status": 503})
	start := time.Now()
	err := v.Client.Sys().Revoke(lease.LeaseID)
	d := time.Since(start)
	if err == nil {
		t.Fatalf("lease revoke succeeded while Salesforce's revoke endpoint answers 503")
	}
	failed++
	t.Logf("lease revoke under revoke 503: HTTP %d after %s: %s", StatusCode(err), d.Round(time.Millisecond), oneLine(err))
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("the failed revoke does not name the cause (HTTP 503): %v", err)
	}
	if d > relColdReadBound {
		t.Errorf("the failed revoke took %s (bound %s)", d, relColdReadBound)
	}
	if _, err := v.Client.Sys().Lookup(lease.LeaseID); err != nil {
		t.Errorf("the lease is gone after a failed revocation (it could not be retried): %v", err)
	}
	if !e.Emu.TokenActive(t, tok) {
		t.Errorf("the token was revoked although the revoke endpoint failed")
	}

	// A role reset whose revocation fails: 502 naming the cause; the token is out of the cache
	// anyway, so the next read mints a fresh one.
	warmOld := ReadCreds(t, v.Client, "warm").Data["access_token"].(string)
	served++
	_, err = v.Client.Logical().Write(Mount+"/roles/warm/reset", nil)
	if err == nil {
		t.Errorf("roles/warm/reset succeeded while the revoke endpoint answers 503")
	} else {
		failed++
		if StatusCode(err) != 502 || !strings.Contains(err.Error(), "503") {
			t.Errorf("roles/warm/reset under revoke 503: %v, want HTTP 502 naming HTTP 503", err)
		}
	}
	if s, _, err := relRead(v.Client, "warm"); err != nil {
		t.Errorf("read after a failed reset: %v", err)
		failed++
	} else if s.Data["access_token"] == warmOld {
		t.Errorf("the reset token is still handed out after a failed reset")
	} else {
		served++
	}
	injected := relCounter(t, e.Emu, "faults_injected")
	e.Emu.ClearFaults(t)

	// A burst of 2: absorbed by the retries, the revocation goes through.
	e.Emu.SetFault(t, relFault{"endpoint": "revoke", "kind": "reset", "count": 2})
	if err := v.Client.Sys().Revoke(lease.LeaseID); err != nil {
		t.Errorf("lease revoke with a 2-reset burst on the revoke endpoint: %v", err)
		failed++
	} else {
		served++
	}
	injected = relCounter(t, e.Emu, "faults_injected") + injected
	e.Emu.ClearFaults(t)
	e.Emu.RequireTokenRevoked(t, tok)

	// Hang: a revoke that never answers is bounded too.
	lease2 := ReadCreds(t, v.Client, "cold")
	served++
	before := relCounter(t, e.Emu, "faults_injected")
	e.Emu.SetFault(t, relFault{"endpoint": "revoke", "kind": "hang"})
	start = time.Now()
	err = v.Client.Sys().Revoke(lease2.LeaseID)
	d = time.Since(start)
	injected += relCounter(t, e.Emu, "faults_injected") - before
	e.Emu.ClearFaults(t)
	if err == nil {
		t.Errorf("lease revoke succeeded while the revoke endpoint hangs")
	} else {
		failed++
		t.Logf("lease revoke under a revoke hang: after %s: %s", d.Round(time.Millisecond), oneLine(err))
	}
	if d > relColdReadBound {
		t.Errorf("a revoke against a hanging endpoint took %s (bound %s)", d, relColdReadBound)
	}
	if err := v.Client.Sys().Revoke(lease2.LeaseID); err != nil {
		t.Errorf("retrying the revoke once Salesforce answers: %v", err)
	}
	e.Emu.RequireTokenRevoked(t, lease2.Data["access_token"].(string))

	lost, what := relKeysLost(ringBefore, relMustRing(t, v, "conn"))
	if lost > 0 {
		t.Errorf("keys lost: %v", what)
	}
	relRequireStorage(t, v, uuid, "conn")
	relReport(t, "fault", "revoke_failures", "injected", injected, "served", served, "failed", failed, "keys_lost", lost)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
