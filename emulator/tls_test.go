package emulator

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/testclock"
)

func TestTLSAndURL(t *testing.T) {
	e := New(Config{})
	if e.URL() != "" {
		t.Error("URL before Start")
	}
	if err := e.Start("0.0.0.0:0"); err == nil {
		t.Fatal("non-loopback address accepted")
	}
	if err := e.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start accepted")
	}
	if !regexp.MustCompile(`^https://127\.0\.0\.1:\d+$`).MatchString(e.URL()) {
		t.Errorf("URL %q", e.URL())
	}
	block, _ := pem.Decode([]byte(e.CACertPEM()))
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA: %v", err)
	}
	c := trustingClient(t, e)
	port := e.URL()[strings.LastIndex(e.URL(), ":")+1:]
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := c.Get("https://" + host + ":" + port + "/services/data/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 1 {
			t.Errorf("protocol %s (hijacking faults need HTTP/1.1)", resp.Proto)
		}
		leaf := resp.TLS.PeerCertificates[0]
		if err := leaf.VerifyHostname("::1"); err != nil {
			t.Errorf("server cert lacks ::1: %v", err)
		}
	}
	// A client that does not trust the CA fails verification.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(e.URL() + "/services/data/"); err == nil {
		t.Error("untrusted client connected")
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	if err := e.Close(); err != nil {
		t.Error("second Close:", err)
	}
}

// The connection counter is what `make bench` reads to tell a client that reuses its keep-alive
// connections from one that dials again.
func TestConnectionsCounted(t *testing.T) {
	e := New(Config{})
	if err := e.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	get := func(c *http.Client) {
		resp, err := c.Get(e.URL() + "/services/data/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	reuse := trustingClient(t, e)
	for range 5 {
		get(reuse)
	}
	if n := e.Counters().Connections; n != 1 {
		t.Fatalf("5 requests on one keep-alive client opened %d connections, want 1", n)
	}
	dial := trustingClient(t, e)
	dial.Transport.(*http.Transport).DisableKeepAlives = true
	for range 3 {
		get(dial)
	}
	if n := e.Counters().Connections; n != 4 {
		t.Fatalf("3 requests without keep-alive: %d connections in all, want 4", n)
	}
}

// In-process use: Handler() behind httptest, URLs built from the Host.
func TestHandlerInProcess(t *testing.T) {
	testKeys(t)
	clock := testclock.New(time.Now())
	e := New(Config{Clock: clock.Now})
	seed := e.SeedDemo()
	if err := e.SetAppCertificate(seed.App.ConsumerKey, certA); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(e.Handler())
	defer srv.Close()
	f := &fixture{e: e, clock: clock, client: srv.Client(), org: seed.Org, user: seed.User, app: seed.App}
	c := f.claims()
	c["aud"] = srv.URL
	req, _ := http.NewRequest("POST", srv.URL+"/services/oauth2/token", strings.NewReader(jwtForm(sign(t, keyA, c)).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := f.do(t, req)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if m := r.json(t); m["instance_url"] != srv.URL || !strings.HasPrefix(m["id"].(string), srv.URL+"/id/") {
		t.Errorf("urls %v", m)
	}
}
