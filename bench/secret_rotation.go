package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The rotations of secrets other than the signing key (issues 11 and 13), measured as
// RotationUnderLoad measures the key's: readers run with and without the rotation.

// CCRotationResult is reads of a client-credentials connection's roles during rotations of its
// consumer key and secret, against reads with no rotation.
type CCRotationResult struct {
	BaseCached, BaseCold Rounds
	RotCached, RotCold   Rounds
	// Reads that started during the rotate call: it stages, promotes and proves the new pair
	// and moves reads to it (the rest of the rotation is the overlap, then one deletion).
	CallCached, CallCold Rounds
	Calls                []time.Duration // the rotate call's duration
	Rotations            int             // completed: the active consumer credential version's rise
	Durations            []time.Duration // rotate call to idle (the overlap is most of it)
	VersionBefore        int64
	VersionAfter         int64
	Failed               int // failed reads, all windows
	FailMsgs             []string
	Errors               []string // harness problems (a rotation refused or stuck)
}

// CCRotationUnderLoad rotates connection "cc" (client_credentials, credentials_overlap 1m)
// once per round through connections/cc/credentials/rotate and waits for it to be idle (the
// previous pair deleted at Salesforce), while cached and per_lease readers of its roles run;
// against the same readers in a window without rotation.
func (e *Env) CCRotationUnderLoad(t testing.TB) *CCRotationResult {
	t.Helper()
	p := e.Plan
	res := &CCRotationResult{VersionBefore: e.activeVersion(t, Mount+"/connections/cc/credentials")}
	cached := func(int) error { return e.H.Expect("GET", Mount+"/creds/cc-shared", nil, `"access_token"`) }
	cold := func(int) error {
		return e.H.Expect("GET", Mount+"/creds/cc-leased", nil, `"lease_id":"`+Mount+`/creds/cc-leased/`)
	}
	rotate := func() error {
		return e.H.Expect("POST", Mount+"/connections/cc/credentials/rotate", []byte(`{}`), `"state"`)
	}
	var calls [][2]time.Time // by round: the rotate call's start and end
	u := e.underLoad(p.CCRounds, p.CCWindow, []Reader{{p.CCCached, cached}, {p.CCCold, cold}}, func(r int, _ time.Time) {
		start := time.Now()
		err := rotate()
		calls = append(calls, [2]time.Time{start, time.Now()})
		if err != nil {
			res.Errors = append(res.Errors, "rotate: "+err.Error())
			return
		}
		res.Calls = append(res.Calls, time.Since(start))
		// The previous pair is deleted by the periodic func (Vault's rollback tick, once a
		// minute) or by a rotate call once the overlap is over: it joins the rotation in flight
		// and drives it. Only then, so that it cannot start another.
		_, err = e.waitIdle(Mount+"/connections/cc/credentials/rotation", p.CCIdleTimeout, func(v rotationView) error {
			if v.State != "overlap" {
				return nil
			}
			at, err := time.Parse(time.RFC3339, v.DeletePreviousAt)
			if err != nil {
				return fmt.Errorf("delete_previous_at %q: %w", v.DeletePreviousAt, err)
			}
			if time.Now().Before(at.Add(time.Second)) {
				return nil
			}
			return rotate()
		})
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			return
		}
		res.Durations = append(res.Durations, time.Since(start))
		t.Logf("consumer-secret rotation under load: round %d/%d: rotation took %s", r+1, p.CCRounds, time.Since(start).Round(time.Millisecond))
	})
	res.BaseCached, res.BaseCold, res.RotCached, res.RotCold = u.Base[0], u.Base[1], u.During[0], u.During[1]
	res.Failed, res.FailMsgs = u.Failed, u.FailMsgs
	for r, ws := range u.Windows {
		res.CallCached = append(res.CallCached, summarizeRange(ws[0], calls[r][0], calls[r][1]))
		res.CallCold = append(res.CallCold, summarizeRange(ws[1], calls[r][0], calls[r][1]))
	}
	res.VersionAfter = e.activeVersion(t, Mount+"/connections/cc/credentials")
	res.Rotations = int(res.VersionAfter - res.VersionBefore)
	return res
}

// TenantRotationResult is the latency of rotating a Shield tenant secret, and reads of roles
// on the same connection while it runs, against a cold mint with no rotation.
type TenantRotationResult struct {
	// Alone: the rotate call, and one client's per_lease reads (a cold mint), with nothing else
	// running. A rotate is a dozen round trips in a row (storage, Salesforce), a mint three:
	// under load each waits for a core, so the two ratios differ.
	QuietRotate, QuietMint Rounds
	Rotate                 Rounds // the rotate call's latency with the readers running, per round
	BaseCached, BaseCold   Rounds // BaseCold is one client's per_lease reads: the cold mint compared with
	RotCached, RotCold     Rounds
	Rotations              int   // rotate calls answered with the new version
	VersionBefore          int64 // the data tenant secret's active version
	VersionAfter           int64
	Failed                 int
	FailMsgs               []string
	Errors                 []string
}

// TenantRotation calls connections/ts/tenant-secrets/data/rotate TSRotations times back to
// back per round (generate, seal, RSA-OAEP wrap for the BYOK certificate, upload, read back):
// first alone, after one client's cold mints alone; then while one client mints through a
// per_lease role of the same connection and others read a shared one, against the same readers
// with no rotation.
func (e *Env) TenantRotation(t testing.TB) *TenantRotationResult {
	t.Helper()
	p := e.Plan
	base := Mount + "/connections/ts/tenant-secrets/data"
	res := &TenantRotationResult{VersionBefore: e.activeVersion(t, base)}
	cached := func(int) error { return e.H.Expect("GET", Mount+"/creds/ts-shared", nil, `"access_token"`) }
	cold := func(int) error {
		return e.H.Expect("GET", Mount+"/creds/ts-leased", nil, `"lease_id":"`+Mount+`/creds/ts-leased/`)
	}
	rotations := func() Summary {
		var took []time.Duration
		for i := 0; i < p.TSRotations; i++ {
			start := time.Now()
			if err := e.H.Expect("POST", base+"/rotate", []byte(`{}`), `"hash_sha256"`); err != nil {
				res.Errors = append(res.Errors, "rotate: "+err.Error())
				break
			}
			took = append(took, time.Since(start))
			res.Rotations++
		}
		slices.Sort(took)
		return summarizeSorted(took)
	}
	for r := 0; r < p.TSRounds; r++ {
		w := Load(1, p.Warm, p.TSWindow, cold, nil)
		res.QuietMint = append(res.QuietMint, Summarize(w))
		res.Failed += w.Errors
		res.QuietRotate = append(res.QuietRotate, rotations())
	}
	u := e.underLoad(p.TSRounds, p.TSWindow, []Reader{{p.TSCached, cached}, {1, cold}}, func(r int, _ time.Time) {
		res.Rotate = append(res.Rotate, rotations())
		t.Logf("tenant-secret rotation: round %d/%d: rotate p50 %s alone, %s with readers", r+1, p.TSRounds, Dur(res.QuietRotate[r].P50), Dur(res.Rotate[r].P50))
	})
	res.BaseCached, res.BaseCold, res.RotCached, res.RotCold = u.Base[0], u.Base[1], u.During[0], u.During[1]
	res.Failed += u.Failed
	res.FailMsgs = u.FailMsgs
	res.VersionAfter = e.activeVersion(t, base)
	return res
}

// activeVersion reads a versioned resource's active_version (connections/<name>/credentials,
// connections/<name>/tenant-secrets/<type>).
func (e *Env) activeVersion(t testing.TB, path string) int64 {
	t.Helper()
	status, b, err := e.H.Do("GET", path, nil)
	var out struct {
		Data struct {
			ActiveVersion *int64 `json:"active_version"`
		} `json:"data"`
	}
	if err == nil && status == 200 {
		err = json.Unmarshal(b, &out)
	}
	if err == nil && out.Data.ActiveVersion == nil {
		err = fmt.Errorf("HTTP %d, no active_version: %.200s", status, b)
	}
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return *out.Data.ActiveVersion
}
