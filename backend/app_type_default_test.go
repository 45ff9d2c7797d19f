package backend

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// The default app_type became external_client_app (Salesforce blocks new Connected Apps since
// Spring '26), and that must not change what a stored connection means: an entry written
// without app_type (it meant the default of its day) still reads, and deploys, as a Connected
// App; a stored connected_app survives an update that does not name app_type; a new connection
// without app_type is an External Client App.
func TestAppTypeDefaultKeepsStoredMeaning(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		create   map[string]any
		rewrite  func(t *testing.T, raw map[string]any) // edits the stored JSON, as an older version wrote it
		update   map[string]any
		wantType string
		wantComp string
	}{
		{name: "new-default", wantType: appTypeExternalClientApp, wantComp: salesforce.TypeECAGlobalSettings},
		{name: "explicit-connected-app", create: map[string]any{"app_type": "connected_app"},
			wantType: appTypeConnectedApp, wantComp: salesforce.TypeConnectedApp},
		{name: "stored-without-app-type", create: map[string]any{"app_type": "connected_app"},
			rewrite: func(t *testing.T, raw map[string]any) {
				if _, ok := raw["app_type"]; !ok {
					t.Fatal("the stored entry has no app_type field to remove: the test no longer models old entries")
				}
				delete(raw, "app_type")
			},
			wantType: appTypeConnectedApp, wantComp: salesforce.TypeConnectedApp},
		{name: "update-keeps-connected-app", create: map[string]any{"app_type": "connected_app"},
			update: map[string]any{"keep_archived_keys": 3}, wantType: appTypeConnectedApp, wantComp: salesforce.TypeConnectedApp},
		{name: "update-to-eca", create: map[string]any{"app_type": "connected_app"},
			update: map[string]any{"app_type": "external_client_app"}, wantType: appTypeExternalClientApp, wantComp: salesforce.TypeECAGlobalSettings},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.createConnection("prod", c.create)
			if c.rewrite != nil {
				entry, err := e.storage.Get(ctx, connectionsPrefix+"prod")
				if err != nil || entry == nil {
					t.Fatalf("stored connection: %v %v", entry, err)
				}
				raw := map[string]any{}
				if err := json.Unmarshal(entry.Value, &raw); err != nil {
					t.Fatal(err)
				}
				c.rewrite(t, raw)
				value, err := json.Marshal(raw)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.storage.Put(ctx, &logical.StorageEntry{Key: entry.Key, Value: value, SealWrap: entry.SealWrap}); err != nil {
					t.Fatal(err)
				}
				e.b.invalidate(ctx, entry.Key) // as Vault tells the backend of a write it did not make
			}
			if c.update != nil {
				mustOK(t, e.write("connections/prod", c.update))
			}
			if got := e.read("connections/prod").Data["app_type"]; got != c.wantType {
				t.Errorf("read app_type = %v, want %s", got, c.wantType)
			}
			conn, err := getConnection(ctx, e.storage, "prod")
			if err != nil || conn == nil {
				t.Fatalf("getConnection: %v %v", conn, err)
			}
			if typ, _ := conn.component(); typ != c.wantComp {
				t.Errorf("deploy component type = %s, want %s", typ, c.wantComp)
			}
		})
	}
}
