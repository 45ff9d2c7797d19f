package backend

import "testing"

// TestClientsShareTransports: a transport (root pool, idle TLS connections) is what costs
// memory, and it does not depend on the login host, so connections with the same CA bundle and
// host rule share one; a different CA gets its own.
func TestClientsShareTransports(t *testing.T) {
	e := newTestEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.createConnection(n, nil)
	}
	mustOK(t, e.write("connections/other", e.connectionData(map[string]any{"ca_cert": e.emu.CACertPEM() + "\n" + selfSigned(t, newRSA(t, 2048))})))
	e.createRole("ra", "a", nil)
	e.createRole("rb", "b", nil)
	e.createRole("rc", "c", nil)
	e.createRole("ro", "other", nil)
	for _, r := range []string{"ra", "rb", "rc", "ro"} {
		e.read("creds/" + r) // builds each connection's client, whether or not the app accepts it
	}
	e.b.clients.mu.Lock()
	clients, transports := len(e.b.clients.m), len(e.b.clients.transports)
	e.b.clients.mu.Unlock()
	if clients != 4 || transports != 2 {
		t.Fatalf("%d clients over %d transports, want 4 over 2", clients, transports)
	}
	// A settings write drops the connection's client, not the shared transport.
	mustOK(t, e.write("connections/a", map[string]any{"keep_archived_keys": 3}))
	e.b.clients.mu.Lock()
	defer e.b.clients.mu.Unlock()
	if len(e.b.clients.m) != 3 || len(e.b.clients.transports) != 2 {
		t.Fatalf("after a write: %d clients, %d transports", len(e.b.clients.m), len(e.b.clients.transports))
	}
}
