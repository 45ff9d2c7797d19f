package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestReliabilityProcess: process faults on a production-like Vault (file storage, initialised
// and unsealed with a key; the 3-node Raft leader loss and kill -9 mid-rotation are in
// rotation_*_test.go):
//   - kill -9 of the plugin process while mints are in flight (a hanging token endpoint holds
//     them): the in-flight reads fail, nothing half-done stays (no lease, no token, no key
//     change), and the next reads succeed on the restarted plugin;
//   - seal/unseal cycles and a graceful restart keep every key version, its status and
//     fingerprint, a pending rotation included, and minting resumes with the same key;
//   - kill -9 of Vault itself while a metadata_api deploy is in progress: after restart and
//     unseal the periodic func resumes the rotation from storage and completes it with the
//     deploy it had recorded (no second deploy), and no key is lost.
func TestReliabilityProcess(t *testing.T) {
	t.Parallel()
	cfg := LoadConfig(t)
	// A deploy stays InProgress for 4 polls (8 s): long enough to crash Vault while it runs,
	// short enough for one drive of the restarted plugin (which polls inline for at most 12 s,
	// then leaves the rest to later ticks).
	emu := StartEmulator(t, cfg, "-deploy-polls", "4")
	fv := startRelFileVault(t, cfg)
	e := &Env{Cfg: cfg, Vault: fv.Vault, Emu: emu, PluginSHA: fv.PluginSHA}
	v := fv.Vault
	uuid := relMountUUID(t, v)

	// "rot": metadata_api on the demo app, for the rotation interrupted by a Vault crash.
	rotCert := StringField(t, e.CreateConnection(t, v, "rot", e.MetadataAPIFields(nil)), "certificate")
	emu.AddApp(t, emu.AppName, emu.ConsumerKey, rotCert)
	e.CreateRole(t, v, "rot-shared", "rot", nil)
	e.CreateRole(t, v, "rot-leased", "rot", map[string]any{"token_mode": "per_lease"})

	// "multi": manual, on its own app, with three versions: 1 archived, 2 active (an imported
	// key), 3 pending (a rotation waiting for the certificate to be uploaded).
	const multiKey, multiApp = "RelProcessMultiKey", "Rel_Multi"
	e.CreateConnection(t, v, "multi", map[string]any{"consumer_key": multiKey})
	imported, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(imported)}))
	v.Write(t, Mount+"/connections/multi/import", map[string]any{"private_key": keyPEM, "activate": true})
	emu.AddApp(t, multiApp, multiKey, StringField(t, v.Read(t, Mount+"/connections/multi/certificate"), "certificate"))
	v.Write(t, Mount+"/connections/multi/rotate", nil)
	e.CreateRole(t, v, "multi-leased", "multi", map[string]any{"token_mode": "per_lease"})
	requireRel := func(conn, want string) {
		t.Helper()
		if got := relRingString(relMustRing(t, v, conn)); got != want {
			t.Fatalf("connection %s key ring %q, want %q", conn, got, want)
		}
	}
	requireRel("multi", "1:archived 2:active 3:pending")
	for _, role := range []string{"rot-shared", "rot-leased", "multi-leased"} {
		e.Emu.RequireTokenAccepted(t, ReadCreds(t, v.Client, role).Data["access_token"].(string))
	}

	t.Run("kill_plugin_mid_mint", func(t *testing.T) {
		rings := map[string]map[int]relKey{"rot": relMustRing(t, v, "rot"), "multi": relMustRing(t, v, "multi")}
		leasesBefore := relLeaseCount(t, v, "rot-leased") + relLeaseCount(t, v, "multi-leased")
		e.CreateRole(t, v, "mint-shared", "rot", nil) // never read: its read must mint
		emu.ResetCounters(t)
		emu.SetFault(t, relFault{"endpoint": "token", "kind": "hang"})

		roles := []string{"rot-leased", "multi-leased", "mint-shared"}
		type result struct {
			role string
			d    time.Duration
			err  error
		}
		results := make(chan result, len(roles))
		var wg sync.WaitGroup
		for _, role := range roles {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, d, err := relRead(v.NewClient(t, ""), role)
				results <- result{role, d, err}
			}()
		}
		WaitFor(t, 30*time.Second, "every mint to be in flight at the token endpoint", func() error {
			if n := relCounter(t, emu, "faults_injected"); n < int64(len(roles)) {
				return fmt.Errorf("%d of %d token requests held", n, len(roles))
			}
			return nil
		})
		injected := relCounter(t, emu, "faults_injected")
		pid := v.PluginPID(t)
		t.Logf("kill -9 %d (the plugin) with %d mints in flight", pid, len(roles))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Salesforce answers again. What an in-flight read gets is Vault's choice, and a race
		// inside Vault: the raw RPC error (usually, ~0.3 s), or, if go-plugin has already marked
		// the client gone, a restart and a retry of the request on the new process, under a
		// lock that serialises the retries. A retried read is served by the restarted plugin;
		// with the fault still set it would hang 9 s per read, one after another.
		emu.ClearFaults(t)
		wg.Wait()
		close(results)
		failed, served, retried, retriedLeased := 0, 0, 0, 0
		for r := range results {
			if r.err == nil {
				t.Logf("in-flight read of %s was retried by Vault on the restarted plugin and served after %s", r.role, r.d.Round(time.Millisecond))
				served++
				retried++
				if strings.HasSuffix(r.role, "-leased") {
					retriedLeased++
				}
				continue
			}
			failed++
			t.Logf("in-flight read of %s when the plugin died: HTTP %d after %s: %s", r.role, StatusCode(r.err), r.d.Round(time.Millisecond), oneLine(r.err))
			if r.d > relColdReadBound {
				t.Errorf("the in-flight read of %s took %s to fail (bound %s)", r.role, r.d, relColdReadBound)
			}
		}
		WaitFor(t, 15*time.Second, "the killed plugin to be gone", func() error {
			if processAlive(pid) {
				return errNotYet
			}
			return nil
		})
		v.WaitForLog(t, 15*time.Second, "plugin process exited", fmt.Sprintf("id=%d", pid))

		// Nothing half-done: no lease for a read that failed, no token issued for it (only for
		// the reads Vault retried and the restarted plugin served).
		if n := relCounter(t, emu, "tokens_issued"); n != int64(retried) {
			t.Errorf("Salesforce issued %d tokens, want %d (one per retried read, none for the killed mints)", n, retried)
		}
		if got := relLeaseCount(t, v, "rot-leased") + relLeaseCount(t, v, "multi-leased"); got != leasesBefore+retriedLeased {
			t.Errorf("%d leases after the kill, want %d (as before, plus %d retried leased reads; none for a failed read)", got, leasesBefore+retriedLeased, retriedLeased)
		}
		// The next reads are served by the restarted plugin, with the same keys.
		WaitFor(t, 30*time.Second, "reads to be served by the restarted plugin", func() error {
			_, _, err := relRead(v.Client, "mint-shared")
			return err
		})
		served++
		for _, role := range roles {
			s := ReadCreds(t, v.Client, role)
			e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
			served++
		}
		if next := v.PluginPID(t); next == pid {
			t.Fatalf("plugin pid %d unchanged after kill", pid)
		}
		lost := 0
		for conn, before := range rings {
			n, what := relKeysLost(before, relMustRing(t, v, conn))
			lost += n
			if n > 0 {
				t.Errorf("%s: keys lost: %v", conn, what)
			}
			relRequireStorage(t, v, uuid, conn)
		}
		if p := relPanics(t, v); len(p) > 0 {
			t.Errorf("panics in the Vault log:\n%s", strings.Join(p, "\n"))
		}
		relReport(t, "process", "kill_plugin_mid_mint", "injected", injected, "served", served, "failed", failed, "keys_lost", lost)
	})

	t.Run("seal_unseal_and_restart", func(t *testing.T) {
		rings := map[string]map[int]relKey{"rot": relMustRing(t, v, "rot"), "multi": relMustRing(t, v, "multi")}
		certs := map[string]string{}
		for conn := range rings {
			for n := range rings[conn] {
				certs[fmt.Sprintf("%s/%d", conn, n)] = StringField(t, v.Read(t, fmt.Sprintf("%s/connections/%s/keys/%d", Mount, conn, n)), "certificate")
			}
		}
		multiRotation, err := readRotation(v.Client, "multi")
		if err != nil {
			t.Fatal(err)
		}
		served, failed, lost := 0, 0, 0
		cycles := []string{"seal", "seal", "seal", "restart"}
		for i, how := range cycles {
			if how == "seal" {
				fv.Seal(t)
				if _, _, err := relRead(v.Client, "multi-leased"); err == nil {
					t.Errorf("a creds read was served by a sealed Vault")
				} else {
					failed++
					if StatusCode(err) != 503 {
						t.Errorf("creds read on a sealed Vault: %v, want HTTP 503", err)
					}
				}
				fv.Unseal(t)
			} else {
				fv.Restart(t, false)
			}
			for conn, before := range rings {
				after := relMustRing(t, v, conn)
				n, what := relKeysLost(before, after)
				lost += n
				if n > 0 {
					t.Errorf("cycle %d (%s): %s: keys lost: %v", i+1, how, conn, what)
				}
				if !maps.Equal(before, after) {
					t.Errorf("cycle %d (%s): %s key ring %s, was %s", i+1, how, conn, relRingString(after), relRingString(before))
				}
				for n := range after {
					got := StringField(t, v.Read(t, fmt.Sprintf("%s/connections/%s/keys/%d", Mount, conn, n)), "certificate")
					if got != certs[fmt.Sprintf("%s/%d", conn, n)] {
						t.Errorf("cycle %d (%s): %s version %d has another certificate", i+1, how, conn, n)
					}
				}
				relRequireStorage(t, v, uuid, conn)
			}
			if st, err := readRotation(v.Client, "multi"); err != nil || st.State != multiRotation.State || st.PendingVersion != 3 || st.StartedAt != multiRotation.StartedAt {
				t.Errorf("cycle %d (%s): the pending rotation of multi is now %s (%v), was %s", i+1, how, st, err, multiRotation)
			}
			s := ReadCreds(t, v.Client, "multi-leased")
			if kv := Int(t, s, "key_version"); kv != 2 {
				t.Errorf("cycle %d (%s): minted with key version %d, want the imported active key 2", i+1, how, kv)
			}
			e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
			e.Emu.RequireTokenAccepted(t, ReadCreds(t, v.Client, "rot-shared").Data["access_token"].(string))
			served += 2
		}
		relReport(t, "process", "seal_unseal_restart", "injected", len(cycles), "served", served, "failed", failed, "keys_lost", lost)
	})

	t.Run("kill_vault_mid_rotation", func(t *testing.T) {
		before := relMustRing(t, v, "rot")
		emu.ResetCounters(t)
		v.Write(t, Mount+"/connections/rot/rotate", nil)
		var held rotationStatus
		WaitFor(t, 60*time.Second, "the deploy to be in progress", func() (err error) {
			if held, err = readRotation(v.Client, "rot"); err != nil {
				return err
			}
			if held.State != "deploying" || held.DeployID == "" {
				return fmt.Errorf("rotation %s", held)
			}
			return nil
		})
		t.Logf("rotation held at %s", held)
		fv.Restart(t, true)

		after, err := readRotation(v.Client, "rot")
		if err != nil {
			t.Fatal(err)
		}
		if after.State != "deploying" || after.DeployID != held.DeployID || after.StartedAt != held.StartedAt || after.PendingVersion != held.PendingVersion {
			t.Fatalf("after the crash the rotation reads %s, was %s", after, held)
		}
		readers := []*credsReaders{
			relStartReaders(t, v, "rot-shared", 2, 300*time.Millisecond),
			relStartReaders(t, v, "rot-leased", 1, time.Second),
		}
		var final rotationStatus
		last := after.String()
		WaitFor(t, rotationTickTimeout, "the periodic func to resume and complete the rotation", func() (err error) {
			if final, err = readRotation(v.Client, "rot"); err != nil {
				return err
			}
			if final.String() != last {
				last = final.String()
				t.Logf("rotation now %s", last)
			}
			if final.State == "failed" {
				t.Fatalf("the resumed rotation failed: %s", final)
			}
			if final.State != "idle" || final.LastCompletedAt == "" {
				return fmt.Errorf("rotation %s", final)
			}
			return nil
		})
		for _, l := range relLogLines(t, v.LogPath) {
			if strings.Contains(l, "connection=rot") && (strings.Contains(l, "rotation") || strings.Contains(l, "deploy") ||
				strings.Contains(l, "pending key")) {
				t.Logf("vault log: %s", l)
			}
		}
		var served, failed int64
		for _, r := range readers {
			s, f, errs := r.results()
			served, failed = served+s, failed+f
			if f > 0 {
				t.Errorf("%d creds reads failed while the rotation resumed:\n%s", f, strings.Join(errs, "\n"))
			}
		}
		ring := relMustRing(t, v, "rot")
		if got := relRingString(ring); got != "1:archived 2:active" {
			t.Errorf("key ring %q after the resumed rotation, want 1:archived 2:active", got)
		}
		if n := relCounter(t, emu, "deploy_requests"); n != 1 {
			t.Errorf("%d deploy requests, want 1: the resumed rotation must poll the deploy it recorded", n)
		}
		cert := StringField(t, v.Read(t, Mount+"/connections/rot/certificate"), "certificate")
		if !sameCertificate(relAppCertificate(t, emu, emu.ConsumerKey), cert) {
			t.Errorf("the app does not hold the new active certificate")
		}
		s := ReadCreds(t, v.Client, "rot-leased")
		if kv := Int(t, s, "key_version"); kv != 2 {
			t.Errorf("minted with key version %d after the rotation, want 2", kv)
		}
		e.Emu.RequireTokenAccepted(t, s.Data["access_token"].(string))
		lost, what := relKeysLost(before, ring)
		if lost > 0 {
			t.Errorf("keys lost: %v", what)
		}
		relRequireStorage(t, v, uuid, "rot")
		relReport(t, "process", "kill_vault_mid_rotation", "injected", 1, "served", served+1, "failed", failed, "keys_lost", lost,
			"deploy_requests", relCounter(t, emu, "deploy_requests"))
	})
}

// relLeaseCount counts the leases Vault holds for creds/<role>.
func relLeaseCount(t testing.TB, v *Vault, role string) int {
	t.Helper()
	s, err := v.Client.Logical().List("sys/leases/lookup/" + Mount + "/creds/" + role + "/")
	if err != nil {
		t.Fatalf("listing leases of creds/%s: %v", role, err)
	}
	if s == nil || s.Data == nil {
		return 0
	}
	return len(anyStrings(s.Data["keys"]))
}
