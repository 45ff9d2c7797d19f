package emulator

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// soapEnvelope carries one Metadata API operation the way jsforce writes
// it: the metadata namespace as default, no prefixes.
const soapEnvelope = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://soap.sforce.com/2006/04/metadata">
<soapenv:Header><SessionHeader><sessionId>%s</sessionId></SessionHeader></soapenv:Header>
<soapenv:Body><%s>%s</%[2]s></soapenv:Body></soapenv:Envelope>`

func (f *fixture) soap(t *testing.T, token, op, inner string) result {
	t.Helper()
	return f.request(t, "POST", "/services/Soap/m/60.0/"+f.org.ID[:15], "text/xml; charset=UTF-8", fmt.Sprintf(soapEnvelope, token, op, inner), "")
}

// soapDeploy calls deploy; options is the content of DeployOptions.
func (f *fixture) soapDeploy(t *testing.T, token, zipBase64, options string) result {
	t.Helper()
	return f.soap(t, token, "deploy", "<ZipFile>"+zipBase64+"</ZipFile><DeployOptions>"+options+"</DeployOptions>")
}

func (f *fixture) soapCheck(t *testing.T, token, id string, details bool) result {
	t.Helper()
	return f.soap(t, token, "checkDeployStatus", fmt.Sprintf("<asyncProcessId>%s</asyncProcessId><includeDetails>%t</includeDetails>", id, details))
}

// certBZip is a deploy of Vault_JWT with certB on it.
func certBZip(t *testing.T) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(buildZip(t, map[string]string{
		"package.xml":                          packageXMLConnectedApp,
		"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, adminApproved: true, scopes: true, extra: true}.String(),
	}))
}

// parseQueued reads deploy's AsyncResult and returns the job id.
func parseQueued(t *testing.T, r result) string {
	t.Helper()
	var env struct {
		Result struct {
			Done  string `xml:"done"`
			ID    string `xml:"id"`
			State string `xml:"state"`
		} `xml:"Body>deployResponse>result"`
	}
	if r.status != 200 || xml.Unmarshal(r.body, &env) != nil {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	if res := env.Result; res.Done != "false" || res.State != "Queued" || !strings.HasPrefix(res.ID, "0Af") || len(res.ID) != 18 {
		t.Fatalf("AsyncResult %+v", res)
	}
	return env.Result.ID
}

type soapDeployMessage struct {
	Changed       bool   `xml:"changed"`
	ComponentType string `xml:"componentType"`
	FileName      string `xml:"fileName"`
	FullName      string `xml:"fullName"`
	ID            string `xml:"id"`
	Problem       string `xml:"problem"`
	ProblemType   string `xml:"problemType"`
	Success       bool   `xml:"success"`
}

type soapDeployResult struct {
	ID                       string `xml:"id"`
	Done                     bool   `xml:"done"`
	Status                   string `xml:"status"`
	Success                  bool   `xml:"success"`
	CheckOnly                bool   `xml:"checkOnly"`
	RollbackOnError          bool   `xml:"rollbackOnError"`
	IgnoreWarnings           bool   `xml:"ignoreWarnings"`
	CreatedBy                string `xml:"createdBy"`
	ErrorStatusCode          string `xml:"errorStatusCode"`
	ErrorMessage             string `xml:"errorMessage"`
	NumberComponentErrors    int    `xml:"numberComponentErrors"`
	NumberComponentsDeployed int    `xml:"numberComponentsDeployed"`
	NumberComponentsTotal    int    `xml:"numberComponentsTotal"`
	Details                  *struct {
		ComponentFailures  []soapDeployMessage `xml:"componentFailures"`
		ComponentSuccesses []soapDeployMessage `xml:"componentSuccesses"`
	} `xml:"details"`
}

func parseCheck(t *testing.T, r result) soapDeployResult {
	t.Helper()
	var env struct {
		Result soapDeployResult `xml:"Body>checkDeployStatusResponse>result"`
	}
	if r.status != 200 || xml.Unmarshal(r.body, &env) != nil || env.Result.ID == "" {
		t.Fatalf("checkDeployStatus: %d %s", r.status, r.body)
	}
	return env.Result
}

// soapPollUntilDone calls checkDeployStatus (with details) until the job is done.
func (f *fixture) soapPollUntilDone(t *testing.T, token, id string) soapDeployResult {
	t.Helper()
	for range 10 {
		if res := parseCheck(t, f.soapCheck(t, token, id, true)); res.Done {
			return res
		}
	}
	t.Fatalf("deploy %s never finished", id)
	return soapDeployResult{}
}

// xmlElement is any element with its children in document order.
type xmlElement struct {
	XMLName  xml.Name
	Children []xmlElement `xml:",any"`
}

// wantWSDLOrder checks that a checkDeployStatus answer holds the elements
// the WSDL requires, each type's in the WSDL's order (alphabetical for
// DeployResult, DeployDetails, DeployMessage and RunTestsResult).
func wantWSDLOrder(t *testing.T, r result) {
	t.Helper()
	var env struct {
		Result xmlElement `xml:"Body>checkDeployStatusResponse>result"`
	}
	if err := xml.Unmarshal(r.body, &env); err != nil {
		t.Fatal(err)
	}
	var walk func(n xmlElement, path string) []string
	walk = func(n xmlElement, path string) []string {
		var names []string
		for _, c := range n.Children {
			names = append(names, c.XMLName.Local)
			walk(c, path+"/"+c.XMLName.Local)
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s: children not in WSDL order: %v", path, names)
		}
		return names
	}
	names := walk(env.Result, "result")
	for _, req := range []string{"checkOnly", "createdBy", "createdByName", "createdDate", "details", "done", "id", "ignoreWarnings",
		"numberComponentErrors", "numberComponentsDeployed", "numberComponentsTotal", "numberTestErrors", "numberTestsCompleted",
		"numberTestsTotal", "rollbackOnError", "runTestsEnabled", "status", "success"} {
		if !slices.Contains(names, req) {
			t.Errorf("DeployResult lacks %s: %v", req, names)
		}
	}
}

// The Salesforce CLI's path against the demo seed: a session from the
// admin API, a SOAP deploy putting certB on the demo app, polled to the end.
func TestSOAPDeployDemoAppCertificate(t *testing.T) {
	f := newFixture(t, Config{})
	seed := f.e.SeedDemo()
	tok := f.sessionToken(t, DemoDeployUsername)

	id := parseQueued(t, f.soapDeploy(t, tok, certBZip(t), "<rollbackOnError>true</rollbackOnError><singlePackage>true</singlePackage>"))
	first := parseCheck(t, f.soapCheck(t, tok, id, false))
	if first.ID != id || first.Done || first.Success || first.Status != "InProgress" || first.Details != nil {
		t.Fatalf("first check %+v", first)
	}
	if a, _ := f.e.AppByConsumerKey(DemoConsumerKey); a.CertificatePEM != "" {
		t.Fatal("applied while InProgress")
	}

	res := f.soapPollUntilDone(t, tok, id)
	if res.Status != "Succeeded" || !res.Success || res.NumberComponentsDeployed != 1 || res.NumberComponentErrors != 0 ||
		res.NumberComponentsTotal != 1 || res.CreatedBy != seed.Deployer.ID || res.ErrorStatusCode != "" || res.Details == nil {
		t.Fatalf("final %+v", res)
	}
	var app *soapDeployMessage
	for i, m := range res.Details.ComponentSuccesses {
		if m.ComponentType == "ConnectedApp" {
			app = &res.Details.ComponentSuccesses[i]
		}
	}
	if len(res.Details.ComponentFailures) != 0 || app == nil || app.FullName != DemoAppName || !app.Success || !app.Changed ||
		app.FileName != "connectedApps/Vault_JWT.connectedApp" || !strings.HasPrefix(app.ID, "0H4") || app.Problem != "" {
		t.Errorf("details %+v", res.Details)
	}
	if a, _ := f.e.AppByConsumerKey(DemoConsumerKey); !sameCert(a.CertificatePEM, certB) || !a.AdminApproved {
		t.Errorf("demo app after deploy %+v", a)
	}
	// Vault's key now logs the integration user in through the demo app.
	c := f.claims()
	c["iss"], c["sub"] = DemoConsumerKey, DemoUsername
	if r := f.postToken(t, jwtForm(sign(t, keyB, c))); r.status != 200 {
		t.Errorf("JWT login with the deployed certificate: %d %s", r.status, r.body)
	}

	// Checking a finished deploy again changes nothing and is well formed.
	again := f.soapCheck(t, tok, id, true)
	if !strings.HasPrefix(again.header.Get("Content-Type"), "text/xml") || parseCheck(t, again).Status != "Succeeded" {
		t.Errorf("check after done: %s %s", again.header.Get("Content-Type"), again.body)
	}
	wantWSDLOrder(t, again)
	if cnt := f.e.Counters(); cnt.DeployRequests != 1 || cnt.DeployPolls != 3 || cnt.DeploysSucceeded != 1 || cnt.DeploysFailed != 0 {
		t.Errorf("counters %+v", cnt)
	}
}

func TestSOAPDeployFailures(t *testing.T) {
	cases := []struct {
		name      string
		zip       string // base64
		noPerm    bool
		ctype     string // componentFailures[0].componentType
		problem   string // part of componentFailures[0].problem
		errorCode string // or: errorStatusCode, with no component failure
	}{
		{name: "invalid certificate", zip: base64.StdEncoding.EncodeToString(buildZip(t, map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: "bm90IGEgY2VydA==", adminApproved: true}.String(),
		})), ctype: "ConnectedApp", problem: "not a valid PEM-encoded X.509 certificate"},
		{name: "consumer key provided", zip: base64.StdEncoding.EncodeToString(buildZip(t, map[string]string{
			"package.xml":                          packageXMLConnectedApp,
			"connectedApps/Vault_JWT.connectedApp": appXML{cert: certB, consumerKey: "3MVG9abc"}.String(),
		})), ctype: "ConnectedApp", problem: "You cannot provide a Consumer Key"},
		{name: "base64 of something not a zip", zip: base64.StdEncoding.EncodeToString([]byte("not a zip")), problem: "Invalid zip file"},
		{name: "user without Modify Metadata", zip: certBZip(t), noPerm: true, errorCode: "INSUFFICIENT_ACCESS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tok := f.loginDeployer(t, c.noPerm)
			res := f.soapPollUntilDone(t, tok, parseQueued(t, f.soapDeploy(t, tok, c.zip, "")))
			if res.Status != "Failed" || res.Success || res.NumberComponentsDeployed != 0 || res.Details == nil {
				t.Fatalf("%+v", res)
			}
			fails := res.Details.ComponentFailures
			if c.errorCode != "" {
				if res.ErrorStatusCode != c.errorCode || res.ErrorMessage != msgNoMetadataPermission || len(fails) != 0 {
					t.Errorf("errorStatusCode %q errorMessage %q failures %+v", res.ErrorStatusCode, res.ErrorMessage, fails)
				}
			} else if len(fails) != 1 || res.NumberComponentErrors != 1 || fails[0].ComponentType != c.ctype ||
				!strings.Contains(fails[0].Problem, c.problem) || fails[0].ProblemType != "Error" || fails[0].Success {
				t.Errorf("componentFailures %+v (numberComponentErrors %d), want a %q problem", fails, res.NumberComponentErrors, c.problem)
			}
			if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) || len(a.Extra) != 1 {
				t.Error("a failed deploy changed the app")
			}
			if cnt := f.e.Counters(); cnt.DeploysFailed != 1 || cnt.DeploysSucceeded != 0 {
				t.Errorf("counters %+v", cnt)
			}
		})
	}
}

func TestSOAPDeployFaults(t *testing.T) {
	f := newFixture(t, Config{})
	tok := f.login(t, f.deployer.Username)
	id := parseQueued(t, f.soapDeploy(t, tok, certBZip(t), ""))
	other := f.e.AddOrg(Org{Name: "Other"})
	f.e.AddUser(User{Username: "admin@other.example.com", OrgID: other.ID, CanModifyMetadata: true})
	otherTok := f.sessionToken(t, "admin@other.example.com")
	revoked := f.login(t, f.deployer.Username)
	if r := f.request(t, "POST", "/services/oauth2/revoke", "application/x-www-form-urlencoded", "token="+revoked, ""); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}

	cases := []struct {
		name, token, op, inner, code string
	}{
		{"deploy, bad session", "00Dxx!bad", "deploy", "<ZipFile>" + certBZip(t) + "</ZipFile>", "sf:INVALID_SESSION_ID"},
		{"deploy, revoked session", revoked, "deploy", "<ZipFile>" + certBZip(t) + "</ZipFile>", "sf:INVALID_SESSION_ID"},
		{"deploy, no session", "", "deploy", "<ZipFile>" + certBZip(t) + "</ZipFile>", "sf:INVALID_SESSION_ID"},
		{"deploy, bad base64", tok, "deploy", "<ZipFile>!!not base64!!</ZipFile>", "sf:INVALID_ZIP"},
		{"deploy, empty ZipFile", tok, "deploy", "<ZipFile></ZipFile>", "sf:INVALID_ZIP"},
		{"deploy, no ZipFile", tok, "deploy", "<DeployOptions><checkOnly>true</checkOnly></DeployOptions>", "sf:INVALID_ZIP"},
		{"status, bad session", "00Dxx!bad", "checkDeployStatus", "<asyncProcessId>" + id + "</asyncProcessId>", "sf:INVALID_SESSION_ID"},
		{"status, unknown id", tok, "checkDeployStatus", "<asyncProcessId>0Af000000000000AAA</asyncProcessId>", "sf:INVALID_ID_FIELD"},
		{"status, no id", tok, "checkDeployStatus", "<includeDetails>true</includeDetails>", "sf:INVALID_ID_FIELD"},
		{"status, another org's job", otherTok, "checkDeployStatus", "<asyncProcessId>" + id + "</asyncProcessId>", "sf:INVALID_ID_FIELD"},
	}
	for _, c := range cases {
		r := f.soap(t, c.token, c.op, c.inner)
		if r.status != 500 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") || soapFaultCode(t, r) != c.code {
			t.Errorf("%s: want %s, got %d %s", c.name, c.code, r.status, r.body)
		}
	}
	f.e.mu.Lock()
	jobs := len(f.e.deploys)
	f.e.mu.Unlock()
	if jobs != 1 {
		t.Errorf("%d deploy jobs, want only the valid one", jobs)
	}
	if cnt := f.e.Counters(); cnt.DeployRequests != 7 || cnt.DeployPolls != 4 || cnt.ReadMetadata != 0 {
		t.Errorf("counters %+v", cnt)
	}
	if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certA) {
		t.Error("refused calls changed the app")
	}
}

// A deploy submitted through one API can be polled through the other.
func TestSOAPAndRESTShareDeploys(t *testing.T) {
	cases := []struct {
		name       string
		submitSOAP bool
		pollSOAP   []bool // the two polls, InProgress then Succeeded
	}{
		{"SOAP deploy, REST status", true, []bool{false, false}},
		{"REST deploy, SOAP status", false, []bool{true, true}},
		{"SOAP deploy, polled both ways", true, []bool{true, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tok := f.login(t, f.deployer.Username)
			var id string
			if c.submitSOAP {
				id = parseQueued(t, f.soapDeploy(t, tok, certBZip(t), ""))
			} else {
				z, _ := base64.StdEncoding.DecodeString(certBZip(t))
				r := f.deploy(t, tok, "json", `{"deployOptions":{"rollbackOnError":true}}`, z)
				if r.status != 201 {
					t.Fatalf("REST deploy: %d %s", r.status, r.body)
				}
				id = r.json(t)["id"].(string)
			}
			for i, soap := range c.pollSOAP {
				want := []string{"InProgress", "Succeeded"}[i]
				var status string
				if soap {
					status = parseCheck(t, f.soapCheck(t, tok, id, true)).Status
				} else {
					status, _ = f.poll(t, tok, id)["status"].(string)
				}
				if status != want {
					t.Fatalf("poll %d (SOAP %v): %s, want %s", i+1, soap, status, want)
				}
			}
			if a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey); !sameCert(a.CertificatePEM, certB) {
				t.Error("certificate not deployed")
			}
			if cnt := f.e.Counters(); cnt.DeployRequests != 1 || cnt.DeployPolls != 2 || cnt.DeploysSucceeded != 1 {
				t.Errorf("counters %+v", cnt)
			}
		})
	}
}

// DeployOptions given by SOAP are the job's options as the REST API shows
// them, and act on the deploy.
func TestSOAPDeployOptions(t *testing.T) {
	cases := []struct {
		name        string
		options     string
		want        map[string]any // deployOptions in the REST status
		checkOnly   bool
		rollback    bool
		ignoreWarns bool
	}{
		{name: "none", want: map[string]any{}, rollback: true},
		{name: "checkOnly", options: "<checkOnly>true</checkOnly>",
			want: map[string]any{"checkOnly": true}, checkOnly: true, rollback: true},
		{name: "jsforce's set", options: "<allowMissingFiles>false</allowMissingFiles><ignoreWarnings>true</ignoreWarnings>" +
			"<rollbackOnError>false</rollbackOnError><runTests>TestA</runTests><runTests>TestB</runTests><testLevel>RunSpecifiedTests</testLevel>",
			want: map[string]any{"allowMissingFiles": false, "ignoreWarnings": true, "rollbackOnError": false,
				"runTests": []any{"TestA", "TestB"}, "testLevel": "RunSpecifiedTests"}, ignoreWarns: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tok := f.login(t, f.deployer.Username)
			id := parseQueued(t, f.soapDeploy(t, tok, certBZip(t), c.options))
			r := f.request(t, "GET", "/services/data/v60.0/metadata/deployRequest/"+id, "", "", tok)
			if r.status != 200 {
				t.Fatalf("REST status: %d %s", r.status, r.body)
			}
			if got := r.json(t)["deployOptions"]; !reflect.DeepEqual(got, c.want) {
				t.Errorf("deployOptions %#v, want %#v", got, c.want)
			}
			res := f.soapPollUntilDone(t, tok, id)
			if res.Status != "Succeeded" || res.CheckOnly != c.checkOnly || res.RollbackOnError != c.rollback || res.IgnoreWarnings != c.ignoreWarns {
				t.Errorf("result %+v", res)
			}
			a, _ := f.e.AppByConsumerKey(f.app.ConsumerKey)
			if applied := sameCert(a.CertificatePEM, certB); applied == c.checkOnly {
				t.Errorf("certificate applied=%v with checkOnly=%v", applied, c.checkOnly)
			}
		})
	}
}

// Faults on "deploy" and "deploy_status" hit the SOAP calls, and the
// counters count those calls.
func TestSOAPDeployFaultInjection(t *testing.T) {
	cases := []struct {
		name       string
		fault      Fault
		deployHTTP int    // the deploy call; not 200: it is retried once
		pollHTTP   []int  // three checkDeployStatus calls
		final      string // status after them
		problem    string // errorStatusCode or componentFailures[0].problem when Failed
	}{
		{name: "deploy status 500", fault: Fault{Endpoint: "deploy", Kind: FaultStatus, Status: 500, Count: 1},
			deployHTTP: 500, pollHTTP: []int{200, 200, 200}, final: "Succeeded"},
		{name: "deploy latency", fault: Fault{Endpoint: "deploy", Kind: FaultLatency, Latency: 20 * time.Millisecond},
			deployHTTP: 200, pollHTTP: []int{200, 200, 200}, final: "Succeeded"},
		{name: "deploy_status 503", fault: Fault{Endpoint: "deploy_status", Kind: FaultStatus, Status: 503, Count: 1},
			deployHTTP: 200, pollHTTP: []int{503, 200, 200}, final: "Succeeded"},
		{name: "deploy_fail", fault: Fault{Endpoint: "deploy", Kind: FaultDeployFail},
			deployHTTP: 200, pollHTTP: []int{200, 200, 200}, final: "Failed", problem: "UNKNOWN_EXCEPTION"},
		{name: "component_failure on deploy_status", fault: Fault{Endpoint: "deploy_status", Kind: FaultComponentFailure},
			deployHTTP: 200, pollHTTP: []int{200, 200, 200}, final: "Failed", problem: "An unexpected error occurred"},
		{name: "stuck", fault: Fault{Endpoint: "deploy", Kind: FaultStuck},
			deployHTTP: 200, pollHTTP: []int{200, 200, 200}, final: "InProgress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			tok := f.login(t, f.deployer.Username)
			f.e.AddFault(c.fault)
			requests := 1
			r := f.soapDeploy(t, tok, certBZip(t), "")
			if r.status != c.deployHTTP {
				t.Fatalf("deploy: %d, want %d: %s", r.status, c.deployHTTP, r.body)
			}
			if r.status != 200 {
				if cnt := f.e.Counters(); cnt.DeployRequests != 1 || cnt.FaultsInjected != 1 {
					t.Errorf("after the faulted deploy: %+v", cnt)
				}
				// A SOAP call's injected error is a SOAP fault, not the REST API's JSON.
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") || !strings.Contains(string(r.body), "soapenv:Fault") {
					t.Errorf("faulted SOAP deploy answered %s: %s", ct, r.body)
				}
				requests++
				r = f.soapDeploy(t, tok, certBZip(t), "")
			}
			id := parseQueued(t, r)
			var got []int
			var last soapDeployResult
			for range c.pollHTTP {
				pr := f.soapCheck(t, tok, id, true)
				got = append(got, pr.status)
				if pr.status == 200 {
					last = parseCheck(t, pr)
				}
			}
			if !slices.Equal(got, c.pollHTTP) || last.Status != c.final {
				t.Fatalf("polls %v ending %s, want %v ending %s", got, last.Status, c.pollHTTP, c.final)
			}
			if c.problem != "" {
				p := last.ErrorStatusCode
				if last.Details != nil && len(last.Details.ComponentFailures) > 0 {
					p = last.Details.ComponentFailures[0].Problem
				}
				if !strings.Contains(p, c.problem) {
					t.Errorf("problem %q, want %q", p, c.problem)
				}
			}
			if cnt := f.e.Counters(); cnt.DeployRequests != requests || cnt.DeployPolls != len(c.pollHTTP) || cnt.FaultsInjected != 1 {
				t.Errorf("counters %+v", cnt)
			}
		})
	}
}
