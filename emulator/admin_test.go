package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestAdminAPI(t *testing.T) {
	f := newFixture(t, Config{})
	admin := func(method, path, body string) result {
		t.Helper()
		ct := ""
		if body != "" {
			ct = "application/json"
		}
		return f.request(t, method, "/__emulator/"+path, ct, body, "")
	}

	// Orgs, users and apps in snake_case JSON.
	r := admin("POST", "orgs", `{"name":"Sandbox","sandbox":true,"my_domain_url":"https://acme--uat.sandbox.my.salesforce.com"}`)
	var org Org
	if r.status != 200 || json.Unmarshal(r.body, &org) != nil || len(org.ID) != 18 || !org.Sandbox {
		t.Fatalf("orgs: %d %s", r.status, r.body)
	}
	r = admin("POST", "users", `{"org_id":"`+org.ID+`","username":"sbx@example.com","can_modify_metadata":true}`)
	var user User
	if r.status != 200 || json.Unmarshal(r.body, &user) != nil || !strings.HasPrefix(user.ID, "005") || user.OrgID != org.ID {
		t.Fatalf("users: %d %s", r.status, r.body)
	}
	certJSON, _ := json.Marshal(certA)
	r = admin("POST", "apps", `{"name":"Sbx_App","org_id":"`+org.ID+`","certificate_pem":`+string(certJSON)+
		`,"admin_approved":true,"pre_authorized_users":["sbx@example.com"],"scopes":["Api"],"session_timeout":"30m","extra":{"oauthPolicy.ipRelaxation":"BYPASS"}}`)
	if r.status != 200 {
		t.Fatalf("apps: %d %s", r.status, r.body)
	}
	view := r.json(t)
	key, _ := view["consumer_key"].(string)
	if !strings.HasPrefix(key, "3MVG9") || view["session_timeout"] != "30m0s" || len(view["accepted_certificates"].([]any)) != 1 {
		t.Fatalf("app view %v", view)
	}
	app, _ := f.e.AppByConsumerKey(key)
	if app.Extra["oauthPolicy.ipRelaxation"] != "BYPASS" || !app.AdminApproved {
		t.Errorf("stored app %+v", app)
	}
	// The new sandbox user can log in with a test audience.
	c := f.claims()
	c["iss"], c["sub"], c["aud"] = key, "sbx@example.com", "https://test.salesforce.com"
	tr := f.postToken(t, jwtForm(sign(t, keyA, c)))
	if tr.status != 200 {
		t.Fatalf("sandbox login: %s", tr.body)
	}
	tok := tr.json(t)["access_token"].(string)

	// Go field names are refused rather than ignored.
	if r := admin("POST", "apps", `{"ConsumerKey":"x"}`); r.status != 400 {
		t.Errorf("Go field names: %d", r.status)
	}
	if r := admin("POST", "orgs", `{`); r.status != 400 {
		t.Errorf("bad JSON: %d", r.status)
	}

	// Certificate upload and app view.
	certB64, _ := json.Marshal(certB)
	r = admin("PUT", "apps/"+key+"/certificate", `{"certificate":`+string(certB64)+`}`)
	if r.status != 200 || !sameCert(r.json(t)["certificate_pem"].(string), certB) {
		t.Errorf("put cert: %d %s", r.status, r.body)
	}
	if r := admin("PUT", "apps/"+key+"/certificate", `{"certificate":"junk"}`); r.status != 400 {
		t.Errorf("junk cert: %d", r.status)
	}
	if r := admin("PUT", "apps/nope/certificate", `{"certificate":""}`); r.status != 404 {
		t.Errorf("unknown app cert: %d", r.status)
	}
	r = admin("GET", "apps/"+key, "")
	acc := r.json(t)["accepted_certificates"].([]any)
	if r.status != 200 || len(acc) != 1 || !sameCert(acc[0].(string), certB) {
		t.Errorf("get app: %d %s", r.status, r.body)
	}
	if r := admin("GET", "apps/nope", ""); r.status != 404 {
		t.Errorf("unknown app: %d", r.status)
	}

	// Tokens.
	if m := admin("GET", "tokens/"+url.PathEscape(tok), "").json(t); m["active"] != true {
		t.Errorf("token active: %v", m)
	}
	if m := admin("GET", "tokens/nope", "").json(t); m["active"] != false {
		t.Errorf("unknown token: %v", m)
	}

	// Faults.
	if r := admin("POST", "faults", `{"endpoint":"limits","kind":"latency","latency":"1ms","count":1}`); r.status != 200 || r.json(t)["latency"] != "1ms" {
		t.Errorf("fault: %d %s", r.status, r.body)
	}
	if r := admin("POST", "faults", `{"endpoint":"limits","kind":"explode"}`); r.status != 400 {
		t.Errorf("bad kind: %d", r.status)
	}
	if r := admin("POST", "faults", `{"endpoint":"limits","kind":"status","status":500}`); r.status != 200 {
		t.Errorf("fault 2: %d", r.status)
	}
	if r := admin("DELETE", "faults", ""); r.status != 204 {
		t.Errorf("clear: %d", r.status)
	}
	if r := f.request(t, "GET", "/services/data/v60.0/limits", "", "", tok); r.status != 200 {
		t.Errorf("faults not cleared: %d", r.status)
	}

	// Counters.
	var cnt Counters
	if r := admin("GET", "counters", ""); json.Unmarshal(r.body, &cnt) != nil || cnt.TokensIssued != 1 || cnt.Limits != 1 {
		t.Errorf("counters %s", r.body)
	}
	if r := admin("POST", "counters/reset", ""); r.status != 200 || f.e.Counters().TokensIssued != 0 {
		t.Errorf("reset: %d", r.status)
	}

	// Seed and CA.
	r = admin("POST", "seed/demo", "")
	var seed struct {
		Org      Org             `json:"org"`
		User     User            `json:"user"`
		Deployer User            `json:"deployer"`
		App      json.RawMessage `json:"app"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &seed) != nil || seed.User.Username != DemoUsername || !seed.Deployer.CanModifyMetadata {
		t.Errorf("seed: %d %s", r.status, r.body)
	}
	if r := admin("GET", "ca", ""); string(r.body) != f.e.CACertPEM() {
		t.Error("ca endpoint")
	}
	if r := admin("GET", "nothing", ""); r.status != 404 {
		t.Errorf("unknown admin path: %d", r.status)
	}
}

func TestSeedDemo(t *testing.T) {
	testKeys(t)
	e := New(Config{})
	s := e.SeedDemo()
	if s.App.ConsumerKey != DemoConsumerKey || s.App.Name != "Vault_JWT" || !s.App.AdminApproved || s.App.CertificatePEM != "" ||
		!containsFold(s.App.PreAuthorizedUsers, "integration@example.com") || !containsFold(s.App.PreAuthorizedUsers, "deployer@example.com") ||
		!s.Deployer.CanModifyMetadata || s.User.CanModifyMetadata || len(s.Org.ID) != 18 || s.Org.Sandbox {
		t.Errorf("seed %+v", s)
	}
	if again := e.SeedDemo(); again.Org.ID != s.Org.ID || again.User.ID != s.User.ID {
		t.Error("SeedDemo is not stable")
	}
	if a, ok := e.AppByName("vault_jwt"); !ok || a.ConsumerKey != DemoConsumerKey {
		t.Error("AppByName")
	}
	// JSON round trip of App keeps every field.
	b, _ := json.Marshal(s.App)
	var back App
	if err := json.Unmarshal(b, &back); err != nil || back.SessionTimeout != s.App.SessionTimeout || back.Extra["oauthPolicy.ipRelaxation"] != "ENFORCE" {
		t.Errorf("round trip %v %+v", err, back)
	}
}
