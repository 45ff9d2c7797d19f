package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strconv"
	"time"
)

// The SOAP Metadata API's deploy and checkDeployStatus, which the Salesforce
// CLI (through jsforce) uses unless told to use REST. They share the REST
// API's jobs: a deploy submitted one way can be polled either way.

// soapDeploy answers deploy: the zip is planned and the job queued, the
// answer is an AsyncResult.
func (e *Emulator) soapDeploy(w http.ResponseWriter, r *http.Request, req soapRequest) {
	e.count(func(c *Counters) { c.DeployRequests++ })
	f, handled := e.injectFault(w, r, "deploy", "")
	if handled {
		return
	}
	s, ok := e.soapSession(w, req)
	if !ok {
		return
	}
	zipBytes, err := base64.StdEncoding.DecodeString(req.zipFile)
	if err != nil || len(zipBytes) == 0 {
		writeSOAPFault(w, "sf:INVALID_ZIP", "INVALID_ZIP: the ZipFile element must hold a base64-encoded zip file")
		return
	}
	opts := req.deployOptions
	if opts == nil {
		opts = map[string]any{}
	}
	job := e.submitDeploy(s, opts, zipBytes, f)
	var b bytes.Buffer
	b.WriteString("<deployResponse><result><done>false</done><id>" + job.id + "</id><state>Queued</state></result></deployResponse>")
	writeSOAPBody(w, b.Bytes())
}

// soapCheckDeployStatus answers checkDeployStatus with a DeployResult; like
// a REST status read, each call moves the deploy along.
func (e *Emulator) soapCheckDeployStatus(w http.ResponseWriter, r *http.Request, req soapRequest) {
	e.count(func(c *Counters) { c.DeployPolls++ })
	if _, handled := e.injectFault(w, r, "deploy_status", ""); handled {
		return
	}
	s, ok := e.soapSession(w, req)
	if !ok {
		return
	}
	e.mu.Lock()
	job, found := e.deploys[req.asyncID]
	if !found || !sameID(job.orgID, s.org.ID) {
		e.mu.Unlock()
		writeSOAPFault(w, "sf:INVALID_ID_FIELD", "INVALID_ID_FIELD: Invalid or null ID")
		return
	}
	e.pollDeployLocked(job)
	res := deployResultOf(job, req.includeDetails)
	e.mu.Unlock()
	var b bytes.Buffer
	b.WriteString("<checkDeployStatusResponse><result>")
	writeDeployResultXML(&b, res)
	b.WriteString("</result></checkDeployStatusResponse>")
	writeSOAPBody(w, b.Bytes())
}

// soapSession checks the SessionHeader the way Salesforce does.
func (e *Emulator) soapSession(w http.ResponseWriter, req soapRequest) (authSession, bool) {
	s, ok := e.useToken(req.sessionID)
	if !ok {
		writeSOAPFault(w, "sf:INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session")
	}
	return s, ok
}

func writeSOAPBody(w http.ResponseWriter, inner []byte) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="` + metadataNS + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`))
	_, _ = w.Write(inner)
	_, _ = w.Write([]byte(`</soapenv:Body></soapenv:Envelope>`))
}

// writeDeployResultXML renders a DeployResult in the WSDL's element order;
// absent (nil) values are left out, as Salesforce does.
func writeDeployResultXML(b *bytes.Buffer, res deployResult) {
	el := func(name, v string) {
		b.WriteString("<" + name + ">")
		_ = xml.EscapeText(b, []byte(v))
		b.WriteString("</" + name + ">")
	}
	opt := func(name string, v *string) {
		if v != nil {
			el(name, *v)
		}
	}
	boolEl := func(name string, v bool) { el(name, strconv.FormatBool(v)) }
	intEl := func(name string, v int) { el(name, strconv.Itoa(v)) }

	opt("canceledBy", res.CanceledBy)
	opt("canceledByName", res.CanceledByName)
	boolEl("checkOnly", res.CheckOnly)
	opt("completedDate", soapDate(res.CompletedDate))
	el("createdBy", res.CreatedBy)
	el("createdByName", res.CreatedByName)
	el("createdDate", *soapDate(&res.CreatedDate))
	if d := res.Details; d != nil {
		b.WriteString("<details>")
		for _, m := range d.ComponentFailures {
			writeComponentMessageXML(b, "componentFailures", m)
		}
		for _, m := range d.ComponentSuccesses {
			writeComponentMessageXML(b, "componentSuccesses", m)
		}
		b.WriteString("<runTestResult><numFailures>0</numFailures><numTestsRun>0</numTestsRun><totalTime>0.0</totalTime></runTestResult>")
		b.WriteString("</details>")
	}
	boolEl("done", res.Done)
	opt("errorMessage", res.ErrorMessage)
	opt("errorStatusCode", res.ErrorStatusCode)
	el("id", res.ID)
	boolEl("ignoreWarnings", res.IgnoreWarnings)
	el("lastModifiedDate", *soapDate(&res.LastModifiedDate))
	intEl("numberComponentErrors", res.NumberComponentErrors)
	intEl("numberComponentsDeployed", res.NumberComponentsDeployed)
	intEl("numberComponentsTotal", res.NumberComponentsTotal)
	intEl("numberTestErrors", res.NumberTestErrors)
	intEl("numberTestsCompleted", res.NumberTestsCompleted)
	intEl("numberTestsTotal", res.NumberTestsTotal)
	boolEl("rollbackOnError", res.RollbackOnError)
	boolEl("runTestsEnabled", res.RunTestsEnabled)
	opt("startDate", soapDate(res.StartDate))
	opt("stateDetail", res.StateDetail)
	el("status", res.Status)
	boolEl("success", res.Success)
}

// soapDate turns the REST API's date form (…000+0000) into xsd:dateTime (…000Z), as SOAP
// answers carry it.
func soapDate(rest *string) *string {
	if rest == nil {
		return nil
	}
	t, err := time.Parse(sfDateLayout, *rest)
	if err != nil {
		return rest
	}
	s := t.UTC().Format("2006-01-02T15:04:05.000Z")
	return &s
}

func writeComponentMessageXML(b *bytes.Buffer, tag string, m componentMessage) {
	el := func(name, v string) {
		b.WriteString("<" + name + ">")
		_ = xml.EscapeText(b, []byte(v))
		b.WriteString("</" + name + ">")
	}
	b.WriteString("<" + tag + ">")
	el("changed", strconv.FormatBool(m.Changed))
	if m.ColumnNumber != nil {
		el("columnNumber", strconv.Itoa(*m.ColumnNumber))
	}
	el("componentType", m.ComponentType)
	el("created", strconv.FormatBool(m.Created))
	el("createdDate", *soapDate(&m.CreatedDate))
	el("deleted", strconv.FormatBool(m.Deleted))
	el("fileName", m.FileName)
	el("fullName", m.FullName)
	if m.ID != nil {
		el("id", *m.ID)
	}
	if m.LineNumber != nil {
		el("lineNumber", strconv.Itoa(*m.LineNumber))
	}
	if m.Problem != nil {
		el("problem", *m.Problem)
	}
	if m.ProblemType != nil {
		el("problemType", *m.ProblemType)
	}
	el("success", strconv.FormatBool(m.Success))
	b.WriteString("</" + tag + ">")
}
