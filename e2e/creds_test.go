package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TestCredsMint reads creds/ROLE and uses the token the way an application would: the emulator
// must accept it.
func TestCredsMint(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "demo", "app", nil)

	s := ReadCreds(t, v.Client, "app")
	token := s.Data["access_token"].(string)
	e.Emu.RequireTokenAccepted(t, token)
	if !e.Emu.TokenActive(t, token) {
		t.Fatal("the emulator does not know the token as active")
	}

	for _, f := range []string{"id", "token_type", "username", "issued_at", "expires_at"} {
		StringField(t, s, f)
	}
	if got := s.Data["username"]; got != e.Emu.Username {
		t.Errorf("username %v, want %s", got, e.Emu.Username)
	}
	if got := Int(t, s, "key_version"); got != 1 {
		t.Errorf("key_version %d, want 1", got)
	}
	issued, err1 := time.Parse(time.RFC3339, s.Data["issued_at"].(string))
	expires, err2 := time.Parse(time.RFC3339, s.Data["expires_at"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("issued_at/expires_at are not RFC 3339: %v %v", err1, err2)
	}
	// expires_at is an estimate: issue time + session_timeout (default 2h).
	if d := expires.Sub(issued); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("expires_at - issued_at = %s, want the 2h session_timeout", d)
	}
	if ttl := Int(t, s, "ttl"); ttl <= 0 || ttl > 2*60*60 {
		t.Errorf("ttl %d, want seconds until expires_at", ttl)
	}
	// Shared mode (the default) hands out no lease (api.md, creds).
	if s.LeaseID != "" {
		t.Errorf("shared mode returned lease %q", s.LeaseID)
	}

	// The CLI view an operator gets.
	v.CLI(t, "read", Mount+"/creds/app")

	r := v.Read(t, Mount+"/roles/app")
	if got := Int(t, r, "tokens_minted"); got != 1 {
		t.Errorf("role tokens_minted %d, want 1", got)
	}
}

// TestCredsSharedOneLogin: many applications, each with its own Vault token, read a shared role
// at the same time. They all get the same Salesforce token, and Salesforce sees exactly one
// login — the point of shared mode (Salesforce limits logins per user per hour).
func TestCredsSharedOneLogin(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "demo", "shared", map[string]any{"token_mode": "shared"})
	v.Write(t, "sys/policies/acl/reader", map[string]any{
		"policy": fmt.Sprintf(`path "%s/creds/shared" { capabilities = ["read"] }`, Mount),
	})
	e.Emu.ResetCounters(t)

	const readers, readsEach = 10, 5
	tokens := make(chan string, readers*readsEach)
	var wg sync.WaitGroup
	for i := 0; i < readers; i++ {
		tok, err := v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}})
		if err != nil {
			t.Fatal(err)
		}
		c := v.NewClient(t, tok.Auth.ClientToken)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < readsEach; j++ {
				s, err := c.Logical().Read(Mount + "/creds/shared")
				if err != nil || s == nil {
					t.Errorf("reader: %v", err)
					return
				}
				if s.LeaseID != "" {
					t.Errorf("shared read returned lease %q", s.LeaseID)
				}
				tokens <- fmt.Sprint(s.Data["access_token"])
			}
		}()
	}
	wg.Wait()
	close(tokens)

	distinct := map[string]int{}
	for tok := range tokens {
		distinct[tok]++
	}
	if len(distinct) != 1 {
		t.Fatalf("%d readers got %d different tokens, want one shared token", readers, len(distinct))
	}
	for tok := range distinct {
		e.Emu.RequireTokenAccepted(t, tok)
	}
	if n := e.Emu.Counter(t, "token_requests"); n != 1 {
		t.Errorf("the emulator saw %d token requests for %d reads, want exactly 1", n, readers*readsEach)
	}
	if n := e.Emu.Counter(t, "tokens_issued"); n != 1 {
		t.Errorf("the emulator issued %d tokens, want 1", n)
	}
}

// TestCredsPerLease: each read mints its own token under a lease, and revoking one lease revokes
// that token at Salesforce and no other.
func TestCredsPerLease(t *testing.T) {
	e := NewEnv(t)
	v := e.Vault
	e.Ready(t, v, "demo", "leased", map[string]any{"token_mode": "per_lease", "ttl": "5m"})
	e.Emu.ResetCounters(t)

	a := ReadCreds(t, v.Client, "leased")
	b := ReadCreds(t, v.Client, "leased")
	tokA, tokB := a.Data["access_token"].(string), b.Data["access_token"].(string)
	if tokA == tokB {
		t.Fatal("two per_lease reads returned the same token")
	}
	for _, s := range []*api.Secret{a, b} {
		if s.LeaseID == "" || s.LeaseDuration != 300 {
			t.Fatalf("per_lease read: lease %q for %ds, want a lease for the role ttl 300s", s.LeaseID, s.LeaseDuration)
		}
	}
	e.Emu.RequireTokenAccepted(t, tokA)
	e.Emu.RequireTokenAccepted(t, tokB)

	v.CLI(t, "lease", "revoke", a.LeaseID)
	e.Emu.RequireTokenRevoked(t, tokA)
	if !e.Emu.TokenActive(t, tokB) {
		t.Fatal("revoking one lease revoked the other lease's token too")
	}
	if n := e.Emu.Counter(t, "revocations"); n != 1 {
		t.Errorf("the emulator counted %d revocations, want 1", n)
	}
}
