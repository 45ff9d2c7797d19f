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
