package salesforce

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientRetriesOnlyWhatARetryCanFix: outages (5xx) are retried up to the policy's attempts;
// a TLS setup that cannot work (a certificate that does not verify, a server with nothing newer
// than TLS 1.1) fails at the first attempt, with an error that names the setting to check.
func TestClientRetriesOnlyWhatARetryCanFix(t *testing.T) {
	retry := RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
		AttemptTimeout: 2 * time.Second, Budget: 5 * time.Second}
	cases := []struct {
		name          string
		tls           *tls.Config // the server's; nil: httptest's default
		trustServer   bool
		wantAttempts  int
		wantPermanent bool
		wantCause     []string
	}{
		{name: "503 is retried", trustServer: true, wantAttempts: 3, wantCause: []string{"HTTP 503"}},
		{name: "untrusted certificate", trustServer: false, wantAttempts: 1, wantPermanent: true,
			wantCause: []string{"x509", "ca_cert"}},
		{name: "server offers at most TLS 1.1", trustServer: true, wantAttempts: 1, wantPermanent: true,
			tls:       &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
			wantCause: []string{"protocol version", "TLS 1.2", "login_url"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var handshakes, requests atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				requests.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
			srv.TLS = &tls.Config{}
			if c.tls != nil {
				srv.TLS = c.tls.Clone()
			}
			srv.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
				handshakes.Add(1)
				return nil, nil
			}
			srv.StartTLS()
			defer srv.Close()
			opts := Options{LoginURL: srv.URL, AllowNonSalesforceHost: true, Retry: retry}
			if c.trustServer {
				opts.CACertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
			}
			cl, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()

			_, err = cl.RequestToken(context.Background(), "header.payload.signature")
			var ue *UpstreamError
			if !errors.As(err, &ue) {
				t.Fatalf("RequestToken: %v (%T), want an UpstreamError", err, err)
			}
			if ue.Attempts != c.wantAttempts || ue.Permanent != c.wantPermanent {
				t.Errorf("attempts=%d permanent=%v, want %d and %v (%v)", ue.Attempts, ue.Permanent, c.wantAttempts, c.wantPermanent, err)
			}
			// What the server saw agrees: one request per attempt, or one refused handshake.
			if got := int(requests.Load()); c.wantPermanent && got != 0 || !c.wantPermanent && got != c.wantAttempts {
				t.Errorf("the server answered %d requests", got)
			}
			if c.wantPermanent && handshakes.Load() != 1 {
				t.Errorf("the server saw %d handshakes, want 1", handshakes.Load())
			}
			for _, want := range c.wantCause {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestIsTLSVersionMismatch(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}}, true},
		{errors.New("remote error: tls: insufficient security level"), true},
		{errors.New("tls: server selected unsupported protocol version 302"), true},
		{errors.New("remote error: tls: handshake failure"), false}, // not only versions: left to retries
		{errors.New("connection reset by peer"), false},
	} {
		if got := isTLSVersionMismatch(c.err); got != c.want {
			t.Errorf("isTLSVersionMismatch(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
