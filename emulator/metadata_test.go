package emulator

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

func soapRead(t *testing.T, f *fixture, token, typ string, names ...string) result {
	t.Helper()
	var fn strings.Builder
	for _, n := range names {
		fmt.Fprintf(&fn, "<met:fullNames>%s</met:fullNames>", n)
	}
	body := `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:met="http://soap.sforce.com/2006/04/metadata">
<soapenv:Header><met:SessionHeader><met:sessionId>` + token + `</met:sessionId></met:SessionHeader></soapenv:Header>
<soapenv:Body><met:readMetadata><met:type>` + typ + `</met:type>` + fn.String() + `</met:readMetadata></soapenv:Body></soapenv:Envelope>`
	req, _ := http.NewRequest("POST", f.e.URL()+"/services/Soap/m/60.0", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	req.Header.Set("SOAPAction", "readMetadata")
	return f.do(t, req)
}

// readRecord is the part of a ConnectedApp record the tests look at.
type readRecord struct {
	FullName     string `xml:"fullName"`
	ContactEmail string `xml:"contactEmail"`
	Label        string `xml:"label"`
	OauthConfig  struct {
		CallbackURL     string   `xml:"callbackUrl"`
		Certificate     string   `xml:"certificate"`
		ConsumerKey     string   `xml:"consumerKey"`
		IsAdminApproved string   `xml:"isAdminApproved"`
		Scopes          []string `xml:"scopes"`
	} `xml:"oauthConfig"`
	IPRelaxation string `xml:"oauthPolicy>ipRelaxation"`
	// ECA global settings fields
	Certificate string `xml:"certificate"`
	ConsumerKey string `xml:"consumerKey"`
	ECA         string `xml:"externalClientApplication"`
	Nil         string `xml:"http://www.w3.org/2001/XMLSchema-instance nil,attr"`
}

func parseRead(t *testing.T, r result) []readRecord {
	t.Helper()
	var env struct {
		Records []readRecord `xml:"Body>readMetadataResponse>result>records"`
	}
	if err := xml.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("readMetadata body: %v\n%s", err, r.body)
	}
	return env.Records
}

func soapFaultCode(t *testing.T, r result) string {
	t.Helper()
	var env struct {
		Code string `xml:"Body>Fault>faultcode"`
	}
	_ = xml.Unmarshal(r.body, &env)
	return env.Code
}

func TestReadMetadataConnectedApp(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	r := soapRead(t, f, tok, "ConnectedApp", "Vault_JWT", "Missing_App")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	recs := parseRead(t, r)
	if len(recs) != 2 {
		t.Fatalf("records %d", len(recs))
	}
	rec := recs[0]
	oc := rec.OauthConfig
	if rec.FullName != "Vault_JWT" || rec.Label != "Vault_JWT" || rec.ContactEmail == "" ||
		oc.ConsumerKey != f.app.ConsumerKey || oc.IsAdminApproved != "true" || oc.CallbackURL == "" ||
		strings.Join(oc.Scopes, ",") != "Api,RefreshToken" || rec.IPRelaxation != "ENFORCE" {
		t.Errorf("record %+v", rec)
	}
	if strings.Contains(oc.Certificate, "BEGIN") || !sameCert(oc.Certificate, certA) {
		t.Errorf("certificate should be the bare base64 of certA, got %.40q", oc.Certificate)
	}
	if recs[1].Nil != "true" {
		t.Errorf("missing component should be nil, got %+v", recs[1])
	}
	if c := f.e.Counters(); c.ReadMetadata != 1 {
		t.Errorf("ReadMetadata counter %d", c.ReadMetadata)
	}
}

func TestReadMetadataFaults(t *testing.T) {
	f := newFixture(t, Config{})
	userTok := f.login(t, f.user.Username) // no CanModifyMetadata
	depTok := f.login(t, f.deployer.Username)
	cases := []struct {
		name, token, typ, code string
	}{
		{"bad session", "00Dxx!bad", "ConnectedApp", "sf:INVALID_SESSION_ID"},
		{"no permission", userTok, "ConnectedApp", "sf:INSUFFICIENT_ACCESS"},
		{"unknown type", depTok, "ApexClass", "sf:INVALID_TYPE"},
	}
	for _, c := range cases {
		r := soapRead(t, f, c.token, c.typ, "Vault_JWT")
		if r.status != 500 || soapFaultCode(t, r) != c.code {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
}

func TestReadMetadataECA(t *testing.T) {
	f := newFixture(t, Config{})
	eca := f.e.AddApp(App{Name: "Vault_ECA", Type: appTypeECA, CertificatePEM: certB,
		AdminApproved: true, PreAuthorizedUsers: []string{f.user.Username}})
	tok := f.login(t, f.deployer.Username)
	recs := parseRead(t, soapRead(t, f, tok, "ExtlClntAppGlobalOauthSettings", "Vault_ECA_glbloauth", "Vault_JWT"))
	if len(recs) != 2 || recs[0].ECA != "Vault_ECA" || recs[0].ConsumerKey != eca.ConsumerKey || !sameCert(recs[0].Certificate, certB) {
		t.Errorf("eca record %+v", recs)
	}
	if recs[1].Nil != "true" {
		t.Error("a connected app is not an ECA global settings record")
	}
}

// --- deploy helpers ---

const packageXMLConnectedApp = `<?xml version="1.0" encoding="UTF-8"?>
<Package xmlns="http://soap.sforce.com/2006/04/metadata"><types><members>Vault_JWT</members><name>ConnectedApp</name></types><version>60.0</version></Package>`

type appXML struct {
	cert          string
	adminApproved bool
	scopes        bool
	extra         bool
	consumerKey   string
}

func (a appXML) String() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<ConnectedApp xmlns="http://soap.sforce.com/2006/04/metadata">
  <contactEmail>ops@example.com</contactEmail>
  <label>Vault JWT</label>
  <oauthConfig>
    <callbackUrl>https://localhost/callback</callbackUrl>`)
	if a.cert != "" {
		fmt.Fprintf(&b, "\n    <certificate>%s</certificate>", a.cert)
	}
	if a.consumerKey != "" {
		fmt.Fprintf(&b, "\n    <consumerKey>%s</consumerKey>", a.consumerKey)
	}
	if a.adminApproved {
		b.WriteString("\n    <isAdminApproved>true</isAdminApproved>")
	}
	if a.scopes {
		b.WriteString("\n    <scopes>Api</scopes><scopes>RefreshToken</scopes>")
	}
	b.WriteString("\n  </oauthConfig>")
	if a.extra {
		b.WriteString("\n  <oauthPolicy><ipRelaxation>ENFORCE</ipRelaxation></oauthPolicy>")
	}
	b.WriteString("\n</ConnectedApp>\n")
	return b.String()
}

func buildZip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) deploy(t *testing.T, token, jsonPart, opts string, zipBytes []byte) result {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if jsonPart != "" {
		_ = mw.WriteField(jsonPart, opts)
	}
	if zipBytes != nil {
		fw, _ := mw.CreateFormFile("file", "deploy.zip")
		_, _ = fw.Write(zipBytes)
	}
	_ = mw.Close()
	return f.request(t, "POST", "/services/data/v60.0/metadata/deployRequest", mw.FormDataContentType(), body.String(), token)
}

func (f *fixture) poll(t *testing.T, token, id string) map[string]any {
	t.Helper()
	r := f.request(t, "GET", "/services/data/v60.0/metadata/deployRequest/"+id+"?includeDetails=true", "", "", token)
	if r.status != 200 {
		t.Fatalf("poll: %d %s", r.status, r.body)
	}
	return r.json(t)["deployResult"].(map[string]any)
}

// deployAndWait submits and polls until done; it returns the final result.
func (f *fixture) deployAndWait(t *testing.T, token string, files map[string]string) map[string]any {
	t.Helper()
	r := f.deploy(t, token, "json", `{"deployOptions":{"singlePackage":true,"rollbackOnError":true}}`, buildZip(t, files))
	if r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	for i := 0; i < 10; i++ {
		res := f.poll(t, token, id)
		if res["done"] == true {
			return res
		}
	}
	t.Fatal("deploy never finished")
	return nil
}

func firstProblem(res map[string]any) string {
	d, _ := res["details"].(map[string]any)
	fails, _ := d["componentFailures"].([]any)
	if len(fails) == 0 {
		return ""
	}
	p, _ := fails[0].(map[string]any)["problem"].(string)
	return p
}

func TestDeployRotatesCertificate(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	files := map[string]string{
		"package.xml":                          packageXMLConnectedApp,
		"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true, scopes: true, extra: true}.String(),
	}
	r := f.deploy(t, tok, "json", `{"deployOptions":{"singlePackage":true,"rollbackOnError":true,"testLevel":"NoTestRun"}}`, buildZip(t, files))
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	dr := m["deployResult"].(map[string]any)
	if m["id"] == "" || dr["id"] != m["id"] || dr["status"] != "Pending" || dr["done"] != false || dr["success"] != false {
		t.Fatalf("201 body %s", r.body)
	}
	id := m["id"].(string)
	if !strings.HasPrefix(id, "0Af") || len(id) != 18 {
		t.Errorf("id %s", id)
	}
	if res := f.poll(t, tok, id); res["status"] != "InProgress" || res["done"] != false {
		t.Fatalf("first poll %v", res)
	}
	// Not applied before it finishes.
	if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) {
		t.Fatal("applied while InProgress")
	}
	res := f.poll(t, tok, id)
	if res["status"] != "Succeeded" || res["done"] != true || res["success"] != true || res["numberComponentsDeployed"] != 1.0 || res["numberComponentErrors"] != 0.0 {
		t.Fatalf("final %v", res)
	}
	a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey)
	if !sameCert(a.CertificatePEM, certB) || a.Extra["oauthPolicy.ipRelaxation"] != "ENFORCE" || !a.AdminApproved || a.Label != "Vault JWT" {
		t.Errorf("app after deploy %+v", a)
	}
	if r := f.postToken(t, jwtForm(sign(t, keyB, f.claims()))); r.status != 200 {
		t.Errorf("new key refused: %s", r.body)
	}
	if r := f.postToken(t, jwtForm(sign(t, keyA, f.claims()))); r.status != 400 {
		t.Error("old key still accepted with no propagation delay")
	}
	c := f.e.Counters()
	if c.DeployRequests != 1 || c.DeployPolls != 2 || c.DeploysSucceeded != 1 || c.DeploysFailed != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestDeployWipesOmittedFields(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	res := f.deployAndWait(t, tok, map[string]string{
		"package.xml":                          packageXMLConnectedApp,
		"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB}.String(),
	})
	if res["success"] != true {
		t.Fatalf("%v", res)
	}
	a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey)
	if len(a.Extra) != 0 || a.AdminApproved || len(a.Scopes) != 0 {
		t.Errorf("omitted fields should be reset: %+v", a)
	}
	// With isAdminApproved reset, the pre-authorisation no longer applies.
	wantOAuthError(t, f.postToken(t, jwtForm(sign(t, keyB, f.claims()))), "invalid_grant", "user hasn't approved this consumer")
	// The SOAP read shows the wipe too.
	rec := parseRead(t, soapRead(t, f, tok, "ConnectedApp", "Vault_JWT"))[0]
	if rec.IPRelaxation != "" || rec.OauthConfig.IsAdminApproved != "false" {
		t.Errorf("read after wipe %+v", rec)
	}
}

func TestDeployFailures(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		noPerm  bool
		problem string // componentFailures[0].problem, or errorStatusCode when prefixed "status:"
	}{
		{name: "consumer key provided", files: map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true, consumerKey: "3MVG9abc"}.String(),
		}, problem: "You cannot provide a Consumer Key"},
		{name: "missing package.xml", files: map[string]string{
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB}.String(),
		}, problem: "No package.xml found"},
		{name: "unparsable XML", files: map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": "<ConnectedApp><label>x</ConnectedApp>",
		}, problem: "Error parsing file:"},
		{name: "unparsable package.xml", files: map[string]string{
			"package.xml": "<Package><types>",
		}, problem: "Error parsing file:"},
		{name: "member file missing", files: map[string]string{
			"package.xml": packageXMLConnectedApp,
		}, problem: "was named in package.xml, but was not found in zipped directory"},
		{name: "invalid certificate", files: map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: "bm90IGEgY2VydA=="}.String(),
		}, problem: "certificate"},
		{name: "required label missing", files: map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": strings.Replace(appXML{cert: certB}.String(), "<label>Vault JWT</label>", "", 1),
		}, problem: "Required field is missing: label"},
		{name: "unknown app", files: map[string]string{
			"package.xml":                        strings.Replace(packageXMLConnectedApp, "Vault_JWT", "New_App", 1),
			"connectedApps/New_App.connectedApp": appXML{cert: certB}.String(),
		}, problem: "Creating a new app"},
		{name: "user without Modify Metadata", noPerm: true, files: map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB}.String(),
		}, problem: "status:INSUFFICIENT_ACCESS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			res := f.deployAndWait(t, f.loginDeployer(t, c.noPerm), c.files)
			if res["status"] != "Failed" || res["success"] != false {
				t.Fatalf("%v", res)
			}
			if code, ok := strings.CutPrefix(c.problem, "status:"); ok {
				if res["errorStatusCode"] != code || res["errorMessage"] == nil {
					t.Errorf("errorStatusCode %v", res["errorStatusCode"])
				}
			} else if p := firstProblem(res); !strings.Contains(p, c.problem) {
				t.Errorf("problem %q, want %q", p, c.problem)
			}
			if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) || len(a.Extra) != 1 {
				t.Error("a failed deploy changed the app")
			}
			if got := f.e.Counters().DeploysFailed; got != 1 {
				t.Errorf("DeploysFailed %d", got)
			}
		})
	}
}

func TestDeployRequestErrors(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	z := buildZip(t, map[string]string{"package.xml": packageXMLConnectedApp})
	if r := f.deploy(t, "bad", "json", `{"deployOptions":{}}`, z); r.status != 401 || !strings.Contains(string(r.body), "INVALID_SESSION_ID") {
		t.Errorf("bad token: %d %s", r.status, r.body)
	}
	if r := f.deploy(t, tok, "", "", z); r.status != 400 {
		t.Errorf("no json part: %d", r.status)
	}
	if r := f.deploy(t, tok, "json", `{"deployOptions":{}}`, nil); r.status != 400 {
		t.Errorf("no file part: %d", r.status)
	}
	if r := f.deploy(t, tok, "json", `{not json`, z); r.status != 400 || !strings.Contains(string(r.body), "JSON_PARSER_ERROR") {
		t.Errorf("bad json: %d %s", r.status, r.body)
	}
	if r := f.request(t, "POST", "/services/data/v60.0/metadata/deployRequest", "application/zip", string(z), tok); r.status != 400 {
		t.Errorf("not multipart: %d", r.status)
	}
	if r := f.request(t, "GET", "/services/data/v60.0/metadata/deployRequest/0Af000000000000AAA", "", "", tok); r.status != 404 {
		t.Errorf("unknown id: %d", r.status)
	}
}

func TestDeployEntityContentBareBase64(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	z := buildZip(t, map[string]string{
		"unpackaged/package.xml":                          packageXMLConnectedApp,
		"unpackaged/connectedApps/Vault_JWT.connectedApp": appXML{cert: bareBase64(certB), adminApproved: true, extra: true}.String(),
	})
	r := f.deploy(t, tok, "entity_content", `{"deployOptions":{"rollbackOnError":true}}`, z)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	f.poll(t, tok, id)
	if res := f.poll(t, tok, id); res["status"] != "Succeeded" {
		t.Fatalf("%v", res)
	}
	if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !strings.HasPrefix(a.CertificatePEM, "-----BEGIN CERTIFICATE-----") || !sameCert(a.CertificatePEM, certB) {
		t.Error("bare base64 certificate not stored as PEM of certB")
	}
}

func TestDeployPollsAndCheckOnly(t *testing.T) {
	for _, polls := range []int{-1, 3} {
		f := newFixture(t, Config{DeployPolls: polls})
		tok := f.login(t, f.deployer.Username)
		z := buildZip(t, map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true}.String(),
		})
		id := f.deploy(t, tok, "json", `{"deployOptions":{"checkOnly":true}}`, z).json(t)["id"].(string)
		inProgress := 0
		for {
			res := f.poll(t, tok, id)
			if res["done"] == true {
				if res["status"] != "Succeeded" || res["checkOnly"] != true {
					t.Fatalf("%v", res)
				}
				break
			}
			inProgress++
			if inProgress > 5 {
				t.Fatal("never done")
			}
		}
		if want := max(polls, 0); inProgress != want {
			t.Errorf("DeployPolls=%d: %d InProgress polls, want %d", polls, inProgress, want)
		}
		if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) {
			t.Error("checkOnly deploy applied changes")
		}
	}
}

func TestDeployCertificatePropagates(t *testing.T) {
	f := newFixture(t, Config{PropagationDelay: 5 * time.Minute, PropagationOverlap: "old"})
	tok := f.login(t, f.deployer.Username)
	res := f.deployAndWait(t, tok, map[string]string{
		"package.xml":                          packageXMLConnectedApp,
		"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true, scopes: true, extra: true}.String(),
	})
	if res["success"] != true {
		t.Fatalf("%v", res)
	}
	if r := f.postToken(t, jwtForm(sign(t, keyB, f.claims()))); r.status != 400 {
		t.Error("new key accepted before propagation")
	}
	f.clock.Advance(5 * time.Minute)
	if r := f.postToken(t, jwtForm(sign(t, keyB, f.claims()))); r.status != 200 {
		t.Errorf("new key refused after propagation: %s", r.body)
	}
}

func TestDeployECA(t *testing.T) {
	f := newFixture(t, Config{})
	eca := f.e.AddApp(App{Name: "Vault_ECA", Type: appTypeECA, CertificatePEM: certA,
		AdminApproved: true, PreAuthorizedUsers: []string{f.user.Username},
		Extra: map[string]string{"isPkceRequired": "false"}})
	tok := f.login(t, f.deployer.Username)
	glbl := `<?xml version="1.0" encoding="UTF-8"?>
<ExtlClntAppGlobalOauthSettings xmlns="http://soap.sforce.com/2006/04/metadata">
  <callbackUrl>https://localhost/cb</callbackUrl>
  <certificate>` + certB + `</certificate>
  <externalClientApplication>Vault_ECA</externalClientApplication>
  <isPkceRequired>false</isPkceRequired>
  <label>Vault ECA</label>
</ExtlClntAppGlobalOauthSettings>`
	res := f.deployAndWait(t, tok, map[string]string{
		"package.xml": `<Package xmlns="http://soap.sforce.com/2006/04/metadata"><types><members>Vault_ECA_glbloauth</members><name>ExtlClntAppGlobalOauthSettings</name></types><version>62.0</version></Package>`,
		"extlClntAppGlobalOauthSets/Vault_ECA_glbloauth.ecaGlblOauth": glbl,
	})
	if res["success"] != true {
		t.Fatalf("%v %s", res, firstProblem(res))
	}
	a, _ := f.e.AppByConsumerKey(eca.ConsumerKey)
	if !sameCert(a.CertificatePEM, certB) || a.Extra["isPkceRequired"] != "false" || !a.AdminApproved || a.Label != "Vault ECA" {
		t.Errorf("eca after deploy %+v", a)
	}
	c := f.claims()
	c["iss"] = eca.ConsumerKey
	if r := f.postToken(t, jwtForm(sign(t, keyB, c))); r.status != 200 {
		t.Errorf("eca login with new key: %s", r.body)
	}
}
