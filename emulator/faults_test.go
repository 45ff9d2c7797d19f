package emulator

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freshClient never reuses connections, so the transport cannot silently
// retry a request whose connection the emulator dropped.
func freshClient(t *testing.T, f *fixture, timeout time.Duration) *http.Client {
	c := trustingClient(t, f.e)
	c.Timeout = timeout
	c.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

func TestFaultLatency(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	f.e.AddFault(Fault{Endpoint: "userinfo", Kind: FaultLatency, Latency: 150 * time.Millisecond, Count: 1})
	start := time.Now()
	r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok)
	if r.status != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("latency fault: %d after %s", r.status, time.Since(start))
	}
	f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok)
	if c := f.e.Counters(); c.FaultsInjected != 1 {
		t.Errorf("FaultsInjected %d (Count=1 must affect one request)", c.FaultsInjected)
	}
}

func TestFaultStatus(t *testing.T) {
	cases := []struct {
		endpoint   string
		status     int
		latency    time.Duration
		wantStatus int
		ctPrefix   string
		contains   string
		retryAfter string
	}{
		{"token", 503, 0, 503, "text/html", "Service Unavailable", ""},
		{"token", 0, 0, 503, "text/html", "<html>", ""},
		{"token", 500, 0, 500, "application/json", `"error":"unknown_error"`, ""},
		{"token", 429, 2 * time.Second, 429, "application/json", "rate_limit_exceeded", "2"},
		{"token", 429, 0, 429, "application/json", "rate_limit_exceeded", "1"},
		{"limits", 500, 0, 500, "application/json", `"errorCode":"UNKNOWN_EXCEPTION"`, ""},
		{"deploy", 429, 0, 429, "application/json", "REQUEST_LIMIT_EXCEEDED", "1"},
		{"read_metadata", 500, 0, 500, "text/xml", "sf:UNKNOWN_EXCEPTION", ""},
		{"revoke", 502, 0, 502, "text/html", "Bad Gateway", ""},
	}
	for _, c := range cases {
		t.Run(c.endpoint, func(t *testing.T) {
			f := newFixture(t, Config{})
			tok := f.login(t, f.deployer.Username)
			f.e.AddFault(Fault{Endpoint: c.endpoint, Kind: FaultStatus, Status: c.status, Latency: c.latency})
			var r result
			switch c.endpoint {
			case "token":
				r = f.postToken(t, jwtForm(sign(t, keyA, f.claims())))
			case "limits":
				r = f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok)
			case "deploy":
				r = f.deploy(t, tok, "json", "{}", buildZip(t, map[string]string{"package.xml": packageXMLConnectedApp}))
			case "read_metadata":
				r = soapRead(t, f, tok, "ConnectedApp", "Vault_JWT")
			case "revoke":
				r = f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", "token="+tok, "")
			}
			if r.status != c.wantStatus || !strings.HasPrefix(r.header.Get("Content-Type"), c.ctPrefix) ||
				!strings.Contains(string(r.body), c.contains) || r.header.Get("Retry-After") != c.retryAfter {
				t.Errorf("%d %q Retry-After=%q body %s", r.status, r.header.Get("Content-Type"), r.header.Get("Retry-After"), r.body)
			}
			if c.endpoint == "revoke" && !f.e.TokenActive(tok) {
				t.Error("a faulted revoke must not revoke")
			}
		})
	}
}

func TestFaultHang(t *testing.T) {
	f := newFixture(t, Config{})
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultHang})
	c := freshClient(t, f, 300*time.Millisecond)
	start := time.Now()
	_, err := c.PostForm(f.e.URL()+"/services/oauth2/token", jwtForm(sign(t, keyA, f.claims())))
	if err == nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("hang answered: err=%v after %s", err, time.Since(start))
	}
	// With Latency, the connection is dropped after that long, unanswered.
	f.e.ClearFaults()
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultHang, Latency: 100 * time.Millisecond})
	c = freshClient(t, f, 10*time.Second)
	start = time.Now()
	_, err = c.PostForm(f.e.URL()+"/services/oauth2/token", jwtForm(sign(t, keyA, f.claims())))
	if err == nil || time.Since(start) < 100*time.Millisecond || time.Since(start) > 5*time.Second {
		t.Fatalf("hang with latency: err=%v after %s", err, time.Since(start))
	}
}

func TestFaultHangReleasedByClose(t *testing.T) {
	f := newFixture(t, Config{})
	f.e.AddFault(Fault{Endpoint: "*", Kind: FaultHang})
	c := freshClient(t, f, 10*time.Second)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(f.e.URL() + "/services/oauth2/userinfo")
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_ = f.e.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("hung request got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
}

func TestFaultReset(t *testing.T) {
	// With Logf set the handler sits behind the logging wrapper, which must
	// still let the fault hijack the connection.
	var logs syncBuffer
	f := newFixture(t, Config{Logf: logs.Printf})
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultReset, Count: 1})
	c := freshClient(t, f, 5*time.Second)
	if _, err := c.PostForm(f.e.URL()+"/services/oauth2/token", jwtForm(sign(t, keyA, f.claims()))); err == nil {
		t.Fatal("reset fault answered")
	}
	if r := f.postToken(t, jwtForm(sign(t, keyA, f.claims()))); r.status != 200 {
		t.Errorf("after the one reset: %d", r.status)
	}
	if !strings.Contains(logs.String(), "injecting reset fault on token") {
		t.Errorf("log lacks the fault line:\n%s", logs.String())
	}
}

func TestFaultMalformed(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultMalformed, Count: 1})
	f.e.AddFault(Fault{Endpoint: "read_metadata", Kind: FaultMalformed, Count: 1})
	r := f.postToken(t, jwtForm(sign(t, keyA, f.claims())))
	var m map[string]any
	if r.status != 200 || json.Unmarshal(r.body, &m) == nil {
		t.Errorf("malformed token: %d %s", r.status, r.body)
	}
	r = soapRead(t, f, tok, "ConnectedApp", "Vault_JWT")
	var v struct{}
	if r.status != 200 || xml.Unmarshal(r.body, &v) == nil {
		t.Errorf("malformed SOAP: %d %s", r.status, r.body)
	}
}

func TestFaultWrongInstanceURL(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	f.e.AddFault(Fault{Endpoint: "*", Kind: FaultWrongInstanceURL, Count: 1})
	// Not used up by an endpoint it does not concern.
	if r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); r.status != 200 {
		t.Fatal(r.status)
	}
	m := f.postToken(t, jwtForm(sign(t, keyA, f.claims()))).json(t)
	iu, _ := m["instance_url"].(string)
	if !strings.HasPrefix(iu, "http://") || m["access_token"] == nil {
		t.Errorf("instance_url %q", iu)
	}
	if m = f.postToken(t, jwtForm(sign(t, keyA, f.claims()))).json(t); m["instance_url"] != f.e.URL() {
		t.Errorf("fault outlived its count: %v", m["instance_url"])
	}
}

func TestFaultDeployKinds(t *testing.T) {
	files := func() map[string]string {
		return map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true}.String(),
		}
	}
	t.Run("deploy_fail", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.e.AddFault(Fault{Endpoint: "deploy", Kind: FaultDeployFail, Count: 1})
		res := f.deployAndWait(t, f.login(t, f.deployer.Username), files())
		if res["status"] != "Failed" || res["errorMessage"] == nil || res["errorStatusCode"] == nil {
			t.Errorf("%v", res)
		}
		if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) {
			t.Error("failed deploy applied")
		}
	})
	t.Run("component_failure", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.e.AddFault(Fault{Endpoint: "deploy_status", Kind: FaultComponentFailure})
		res := f.deployAndWait(t, f.login(t, f.deployer.Username), files())
		d := res["details"].(map[string]any)
		fails := d["componentFailures"].([]any)
		if res["status"] != "Failed" || len(fails) != 1 || fails[0].(map[string]any)["componentType"] != "ConnectedApp" ||
			fails[0].(map[string]any)["fullName"] != "Vault_JWT" || res["numberComponentErrors"] != 1.0 {
			t.Errorf("%v", res)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		f := newFixture(t, Config{})
		tok := f.login(t, f.deployer.Username)
		f.e.AddFault(Fault{Endpoint: "deploy", Kind: FaultStuck, Count: 1})
		id := f.deploy(t, tok, "json", "{}", buildZip(t, files())).json(t)["id"].(string)
		for i := 0; i < 5; i++ {
			if res := f.poll(t, tok, id); res["status"] != "InProgress" || res["done"] != false {
				t.Fatalf("poll %d: %v", i, res)
			}
		}
	})
}

func TestFaultTargeting(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.user.Username)
	f.e.AddFault(Fault{Endpoint: "token", Kind: FaultStatus, Status: 500, Username: f.deployer.Username})
	if r := f.postToken(t, jwtForm(sign(t, keyA, f.claims()))); r.status != 200 {
		t.Errorf("other user affected: %d", r.status)
	}
	c := f.claims()
	c["sub"] = f.deployer.Username
	for i := 0; i < 2; i++ { // Count 0: every matching request
		if r := f.postToken(t, jwtForm(sign(t, keyA, c))); r.status != 500 {
			t.Errorf("targeted user not affected: %d", r.status)
		}
	}
	f.e.ClearFaults()
	if r := f.postToken(t, jwtForm(sign(t, keyA, c))); r.status != 200 {
		t.Errorf("after ClearFaults: %d", r.status)
	}
	// "*" hits every endpoint; Count limits it.
	f.e.AddFault(Fault{Endpoint: "*", Kind: FaultStatus, Status: 503, Count: 2})
	if r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok); r.status != 503 {
		t.Errorf("limits %d", r.status)
	}
	if r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); r.status != 503 {
		t.Errorf("userinfo %d", r.status)
	}
	if r := f.request(t, "GET", "/services/oauth2/userinfo", "", "", tok); r.status != 200 {
		t.Errorf("third request still faulted: %d", r.status)
	}
	if got := f.e.Counters().FaultsInjected; got != 4 {
		t.Errorf("FaultsInjected %d", got)
	}
}
