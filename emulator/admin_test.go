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

func TestAdminClientCredentialsSetup(t *testing.T) {
	f := newFixture(t, Config{})
	admin := func(method, path, body string) result {
		t.Helper()
		return f.request(t, method, "/__emulator/"+path, "application/json", body, "")
	}
	// A run-as user and an ECA created through the admin API with the new fields.
	r := admin("POST", "users", `{"username":"runas@example.com","api_only":true,"permissions":["ViewClientSecret"]}`)
	var runAs User
	if r.status != 200 || json.Unmarshal(r.body, &runAs) != nil || !runAs.APIOnly || !runAs.HasPermission("viewclientsecret") {
		t.Fatalf("users: %d %s", r.status, r.body)
	}
	r = admin("POST", "apps", `{"name":"CC_App","type":"external_client_app","consumer_secret":"S3CRET","admin_approved":true,`+
		`"pre_authorized_users":["runas@example.com"],"packaged":true}`)
	view := r.json(t)
	key, _ := view["consumer_key"].(string)
	if r.status != 200 || view["consumer_secret"] != "S3CRET" || view["packaged"] != true || !strings.HasPrefix(view["id"].(string), "0xI") ||
		!strings.HasPrefix(view["consumer_id"].(string), "888") || view["client_credentials_enabled"] != nil {
		t.Fatalf("apps: %d %s", r.status, r.body)
	}
	// Enable the flow with the run-as user.
	r = admin("PUT", "apps/"+key+"/client-credentials", `{"enabled":true,"run_as_username":"RunAs@example.com"}`)
	view = r.json(t)
	if r.status != 200 || view["client_credentials_enabled"] != true || view["run_as_username"] != "runas@example.com" {
		t.Fatalf("client-credentials: %d %s", r.status, r.body)
	}
	if keys, _ := view["accepted_consumer_keys"].([]any); len(keys) != 1 || keys[0] != key {
		t.Errorf("accepted_consumer_keys %v", view["accepted_consumer_keys"])
	}
	if tr := f.postCC(t, ccForm(key, "S3CRET"), nil); tr.status != 200 {
		t.Errorf("token after admin set-up: %d %s", tr.status, tr.body)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "apps/nope/client-credentials", `{"enabled":true}`, 404},
		{"PUT", "apps/" + key + "/client-credentials", `{"enabled":true,"run_as_username":"ghost@example.com"}`, 400},
		{"PUT", "apps/" + key + "/client-credentials", `{"RunAsUsername":"runas@example.com"}`, 400},
		{"PUT", "orgs/" + f.org.ID + "/settings", `{}`, 400},
		{"PUT", "orgs/" + f.org.ID + "/settings", `{"allow":true}`, 400},
		{"PUT", "orgs/00D000000000000AAA/settings", `{"allow_eca_consumer_secret_rest":true}`, 404},
		{"PUT", "users/ghost@example.com/permissions", `{"permissions":[]}`, 404},
		{"PUT", "users/runas@example.com/permissions", `{"permissions":"all"}`, 400},
	} {
		if r := admin(c.method, c.path, c.body); r.status != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, r.status, r.body, c.status)
		}
	}
	// Switching the flow off.
	if r := admin("PUT", "apps/"+key+"/client-credentials", `{"enabled":false}`); r.status != 200 || r.json(t)["run_as_username"] != nil {
		t.Errorf("disable: %d %s", r.status, r.body)
	}

	// The org setting and a user's permissions.
	r = admin("PUT", "orgs/"+f.org.ID[:15]+"/settings", `{"allow_eca_consumer_secret_rest":true}`)
	if r.status != 200 || r.json(t)["allow_eca_consumer_secret_rest"] != true {
		t.Fatalf("settings: %d %s", r.status, r.body)
	}
	r = admin("PUT", "users/deployer@example.com/permissions", `{"permissions":["ExternalClientAppDeveloper","ViewClientSecret"]}`)
	var dep User
	if r.status != 200 || json.Unmarshal(r.body, &dep) != nil || len(dep.Permissions) != 2 || !dep.CanModifyMetadata {
		t.Fatalf("permissions: %d %s", r.status, r.body)
	}
	// Now the deployer may read the (packaged: refused) app's consumers, and list it.
	tok := f.sessionToken(t, dep.Username)
	if r := f.request(t, "GET", "/services/data/v65.0/apps/oauth/usage", "", "", tok); r.status != 200 || !strings.Contains(string(r.body), "CC_App") {
		t.Errorf("usage: %d %s", r.status, r.body)
	}
	if r := f.request(t, "GET", "/services/data/v65.0/apps/oauth/credentials/"+view["id"].(string), "", "", tok); r.status != 403 {
		t.Errorf("packaged credentials: %d %s", r.status, r.body)
	}
	// Switching the setting off again.
	if r := admin("PUT", "orgs/"+f.org.ID+"/settings", `{"allow_eca_consumer_secret_rest":false}`); r.status != 200 || r.json(t)["allow_eca_consumer_secret_rest"] != nil {
		t.Errorf("settings off: %d %s", r.status, r.body)
	}
	// Existing JSON is unchanged for records without the new fields.
	if r := admin("POST", "users", `{"username":"plain@example.com"}`); strings.Contains(string(r.body), "api_only") || strings.Contains(string(r.body), "permissions") {
		t.Errorf("plain user JSON %s", r.body)
	}
	if r := admin("POST", "orgs", `{"name":"Plain"}`); strings.Contains(string(r.body), "allow_eca") {
		t.Errorf("plain org JSON %s", r.body)
	}
}

func TestSeedDemoClientCredentialsApp(t *testing.T) {
	e := New(Config{})
	s := e.SeedDemo()
	// What the seed returned before is untouched.
	if s.Org.ID != to18(DemoOrgID) || s.Org.Name != "Vault Demo Org" || s.Org.AllowECAConsumerSecretREST ||
		s.User.ID != to18(DemoUserID) || s.User.Username != DemoUsername || s.User.APIOnly || len(s.User.Permissions) != 0 ||
		s.Deployer.ID != to18(DemoDeployerID) || !s.Deployer.CanModifyMetadata || len(s.Deployer.Permissions) != 0 ||
		s.App.ConsumerKey != DemoConsumerKey || s.App.Type != appTypeConnected || s.App.ClientCredentialsEnabled || s.App.RunAsUsername != "" ||
		len(s.App.PreAuthorizedUsers) != 2 || s.App.Packaged {
		t.Errorf("existing seed changed: %+v", s)
	}
	// The client credentials app and its run-as user.
	cc := s.CCApp
	if cc.Name != DemoCCAppName || cc.Type != appTypeECA || cc.ID != to18(DemoCCAppID) || cc.ConsumerID != to18(DemoCCConsumerID) ||
		cc.ConsumerKey != DemoCCConsumerKey || cc.ConsumerSecret != DemoCCConsumerSecret || !cc.ClientCredentialsEnabled ||
		cc.RunAsUsername != DemoRunAsUsername || !cc.AdminApproved || !containsFold(cc.PreAuthorizedUsers, DemoRunAsUsername) ||
		cc.Packaged || cc.OrgID != s.Org.ID || len(DemoCCConsumerKey) != 85 {
		t.Errorf("cc app %+v", cc)
	}
	if s.RunAs.ID != to18(DemoRunAsID) || s.RunAs.Username != DemoRunAsUsername || !s.RunAs.APIOnly || s.RunAs.OrgID != s.Org.ID {
		t.Errorf("run-as %+v", s.RunAs)
	}
	// Seeding again gives the same seed, generated IDs and secrets included.
	again := e.SeedDemo()
	a1, _ := json.Marshal(s)
	a2, _ := json.Marshal(again)
	if string(a1) != string(a2) {
		t.Errorf("SeedDemo is not stable:\n%s\n%s", a1, a2)
	}
	var back DemoSeed
	if err := json.Unmarshal(a1, &back); err != nil || back.CCApp.ConsumerSecret != DemoCCConsumerSecret || !back.RunAs.APIOnly {
		t.Errorf("JSON round trip %v %+v", err, back.CCApp)
	}
}
