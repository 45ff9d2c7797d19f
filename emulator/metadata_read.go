package emulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const metadataNS = "http://soap.sforce.com/2006/04/metadata"

// soapRequest is what the emulator needs from a Metadata API SOAP call.
type soapRequest struct {
	sessionID string
	operation string
	typeName  string
	fullNames []string
	// deploy and checkDeployStatus
	zipFile        string
	deployOptions  map[string]any
	asyncID        string
	includeDetails bool
}

// parseSOAP walks the envelope by local names, so any namespace prefixes a
// client picks (met:, tns:, none) work.
func parseSOAP(body []byte) (soapRequest, error) {
	var req soapRequest
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return req, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// The first element inside Body names the operation.
			if len(stack) >= 2 && stack[len(stack)-1] == "Body" && req.operation == "" {
				req.operation = t.Name.Local
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			if len(stack) >= 2 && stack[len(stack)-2] == "DeployOptions" {
				req.setDeployOption(t.Name.Local, v)
			}
			switch t.Name.Local {
			case "sessionId":
				req.sessionID = v
			case "type":
				if req.operation != "" {
					req.typeName = v
				}
			case "fullNames":
				req.fullNames = append(req.fullNames, v)
			case "ZipFile":
				req.zipFile = v
			case "asyncProcessId":
				req.asyncID = v
			case "includeDetails":
				req.includeDetails = v == "true"
			}
			stack = stack[:len(stack)-1]
			text.Reset()
		}
	}
	return req, nil
}

// setDeployOption records one DeployOptions element the way the REST API's
// JSON carries it: booleans as booleans, runTests as a list.
func (req *soapRequest) setDeployOption(name, v string) {
	if req.deployOptions == nil {
		req.deployOptions = map[string]any{}
	}
	switch {
	case name == "runTests":
		list, _ := req.deployOptions[name].([]string)
		req.deployOptions[name] = append(list, v)
	case v == "true" || v == "false":
		req.deployOptions[name] = v == "true"
	default:
		req.deployOptions[name] = v
	}
}

// soapFaultXML is the envelope Salesforce returns (with HTTP 500) for a
// failed SOAP call.
func soapFaultXML(code, msg string) string {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="` + metadataNS + `"><soapenv:Body><soapenv:Fault><faultcode>`)
	_ = xml.EscapeText(&b, []byte(code))
	b.WriteString(`</faultcode><faultstring>`)
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>`)
	return b.String()
}

func writeSOAPFault(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, soapFaultXML(code, msg))
}

const msgNoMetadataPermission = "use of the Metadata API requires a user with the ModifyAllData or ModifyMetadata permissions"

// handleSOAP is POST /services/Soap/m/{ver}[/{org}]: readMetadata (how the
// plugin reads an app before changing it), and deploy and
// checkDeployStatus (how the Salesforce CLI deploys by default).
func (e *Emulator) handleSOAP(w http.ResponseWriter, r *http.Request) {
	// Salesforce refuses deploys over 39 MB zipped, 52 MB as base64.
	body, err := io.ReadAll(io.LimitReader(r.Body, 56<<20))
	if err != nil {
		writeSOAPFault(w, "soapenv:Client", "could not read request body")
		return
	}
	req, err := parseSOAP(body)
	switch op := req.operation; {
	case err == nil && op == "deploy":
		e.soapDeploy(w, r, req)
		return
	case err == nil && op == "checkDeployStatus":
		e.soapCheckDeployStatus(w, r, req)
		return
	}
	e.count(func(c *Counters) { c.ReadMetadata++ })
	if _, handled := e.injectFault(w, r, "read_metadata", ""); handled {
		return
	}
	if err != nil || req.operation == "" {
		writeSOAPFault(w, "soapenv:Client", "Unable to parse the SOAP request")
		return
	}
	s, ok := e.useToken(req.sessionID)
	if !ok {
		writeSOAPFault(w, "sf:INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session")
		return
	}
	if req.operation != "readMetadata" {
		writeSOAPFault(w, "soapenv:Client", fmt.Sprintf("No operation available for request {%s}%s, please check the WSDL for the service.", metadataNS, req.operation))
		return
	}
	if !s.user.CanModifyMetadata {
		writeSOAPFault(w, "sf:INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS: "+msgNoMetadataPermission)
		return
	}
	var wantType string
	switch req.typeName {
	case "ConnectedApp":
		wantType = appTypeConnected
	case "ExtlClntAppGlobalOauthSettings":
		wantType = appTypeECA
	default:
		writeSOAPFault(w, "sf:INVALID_TYPE", fmt.Sprintf("INVALID_TYPE: Unknown type name '%s' specified", req.typeName))
		return
	}

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="` + metadataNS + `" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
		"<soapenv:Body><readMetadataResponse><result>\n")
	for _, name := range req.fullNames {
		app, found := e.appForComponent(s.org.ID, wantType, name)
		if !found {
			// A missing component comes back as an empty record.
			b.WriteString("<records xsi:nil=\"true\"/>\n")
			continue
		}
		b.WriteString(`<records xsi:type="` + req.typeName + `">` + "\n")
		renderXML(&b, append([]leaf{{"fullName", name}}, appLeaves(app)...), "    ")
		b.WriteString("</records>\n")
	}
	b.WriteString("</result></readMetadataResponse></soapenv:Body></soapenv:Envelope>")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// appForComponent finds the app a metadata component names in an org. An
// ECA's global OAuth settings are conventionally named <App>_glbloauth; the
// bare app name is accepted too.
func (e *Emulator) appForComponent(orgID, appType, fullName string) (App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range e.appOrder {
		a := e.apps[k].def
		if a.Type != appType || !sameID(a.OrgID, orgID) {
			continue
		}
		if strings.EqualFold(a.Name, fullName) ||
			(appType == appTypeECA && strings.EqualFold(a.Name+ecaGlobalSuffix, fullName)) {
			return cloneApp(a), true
		}
	}
	return App{}, false
}
