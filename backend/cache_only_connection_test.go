package backend

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestConnectionDeleteRefusedWhileCacheOnlyKeysLive: a cache-only key outliving its connection
// would still be served to Salesforce for an org Vault no longer manages, and a connection made
// anew under the name would inherit it. The delete is refused, naming the keys to destroy and
// the path, and leaves storage as it was; destroyed keys (tombstones, no data key) do not block.
func TestConnectionDeleteRefusedWhileCacheOnlyKeysLive(t *testing.T) {
	cases := []struct {
		name      string
		live      []string // keys left active
		destroyed []string
	}{
		{name: "no keys"},
		{name: "only destroyed keys", destroyed: []string{"gone"}},
		{name: "live keys", live: []string{"k1", "k2"}, destroyed: []string{"gone"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newCacheOnlyEnv(t)
			secrets := map[string]string{}
			for _, kid := range append(append([]string(nil), c.live...), c.destroyed...) {
				secrets[kid] = e.createKey(kid, nil)
			}
			for _, kid := range c.destroyed {
				mustOK(t, e.del("connections/prod/cache-only-keys/"+kid))
			}
			// Another connection's key never blocks prod's delete.
			mustOK(t, e.write("connections/other", e.connectionData(nil)))
			mustOK(t, e.write("connections/other/cache-only-keys/elsewhere", map[string]any{"certificate": e.cert.pem}))

			before := storageSnapshot(t, e.storage)
			resp := e.del("connections/prod")
			if len(c.live) == 0 {
				mustOK(t, resp)
				if e.read("connections/prod") != nil {
					t.Fatal("the connection survived its delete")
				}
				return
			}
			mustErr(t, resp, "cache-only key(s) k1, k2", "connections/prod/cache-only-keys/<kid>")
			if strings.Contains(resp.Error().Error(), "gone") || strings.Contains(resp.Error().Error(), "elsewhere") {
				t.Errorf("the refusal names a destroyed key or another connection's: %v", resp.Error())
			}
			if after := storageSnapshot(t, e.storage); !reflect.DeepEqual(before, after) {
				t.Fatal("a refused connection delete changed storage")
			}
			if status, _ := e.fetch("k1", bearer(secrets["k1"]), nil); status != 200 {
				t.Fatalf("after the refusal the key is not served: HTTP %d", status)
			}
			for _, kid := range c.live {
				mustOK(t, e.del("connections/prod/cache-only-keys/"+kid))
			}
			mustOK(t, e.del("connections/prod"))
			// Made anew, the connection inherits no live key: the old kids stay destroyed.
			e.createConnection("prod", nil)
			for kid, info := range mustOK(t, e.list("connections/prod/cache-only-keys/")).Data["key_info"].(map[string]any) {
				if s := info.(map[string]any)["status"]; s != cacheOnlyDestroyed {
					t.Errorf("key %s of the recreated connection is %v", kid, s)
				}
			}
			if status, _ := e.fetch("k1", bearer(secrets["k1"]), nil); status != 404 {
				t.Fatalf("a destroyed key of a deleted connection: HTTP %d, want 404", status)
			}
		})
	}
}

// TestConnectionDeleteRacingCacheOnlyKeyCreate: a key created while its connection is deleted
// either blocks the delete or is refused itself; never do both succeed (a stranded key).
func TestConnectionDeleteRacingCacheOnlyKeyCreate(t *testing.T) {
	e := newCacheOnlyEnv(t)
	for i := range 8 {
		name := fmt.Sprintf("race%d", i)
		mustOK(t, e.write("connections/"+name, e.connectionData(nil)))
		var created, deleted *logical.Response
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			created, _ = e.do(logical.CreateOperation, "connections/"+name+"/cache-only-keys/"+name, map[string]any{"certificate": e.cert.pem})
		}()
		go func() { defer wg.Done(); deleted, _ = e.do(logical.DeleteOperation, "connections/"+name, nil) }()
		wg.Wait()
		if created.IsError() == (deleted != nil && deleted.IsError()) {
			t.Fatalf("round %d: create error %v, delete error %v: exactly one must be refused", i, created.Error(), deleted.Error())
		}
	}
}
