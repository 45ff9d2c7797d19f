package salesforce

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpproxy"
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

func TestPublicAddress(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true}, {"136.147.40.1", true}, {"1.1.1.1", true},
		{"2606:4700::1111", true}, {"2a01:111:f400::1", true},
		{"0.0.0.0", false}, {"0.1.2.3", false}, {"10.0.0.1", false}, {"127.0.0.1", false}, {"127.8.9.10", false},
		{"100.64.0.1", false}, {"100.100.100.200", false}, {"100.127.255.254", false}, {"100.128.0.1", true},
		{"169.254.169.254", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"172.32.0.1", true},
		{"192.0.0.1", false}, {"192.0.2.1", false}, {"192.88.99.1", false}, {"192.168.1.1", false},
		{"198.18.0.1", false}, {"198.19.255.255", false}, {"198.20.0.1", true}, {"198.51.100.7", false},
		{"203.0.113.9", false}, {"224.0.0.1", false}, {"239.1.2.3", false}, {"240.0.0.1", false}, {"255.255.255.255", false},
		{"::", false}, {"::1", false}, {"fc00::1", false}, {"fd00::1", false}, {"fe80::1", false}, {"fe80::1%eth0", false},
		{"ff02::1", false}, {"2001:db8::1", false}, {"100::1", false}, {"fec0::1", false}, {"::a00:1", false},
		// IPv4 inside IPv6: the embedded address decides.
		{"::ffff:10.0.0.1", false}, {"::ffff:8.8.8.8", true}, {"::ffff:127.0.0.1", false},
		{"64:ff9b::a00:1", false}, {"64:ff9b::7f00:1", false}, {"64:ff9b::6464:64c8", false}, {"64:ff9b::808:808", true},
		{"64:ff9b:1::a00:1", false}, {"64:ff9b:1::808:808", true}, {"64:ff9b:1:ab00:a:0:100:0", false},
		{"2002:0a00:0001::", false}, {"2002:c0a8:0101::1", false}, {"2002:0808:0808::", true}, {"2002:0808:0808:1::1", true},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false}, // Teredo: the client address cannot be checked
		{"", false},
	} {
		a, _ := netip.ParseAddr(c.addr) // "" leaves the zero Addr, which is not public
		if got := PublicAddress(a); got != c.want {
			t.Errorf("PublicAddress(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}

func TestRefusePrivateAddresses(t *testing.T) {
	for addr, ok := range map[string]bool{
		"136.147.40.1:443": true, "[2606:4700::1111]:443": true,
		"127.0.0.1:443": false, "10.0.0.1:443": false, "192.168.1.1:443": false, "100.100.100.200:80": false,
		"169.254.169.254:80": false, "[::1]:443": false, "[fd00::1]:443": false, "0.0.0.0:443": false,
		"[64:ff9b::a00:1]:443": false, "[::ffff:10.0.0.1]:443": false, "not-an-address": false,
	} {
		err := refusePrivateAddresses("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("refusePrivateAddresses(%s) = %v, want allowed=%v", addr, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "allow_non_salesforce_host=true") {
			t.Errorf("refusePrivateAddresses(%s): %v does not name allow_non_salesforce_host=true", addr, err)
		}
	}
}

// connectProxy is a minimal HTTP CONNECT proxy on loopback that tunnels every CONNECT to
// backend, whatever the target, and records the targets it was asked for.
func connectProxy(t *testing.T, backend string) (addr string, targets <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tunnel(c, backend, seen)
		}
	}()
	return ln.Addr().String(), seen
}

func tunnel(c net.Conn, backend string, seen chan<- string) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	seen <- req.Host
	b, err := net.Dial("tcp", backend)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer b.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, br); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done
}

// TestProxyIsExemptFromTheDialGuard: the usual corporate proxy has a private address. The
// guard must let the plugin reach it (the proxy then does the destination filtering) while
// still refusing every other private address, including another port of the same host.
func TestProxyIsExemptFromTheDialGuard(t *testing.T) {
	var backendRequests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		backendRequests.Add(1)
		io.WriteString(w, `{"access_token":"tok","instance_url":"https://example.com"}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	proxyAddr, targets := connectProxy(t, srv.Listener.Addr().String())
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	retry := RetryPolicy{Attempts: 1, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond,
		AttemptTimeout: 2 * time.Second, Budget: 3 * time.Second}
	tr := transportWithProxy(t, ca, retry, "http://"+proxyAddr)
	defer tr.Close()

	// example.com is in httptest's certificate; the proxy tunnels it to the test server, so
	// nothing leaves the machine.
	tok, err := NewClient("https://example.com", "", retry, tr).RequestToken(context.Background(), "a.b.c")
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if tok.AccessToken != "tok" || backendRequests.Load() != 1 {
		t.Errorf("through the proxy: token %+v, %d backend requests", tok, backendRequests.Load())
	}
	select {
	case got := <-targets:
		if got != "example.com:443" {
			t.Errorf("the proxy was asked for %s, want example.com:443", got)
		}
	default:
		t.Error("the proxy saw no CONNECT")
	}

	// Loopback destinations bypass the proxy, so this is a direct dial: guarded as before.
	_, err = NewClient(srv.URL, "", retry, tr).RequestToken(context.Background(), "a.b.c")
	if err == nil || !strings.Contains(err.Error(), "non-public address") {
		t.Errorf("direct to %s: %v, want the dial guard's refusal", srv.URL, err)
	}
	if backendRequests.Load() != 1 {
		t.Errorf("the direct request reached the server")
	}
}

func transportWithProxy(t *testing.T, ca string, retry RetryPolicy, proxy string) *Transport {
	t.Helper()
	tr, err := newTransport(ca, false, retry, &httpproxy.Config{HTTPSProxy: proxy})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestProxyAddrs: the guard's exemption is the host:port net/http dials for each configured
// proxy, parsed the way httpproxy parses it, and nothing for a proxy that is not used.
func TestProxyAddrs(t *testing.T) {
	for _, c := range []struct {
		cfg  httpproxy.Config
		want []string
	}{
		{httpproxy.Config{}, nil},
		{httpproxy.Config{HTTPSProxy: "127.0.0.1:3128"}, []string{"127.0.0.1:3128"}},
		{httpproxy.Config{HTTPSProxy: "proxy.corp:3128", NoProxy: "*"}, []string{"proxy.corp:3128"}},
		{httpproxy.Config{HTTPSProxy: "http://Proxy.Corp"}, []string{"proxy.corp:80"}},
		{httpproxy.Config{HTTPSProxy: "https://u:p@proxy.corp"}, []string{"proxy.corp:443"}},
		{httpproxy.Config{HTTPSProxy: "socks5://proxy.corp"}, []string{"proxy.corp:1080"}},
		{httpproxy.Config{HTTPSProxy: "http://[fd00::1]:8080"}, []string{"[fd00::1]:8080"}},
		{httpproxy.Config{HTTPSProxy: "http://bücher.example:3128"}, []string{"xn--bcher-kva.example:3128"}},
		{httpproxy.Config{HTTPProxy: "10.0.0.1:80", HTTPSProxy: "10.0.0.2:443"}, []string{"10.0.0.1:80", "10.0.0.2:443"}},
		{httpproxy.Config{HTTPProxy: "10.0.0.1:80", CGI: true}, nil}, // httpproxy ignores HTTP_PROXY under CGI
	} {
		got := proxyAddrs(&c.cfg)
		if len(got) != len(c.want) {
			t.Errorf("proxyAddrs(%+v) = %v, want %v", c.cfg, got, c.want)
			continue
		}
		for _, w := range c.want {
			if !got[w] {
				t.Errorf("proxyAddrs(%+v) = %v, want %v", c.cfg, got, c.want)
			}
		}
	}
}

// Tokens cached per role repeat the org's instance URL, the user's identity URL, the type and
// the scope: each decoded token must point at one shared copy, not hold its own (the memory a
// mount with many roles keeps), while the access token stays the token's own.
func TestTokensShareTheirRepeatedFields(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"access_token":"tok-`+strconv.Itoa(int(n.Add(1)))+`","instance_url":"https://example.my.salesforce.com",`+
			`"id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","scope":"api"}`)
	}))
	defer srv.Close()
	cl, err := New(Options{LoginURL: srv.URL, AllowNonSalesforceHost: true,
		CACertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		Retry:     RetryPolicy{Attempts: 1, AttemptTimeout: 2 * time.Second, Budget: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var toks [2]*Token
	for i := range toks {
		if toks[i], err = cl.RequestToken(context.Background(), "a.b.c"); err != nil {
			t.Fatal(err)
		}
		runtime.GC() // what a weakly held copy would not survive
	}
	a, b := toks[0], toks[1]
	for name, f := range map[string][2]string{"instance_url": {a.InstanceURL, b.InstanceURL}, "id": {a.ID, b.ID},
		"token_type": {a.TokenType, b.TokenType}, "scope": {a.Scope, b.Scope}} {
		if f[0] != f[1] || unsafe.StringData(f[0]) != unsafe.StringData(f[1]) {
			t.Errorf("%s: each token holds its own copy", name)
		}
	}
	if a.AccessToken == b.AccessToken {
		t.Errorf("two token requests returned the same access token %q", a.AccessToken)
	}
}
