package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/e2e"
)

// StorageGrowth is what a batch of writes added to a mount's directory on the file backend.
type StorageGrowth struct {
	Count               int
	Apparent, Allocated int64 // bytes added
	Entries             int   // storage entries added
}

// Per is bytes (apparent, allocated) per item.
func (g StorageGrowth) Per() (float64, float64) {
	if g.Count == 0 {
		return 0, 0
	}
	return float64(g.Apparent) / float64(g.Count), float64(g.Allocated) / float64(g.Count)
}

// ScaleResult is the plugin with many connections and roles.
type ScaleResult struct {
	Conns, Roles       int
	ConnSeed, RoleSeed time.Duration
	MintAll            time.Duration // one creds read per role (every role cold), 8 workers

	PerConnection, PerRole, PerUsage, PerKeyVersion StorageGrowth

	RoleList, KVList []time.Duration // LIST <mount>/roles and LIST kv/metadata/list/ of as many keys

	RSSBefore, RSSSeeded, RSSMinted, HWM int64
	// RSSFileMinted is the file-backed part of RSSMinted (RssFile): the plugin binary's pages,
	// shared with the page cache; the rest is Go's heap and runtime.
	RSSFileMinted int64
	Errors        []string
}

// Scale seeds a fresh plugin mount with ScaleConns connections and ScaleRoles roles through
// Vault's API and measures storage growth, list time and the plugin process's memory.
// Connections import one harness key with its certificate (registered on the Bench_Main app),
// so seeding costs no key generation; what is stored is the same as for a generated key.
func (e *Env) Scale(t testing.TB) *ScaleResult {
	t.Helper()
	p := e.Plan
	res := &ScaleResult{Conns: p.ScaleConns, Roles: p.ScaleRoles}
	ctx := context.Background()
	uuid := e.S.Mount(t, ScaleMount, e2e.PluginName, nil)
	rss := func() int64 {
		n, err := RSS(e.S.PluginPID(t))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	grow := func(count int, f func()) StorageGrowth {
		a0, b0, n0 := e.S.MountBytes(t, uuid)
		f()
		a1, b1, n1 := e.S.MountBytes(t, uuid)
		return StorageGrowth{Count: count, Apparent: a1 - a0, Allocated: b1 - b0, Entries: n1 - n0}
	}
	res.RSSBefore = rss()

	conn := func(i int) string { return fmt.Sprintf("c%05d", i) }
	data := e.connectionData(e.Main, nil)
	res.PerConnection = grow(p.ScaleConns, func() {
		start := time.Now()
		err := Parallel(ctx, p.ScaleConns, p.SeedWorkers, func(i int) error {
			_, err := e.S.API.Logical().Write(ScaleMount+"/connections/"+conn(i), data)
			return err
		})
		if err != nil {
			t.Fatalf("seeding connections: %v", err)
		}
		res.ConnSeed = time.Since(start)
	})
	t.Logf("scale: %d connections in %s", p.ScaleConns, res.ConnSeed.Round(time.Millisecond))

	role := func(i int) string { return fmt.Sprintf("r%05d", i) }
	res.PerRole = grow(p.ScaleRoles, func() {
		start := time.Now()
		err := Parallel(ctx, p.ScaleRoles, p.SeedWorkers, func(i int) error {
			_, err := e.S.API.Logical().Write(ScaleMount+"/roles/"+role(i),
				map[string]any{"connection": conn(i % p.ScaleConns), "username": e.Emu.Username})
			return err
		})
		if err != nil {
			t.Fatalf("seeding roles: %v", err)
		}
		res.RoleSeed = time.Since(start)
	})
	t.Logf("scale: %d roles in %s", p.ScaleRoles, res.RoleSeed.Round(time.Millisecond))
	res.RSSSeeded = rss()

	// The floor for a list: KV-v2 metadata list of as many keys.
	err := Parallel(ctx, p.ScaleRoles, p.SeedWorkers, func(i int) error {
		_, err := e.S.API.Logical().Write(KVMount+"/data/list/"+role(i), map[string]any{"data": map[string]any{"v": i}})
		return err
	})
	if err != nil {
		t.Fatalf("seeding KV keys: %v", err)
	}
	list := func(path string) (time.Duration, error) {
		start := time.Now()
		status, b, err := e.H.Do("LIST", path, nil)
		d := time.Since(start)
		if err != nil {
			return d, err
		}
		var out struct {
			Data struct {
				Keys []string `json:"keys"`
			} `json:"data"`
		}
		if status != 200 || json.Unmarshal(b, &out) != nil || len(out.Data.Keys) < p.ScaleRoles {
			return d, fmt.Errorf("LIST %s: HTTP %d, %d keys, want %d", path, status, len(out.Data.Keys), p.ScaleRoles)
		}
		return d, nil
	}
	for i := 0; i < p.ListRounds; i++ {
		for _, j := range rotate([]string{"roles", "kv"}, i) {
			if j == "roles" {
				d, err := list(ScaleMount + "/roles")
				if err != nil {
					t.Fatal(err)
				}
				res.RoleList = append(res.RoleList, d)
			} else {
				d, err := list(KVMount + "/metadata/list/")
				if err != nil {
					t.Fatal(err)
				}
				res.KVList = append(res.KVList, d)
			}
		}
	}

	// One mint per role: every role's token cached, every connection's client and signer
	// built. The usage entry each mint writes is the per-role storage of a used role.
	res.PerUsage = grow(p.ScaleRoles, func() {
		start := time.Now()
		err := Parallel(ctx, p.ScaleRoles, 8, func(i int) error {
			return e.H.Expect("GET", ScaleMount+"/creds/"+role(i), nil, `"access_token"`)
		})
		if err != nil {
			t.Fatalf("minting a token per role: %v", err)
		}
		res.MintAll = time.Since(start)
	})
	t.Logf("scale: one mint per role in %s", res.MintAll.Round(time.Millisecond))
	res.RSSMinted = rss()
	if kb, err := e2e.ProcStatusKB(e.S.PluginPID(t), "RssFile"); err == nil {
		res.RSSFileMinted = kb * 1024
	}
	res.HWM, _ = HWM(e.S.PluginPID(t))

	// Key versions: rotations on a connection that keeps every archived key (keep_archived_keys
	// 100), each promoted at once (deploy=manual, promote force=true).
	e.CreateConnection(t, ScaleMount, "growth", e.Main, map[string]any{"keep_archived_keys": 100})
	res.PerKeyVersion = grow(p.KeyVersions, func() {
		for i := 0; i < p.KeyVersions; i++ {
			e.S.Write(t, ScaleMount+"/connections/growth/rotate", nil)
			e.S.Write(t, ScaleMount+"/connections/growth/promote", map[string]any{"force": true})
		}
	})
	if v := e.ActiveKeyVersion(t, ScaleMount, "growth"); v != int64(1+p.KeyVersions) {
		res.Errors = append(res.Errors, fmt.Sprintf("growth connection at key version %d after %d rotations", v, p.KeyVersions))
	}
	return res
}
