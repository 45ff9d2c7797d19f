package backend

// In-process benchmarks of the plugin's hot paths, each with a baseline measured in the same
// run, so that `benchstat` (or a plain read of the two ns/op) gives a ratio rather than an
// absolute number that depends on the machine. `make bench` runs them and folds the medians into
// docs/BENCHMARKS.md; alone:
//
//	go test -run '^$' -bench 'SignAssertion|CredsCachedHit|CredsPerLease|Tick' -count 6 ./backend/
//	go test -run '^$' -bench KeyGenerate -benchtime 5x -count 5 ./backend/
//
// Profile one with -cpuprofile (e.g. -bench 'CredsPerLease/plugin' -cpuprofile cpu.out) and
// `go tool pprof -top backend.test cpu.out`.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/emulator"
)

// benchKey is one RSA-2048 key for the signing benchmarks (generation is benchmarked apart).
func benchKey(b *testing.B) *rsa.PrivateKey {
	b.Helper()
	key, err := keyutil.Generate(nil, keyutil.RSA2048)
	if err != nil {
		b.Fatal(err)
	}
	return key
}

// BenchmarkSignAssertion: the JWT bearer assertion the plugin signs on every mint (claims, JSON,
// base64url, SHA-256, RSA PKCS#1 v1.5), against a bare rsa.SignPKCS1v15 of the same digest: the
// difference is what the JWT library adds to the RSA operation.
func BenchmarkSignAssertion(b *testing.B) {
	key := benchKey(b)
	claims := salesforce.Claims{Issuer: "3MVG9bench" + strings.Repeat("x", 75), Subject: "integration@example.com",
		Audience: "https://login.salesforce.com"}
	now := time.Now()
	jwt, err := salesforce.SignAssertion(key, claims, now)
	if err != nil {
		b.Fatal(err)
	}
	signingInput := jwt[:strings.LastIndexByte(jwt, '.')]
	digest := sha256.Sum256([]byte(signingInput))

	b.Run("plugin=salesforce.SignAssertion", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := salesforce.SignAssertion(key, claims, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=rsa.SignPKCS1v15", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// quietEnv is a testEnv whose backend logs at Info, as a plugin under a Vault at the default
// log level does (the test env logs at Trace into a buffer, which a benchmark would measure).
// The emulator's login rate limit is off: a benchmark makes far more than 3,600 logins an hour.
func quietEnv(b *testing.B) *testEnv {
	b.Helper()
	e := newTestEnv(b, func(c *emulator.Config) { c.LoginRateLimit = -1 })
	e.b.Logger().SetLevel(hclog.Info)
	return e
}

// storageReadBackend is the baseline of a creds read: a framework backend with one path whose
// read handler gets one storage entry and decodes it into the response. It is what any
// engine's read costs inside Vault's plugin framework.
func storageReadBackend(b *testing.B, s logical.Storage) *framework.Backend {
	b.Helper()
	fb := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "entry/" + framework.GenericNameRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeLowerCaseString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					var data map[string]any
					found, err := getJSON(ctx, req.Storage, "entry/"+d.Get("name").(string), &data)
					if err != nil || !found {
						return nil, err
					}
					return &logical.Response{Data: data}, nil
				}},
			},
		}},
	}
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	if err := fb.Setup(context.Background(), conf); err != nil {
		b.Fatal(err)
	}
	return fb
}

func readRequest(path string, s logical.Storage) *logical.Request {
	return &logical.Request{Operation: logical.ReadOperation, Path: path, Storage: s,
		Connection: &logical.Connection{RemoteAddr: "127.0.0.1"}}
}

func handle(b *testing.B, be logical.Backend, req *logical.Request) *logical.Response {
	resp, err := be.HandleRequest(context.Background(), req)
	if err != nil || resp == nil || resp.IsError() {
		b.Fatalf("%s: %v %v", req.Path, err, resp)
	}
	return resp
}

// BenchmarkCredsCachedHit: HandleRequest on creds/<role> in shared mode with a warm cache (no
// Salesforce call), against a framework path that reads and decodes one storage entry holding
// the same response data. Serial and parallel (GOMAXPROCS goroutines) variants: the parallel one
// shows contention on the caches' locks.
func BenchmarkCredsCachedHit(b *testing.B) {
	e := quietEnv(b)
	e.createConnection("bench", nil)
	e.createRole("shared", "bench", nil)
	warm := handle(b, e.b, readRequest("creds/shared", e.storage))

	base := &logical.InmemStorage{}
	entry, err := logical.StorageEntryJSON("entry/shared", warm.Data)
	if err != nil {
		b.Fatal(err)
	}
	if err := base.Put(context.Background(), entry); err != nil {
		b.Fatal(err)
	}
	fb := storageReadBackend(b, base)
	if js, _ := json.Marshal(warm.Data); len(js) < 300 {
		b.Fatalf("creds response is only %d bytes of JSON: %s", len(js), js)
	}

	cases := []struct {
		name string
		be   logical.Backend
		path string
		s    logical.Storage
	}{
		{"plugin=creds-shared-warm", e.b, "creds/shared", e.storage},
		{"baseline=framework-storage-read", fb, "entry/shared", base},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cs := &countingStorage{Storage: c.s}
			for b.Loop() {
				handle(b, c.be, readRequest(c.path, cs))
			}
			// Inside Vault every storage call is a gRPC round trip from the plugin to Vault.
			b.ReportMetric(float64(cs.ops.Load())/float64(b.N), "storage-calls/op")
		})
	}
	for _, c := range cases {
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					handle(b, c.be, readRequest(c.path, c.s))
				}
			})
		})
	}
	if n := e.emu.Counters().TokenRequests; n != 1 {
		b.Fatalf("the emulator saw %d token requests; a warm cache must make none after the first", n)
	}
}

// BenchmarkCredsPerLease: a cold mint in process (creds/<role> in per_lease mode: storage reads,
// signing, the token request to the in-process emulator over loopback TLS, the usage write and
// the lease response), against the raw work: sign the same assertion with the same key and POST
// it to the same emulator with a salesforce.Client built the same way. The difference is the
// plugin's own overhead on a mint.
func BenchmarkCredsPerLease(b *testing.B) {
	e := quietEnv(b)
	e.createConnection("bench", nil)
	e.createRole("leased", "bench", map[string]any{"token_mode": "per_lease", "ttl": "1h"})
	handle(b, e.b, readRequest("creds/leased", e.storage))

	ctx := context.Background()
	conn, err := getConnection(ctx, e.storage, "bench")
	if err != nil || conn == nil {
		b.Fatal(err)
	}
	key, err := getKeyMaterial(ctx, e.storage, "bench", 1)
	if err != nil {
		b.Fatal(err)
	}
	client, err := salesforce.New(salesforce.Options{LoginURL: conn.LoginURL, CACertPEM: conn.CACert,
		AllowNonSalesforceHost: true, UserAgent: "bench", Retry: e.b.retry})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	claims := salesforce.Claims{Issuer: conn.ConsumerKey, Subject: e.seed.User.Username, Audience: conn.audience()}

	b.Run("plugin=creds-per_lease", func(b *testing.B) {
		b.ReportAllocs()
		cs := &countingStorage{Storage: e.storage}
		for b.Loop() {
			resp := handle(b, e.b, readRequest("creds/leased", cs))
			if resp.Secret == nil {
				b.Fatal("per_lease read without a lease")
			}
		}
		// Inside Vault every storage call is a gRPC round trip from the plugin to Vault.
		b.ReportMetric(float64(cs.ops.Load())/float64(b.N), "storage-calls/op")
	})
	b.Run("baseline=sign+POST", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			assertion, err := salesforce.SignAssertion(key, claims, e.clock.Now())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := client.RequestToken(ctx, assertion); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkKeyGenerate: RSA key generation for each key_type, the cost of a connection create
// or a rotation. Prime search makes single samples vary a lot: run it with -benchtime Nx and
// -count, and read the median.
func BenchmarkKeyGenerate(b *testing.B) {
	for _, kt := range keyutil.KeyTypes {
		b.Run(kt, func(b *testing.B) {
			for b.Loop() {
				if _, err := keyutil.Generate(nil, kt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTickStorageCalls10k: the periodic tick with 10,000 connections and nothing due, on a
// storage that counts calls; it reports storage-calls/op, which must be 0 (no scan). The time
// itself is BenchmarkTick10kConnectionsNothingDue's, against BenchmarkTickBaselineFrameworkOnly.
func BenchmarkTickStorageCalls10k(b *testing.B) {
	store := &countingStorage{Storage: &logical.InmemStorage{}}
	seedConnections(b, store, 10000, time.Now())
	be := newBenchBackend(b, store)
	req := &logical.Request{Operation: logical.RollbackOperation, Storage: store}
	store.ops.Store(0)
	for b.Loop() {
		if _, err := be.HandleRequest(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	calls := store.ops.Load()
	b.ReportMetric(float64(calls)/float64(b.N), "storage-calls/op")
	if calls != 0 {
		b.Fatalf("%d ticks with nothing due made %d storage calls; want 0", b.N, calls)
	}
}
