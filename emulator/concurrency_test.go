package emulator

import (
	"sync"
	"testing"
)

// The plugin's tests hammer the emulator from many goroutines under -race.
func TestConcurrentLogins(t *testing.T) {
	f := newFixture(t, Config{})
	const n = 100
	assertions := make([]string, n)
	for i := range assertions {
		assertions[i] = sign(t, keyA, f.claims())
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens = map[string]bool{}
		errs   []string
	)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			resp, err := f.client.PostForm(f.e.URL()+"/services/oauth2/token", jwtForm(assertions[i]))
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			r := result{status: resp.StatusCode}
			_ = decodeJSON(resp, &m)
			mu.Lock()
			defer mu.Unlock()
			if r.status != 200 {
				errs = append(errs, resp.Status)
				return
			}
			tokens[m["access_token"].(string)] = true
		}(i)
		go func() { // readers of every kind alongside
			defer wg.Done()
			_, _ = f.e.AppByConsumerKey(f.app.ConsumerKey)
			_ = f.e.AcceptedCertificates(f.app.ConsumerKey)
			_ = f.e.Counters()
			_ = f.e.TokenActive("x")
			_, _ = f.e.AppByName("Vault_JWT")
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d failures, first: %s", len(errs), errs[0])
	}
	if len(tokens) != n {
		t.Errorf("%d distinct tokens, want %d", len(tokens), n)
	}
	if c := f.e.Counters(); c.TokensIssued != n || c.TokenRequestsByUser[f.user.Username] != n {
		t.Errorf("counters %+v", c)
	}
}

// Client credentials logins keep working, under -race, while the app's
// consumer is staged and rotated: the pair they use is active, then rotated.
func TestConcurrentClientCredentialsDuringRotation(t *testing.T) {
	f := newECAFixture(t, Config{})
	const n = 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.client.PostForm(f.e.URL()+"/services/oauth2/token", ccForm(f.cc.ConsumerKey, f.cc.ConsumerSecret))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				errs = append(errs, resp.Status)
			}
		}()
	}
	st := f.stage(t)
	decodeStagedItem(t, f.api(t, "PATCH", f.consumerPath()+"/staged/"+st.ID, `{"command":"rotate"}`))
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = f.e.AcceptedConsumerKeys(st.Key)
		_, _ = f.e.AppByConsumerKey(st.Key)
	}()
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d failures, first: %s", len(errs), errs[0])
	}
	if c := f.e.Counters(); c.TokensIssued != n || c.TokenRequestsByUser[f.runAs.Username] != n {
		t.Errorf("counters %+v", c)
	}
}
