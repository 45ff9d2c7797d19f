package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// relServer is a local HTTPS server that counts the requests it gets and whether they carried
// a JWT assertion.
type relServer struct {
	*httptest.Server
	hits       atomic.Int64
	assertions atomic.Int64
	caPEM      string
}

func relStartServer(t *testing.T, conf *tls.Config, h http.HandlerFunc) *relServer {
	t.Helper()
	s := &relServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if strings.Contains(string(body), "assertion=") || strings.Contains(r.URL.RawQuery, "assertion=") {
			s.assertions.Add(1)
		}
		h(w, r)
	}))
	if conf != nil {
		s.TLS = conf
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	s.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}))
	return s
}

// TestReliabilityNetwork: what the plugin refuses to send an assertion to, through a real
// Vault. A refused host never receives a request (counted at the local servers and the
// emulator), and the creds read answers 502 naming the reason within the retry budget:
//   - TLS verification is always on: no ca_cert (the emulator's CA is not a system root), a
//     ca_cert of another CA, and a certificate for another host name are x509 failures;
//   - TLS 1.2 is the floor: a server that speaks at most TLS 1.1 is refused at the handshake;
//   - none of these TLS failures is retried (a retry cannot fix them);
//   - redirects of the token request (301, 302, 307, 308) are not followed, so the assertion
//     never reaches the redirect target;
//   - without allow_non_salesforce_host, IP literals, loopback names and non-Salesforce hosts
//     are refused at write time (400 naming login_url), and http:// is refused even with it.
//
// Names that resolve to loopback or private addresses under a Salesforce domain cannot be made
// here without DNS; the dialer's refusal of them is covered by backend/salesforce's unit
// tests (see RELIABILITY.md).
func TestReliabilityNetwork(t *testing.T) {
	t.Parallel()
	e := newRelEnv(t, relEnvOptions{})
	v := e.Vault
	uuid := relMountUUID(t, v)

	catcher := relStartServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"00Dcaught!AQ","instance_url":"https://127.0.0.1","token_type":"Bearer"}`)
	})
	redirectTo := func(status int) *relServer {
		return relStartServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, catcher.URL+r.URL.Path, status)
		})
	}
	old := relStartServer(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, func(w http.ResponseWriter, r *http.Request) {})

	type netCase struct {
		class     string
		conn      map[string]any // connection fields over the defaults (emulator, its CA)
		wantCause []string
		target    *relServer // must see no assertion
	}
	localhostURL := strings.Replace(catcher.URL, "127.0.0.1", "localhost", 1)
	cases := []netCase{
		{class: "tls_no_ca_cert", conn: map[string]any{"ca_cert": nil}, wantCause: []string{"x509"}},
		{class: "tls_other_ca", conn: map[string]any{"ca_cert": catcher.caPEM}, wantCause: []string{"x509"}},
		{class: "tls_wrong_host_name", conn: map[string]any{"login_url": localhostURL, "ca_cert": catcher.caPEM}, wantCause: []string{"x509"}, target: catcher},
		{class: "tls_1_1_server", conn: map[string]any{"login_url": old.URL, "ca_cert": old.caPEM}, wantCause: []string{"protocol version"}, target: old},
	}
	for _, status := range []int{301, 302, 307, 308} {
		r := redirectTo(status)
		cases = append(cases, netCase{class: fmt.Sprintf("redirect_%d", status),
			conn: map[string]any{"login_url": r.URL, "ca_cert": r.caPEM}, wantCause: []string{"redirect"}, target: r})
	}
	for i, c := range cases {
		t.Run(c.class, func(t *testing.T) {
			name := fmt.Sprintf("net-%d", i)
			data := e.ConnectionData(nil)
			for k, val := range c.conn {
				if val == nil {
					delete(data, k)
				} else {
					data[k] = val
				}
			}
			v.Write(t, Mount+"/connections/"+name, data)
			e.CreateRole(t, v, name, name, map[string]any{"token_mode": "per_lease"})
			emuBefore := relCounter(t, e.Emu, "token_requests")
			catcherBefore := catcher.hits.Load()
			var targetBefore int64
			if c.target != nil {
				targetBefore = c.target.hits.Load()
			}
			_, d, err := relRead(v.Client, name)
			if err == nil {
				t.Fatalf("%s: the creds read was served", c.class)
			}
			t.Logf("%s: HTTP %d after %s: %s", c.class, StatusCode(err), d.Round(time.Millisecond), oneLine(err))
			if StatusCode(err) != 502 || !containsAny(err.Error(), c.wantCause) {
				t.Errorf("%s: %v, want HTTP 502 naming %q", c.class, err, c.wantCause)
			}
			if d > relColdReadBound {
				t.Errorf("%s: the read took %s (bound %s)", c.class, d, relColdReadBound)
			}
			if n := catcher.hits.Load() - catcherBefore; n > 0 && c.target != catcher {
				t.Errorf("%s: the redirect target got %d requests (%d with an assertion)", c.class, n, catcher.assertions.Load())
			}
			if n := relCounter(t, e.Emu, "token_requests") - emuBefore; n > 0 {
				t.Errorf("%s: the emulator got %d token requests from a connection that does not point at it", c.class, n)
			}
			// A TLS failure happens before any byte of the request: the target sees nothing.
			// A redirect is the target's own answer to the one request it got.
			var hits int64
			if c.target != nil {
				hits = c.target.hits.Load() - targetBefore
				if strings.HasPrefix(c.class, "tls_") && hits > 0 {
					t.Errorf("%s: the server got %d requests although TLS failed", c.class, hits)
				}
			}
			// None of these is a failure a retry could fix: each is reported after one attempt.
			attempts := 0
			if m := regexp.MustCompile(`after (\d+) attempt\(s\)`).FindStringSubmatch(err.Error()); m != nil {
				attempts, _ = strconv.Atoi(m[1])
			}
			if attempts != 1 {
				t.Errorf("%s: %v: want the refusal after 1 attempt (a retry cannot fix it)", c.class, err)
			}
			relRequireStorage(t, v, uuid, name)
			relReport(t, "network", c.class, "attempts", attempts, "refused", 1, "target_requests", hits,
				"redirect_target_requests", catcher.hits.Load()-catcherBefore, "assertions_leaked", catcher.assertions.Load())
		})
	}
	if n := catcher.assertions.Load(); n != 0 {
		t.Errorf("the redirect target received %d assertions", n)
	}

	// Write-time refusals: 400 naming login_url, nothing written.
	t.Run("write_time", func(t *testing.T) {
		port := strings.TrimPrefix(catcher.URL, "https://127.0.0.1")
		refused := 0
		writes := []struct {
			login string
			allow bool
			want  string
		}{
			{"https://127.0.0.1" + port, false, "IP address"},
			{"https://[::1]" + port, false, "IP address"},
			{"https://169.254.169.254", false, "IP address"},
			{"https://10.0.0.1", false, "IP address"},
			{"https://localhost" + port, false, "not a Salesforce"},
			{"https://login.salesforce.com.evil.example", false, "not a Salesforce"},
			{"http://127.0.0.1" + port, true, "https"},
			{"http://login.salesforce.com", false, "https"},
		}
		for i, w := range writes {
			name := fmt.Sprintf("refused-%d", i)
			d := e.ConnectionData(map[string]any{"login_url": w.login, "allow_non_salesforce_host": w.allow})
			_, err := v.Client.Logical().Write(Mount+"/connections/"+name, d)
			if err == nil {
				t.Errorf("login_url %s (allow_non_salesforce_host=%v) was accepted", w.login, w.allow)
				continue
			}
			if StatusCode(err) != 400 || !strings.Contains(err.Error(), "login_url") || !strings.Contains(err.Error(), w.want) {
				t.Errorf("login_url %s: %v, want HTTP 400 naming login_url (%s)", w.login, err, w.want)
				continue
			}
			if r, _ := v.Client.Logical().Read(Mount + "/connections/" + name); r != nil {
				t.Errorf("login_url %s: refused, but the connection exists", w.login)
			}
			refused++
		}
		if p, err := relRawList(v.Client, uuid, "keys/"); err != nil {
			t.Fatal(err)
		} else {
			for _, k := range p {
				if strings.HasPrefix(k, "refused-") {
					t.Errorf("a refused connection left key material: keys/%s", k)
				}
			}
		}
		relReport(t, "network", "login_url_write_refusals", "attempts", len(writes), "refused", refused, "assertions_leaked", 0)
	})
}
