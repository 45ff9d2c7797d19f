package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// APIError is a refusal from Salesforce's REST or SOAP APIs (e.g. INVALID_SESSION_ID,
// INSUFFICIENT_ACCESS). Like an OAuthError it is the operator's to fix.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("Salesforce API refused the request: %s: %s", e.Code, e.Message)
}

// parseAPIError reads REST's [{"message","errorCode"}] error list.
func parseAPIError(resp *http.Response, data []byte) *APIError {
	var list []struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	_ = json.Unmarshal(data, &list) // anything that is not the error list is not an API error
	if len(list) == 0 || list[0].ErrorCode == "" {
		return nil
	}
	return &APIError{Status: resp.StatusCode, Code: list[0].ErrorCode, Message: list[0].Message}
}

type soapFault struct {
	Code   string `xml:"Body>Fault>faultcode"`
	String string `xml:"Body>Fault>faultstring"`
}

func isSOAPFault(data []byte) bool { return bytes.Contains(data, []byte("Fault>")) }

func parseSOAPFault(data []byte) error {
	var f soapFault
	if xml.Unmarshal(data, &f) != nil || f.Code == "" {
		return &APIError{Status: 500, Code: "SOAP_FAULT", Message: "malformed SOAP fault"}
	}
	code := f.Code
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[i+1:]
	}
	return &APIError{Status: 500, Code: code, Message: f.String}
}

// checkInstanceURL keeps an access token from going anywhere but an https host that the
// connection's rules allow (the token answer names the instance; a bad one must not leak it).
// A community instance is allowed as before, but, like a community login URL, only at its base
// URL or site prefix: deeper paths there may be any org's Apex REST.
func (c *Client) checkInstanceURL(instanceURL string, allowNonSalesforce bool) (string, error) {
	u, err := ValidateLoginURL(instanceURL, HostPolicy{AllowNonSalesforce: allowNonSalesforce, AllowCommunity: true})
	if err != nil {
		return "", fmt.Errorf("instance_url %q %w", instanceURL, err)
	}
	return u, nil
}

// Session is an access token and the instance it works against, for Metadata API calls.
type Session struct {
	InstanceURL            string
	AccessToken            string
	APIVersion             string // e.g. 62.0
	AllowNonSalesforceHost bool
}

// ReadMetadata returns the XML of one component (the inside of its <records> element) read
// with the SOAP API's readMetadata, or an error if it does not exist.
func (c *Client) ReadMetadata(ctx context.Context, s Session, typ, fullName string) ([]byte, error) {
	base, err := c.checkInstanceURL(s.InstanceURL, s.AllowNonSalesforceHost)
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:met="http://soap.sforce.com/2006/04/metadata"><soapenv:Header><met:SessionHeader><met:sessionId>`)
	_ = xml.EscapeText(&body, []byte(s.AccessToken))
	body.WriteString(`</met:sessionId></met:SessionHeader></soapenv:Header><soapenv:Body><met:readMetadata><met:type>`)
	_ = xml.EscapeText(&body, []byte(typ))
	body.WriteString(`</met:type><met:fullNames>`)
	_ = xml.EscapeText(&body, []byte(fullName))
	body.WriteString(`</met:fullNames></met:readMetadata></soapenv:Body></soapenv:Envelope>`)
	payload := body.Bytes()
	var record []byte
	err = c.send(ctx, "readMetadata", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/services/Soap/m/"+s.APIVersion, bytes.NewReader(payload))
		if err == nil {
			req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
			req.Header.Set("SOAPAction", `""`)
			req.Header.Set("Accept", "text/xml")
		}
		return req, err
	}, func(_ int, data []byte) error {
		inner, found, err := extractRecord(data)
		if err != nil {
			return retryable(fmt.Errorf("malformed readMetadata answer: %w", err))
		}
		if !found {
			return &APIError{Status: 200, Code: "NOT_FOUND", Message: fmt.Sprintf("no %s named %q in the org: check app_name (and app_type)", typ, fullName)}
		}
		record = inner
		return nil
	})
	return record, err
}

// extractRecord returns the raw XML inside the first non-nil <records> element.
func extractRecord(data []byte) ([]byte, bool, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth, start := 0, int64(-1)
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil, false, nil // no records element: the component does not exist
		}
		if err != nil {
			return nil, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if start < 0 && t.Name.Local == "records" && !isNil(t) {
				start, depth = dec.InputOffset(), 0
				continue
			}
			depth++
		case xml.EndElement:
			if start >= 0 && depth == 0 && t.Name.Local == "records" {
				return bytes.TrimSpace(data[start:before]), true, nil
			}
			depth--
		}
	}
}

func isNil(t xml.StartElement) bool {
	for _, a := range t.Attr {
		if a.Name.Local == "nil" && a.Value == "true" {
			return true
		}
	}
	return false
}

// DeployResult is the part of Salesforce's DeployResult the plugin acts on.
type DeployResult struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Done            bool   `json:"done"`
	Success         bool   `json:"success"`
	ErrorMessage    string `json:"errorMessage"`
	ErrorStatusCode string `json:"errorStatusCode"`
	Details         struct {
		ComponentFailures []DeployMessage `json:"componentFailures"`
	} `json:"details"`
}

// DeployMessage is one component's failure.
type DeployMessage struct {
	ComponentType string `json:"componentType"`
	FullName      string `json:"fullName"`
	FileName      string `json:"fileName"`
	Problem       string `json:"problem"`
	ProblemType   string `json:"problemType"`
}

// Failure reports Salesforce's reasons verbatim: the deploy error, then every component failure.
func (r *DeployResult) Failure() string {
	var parts []string
	if r.ErrorMessage != "" {
		parts = append(parts, strings.TrimSpace(r.ErrorStatusCode+" "+r.ErrorMessage))
	}
	for _, f := range r.Details.ComponentFailures {
		parts = append(parts, fmt.Sprintf("%s %s (%s): %s", f.ComponentType, f.FullName, f.FileName, f.Problem))
	}
	if len(parts) == 0 {
		return "deploy " + r.Status + " with no reason given"
	}
	return strings.Join(parts, "; ")
}

// Deploy starts a Metadata API deploy of zip through REST (metadata/deployRequest) and
// returns its id.
func (c *Client) Deploy(ctx context.Context, s Session, zip []byte) (string, error) {
	base, err := c.checkInstanceURL(s.InstanceURL, s.AllowNonSalesforceHost)
	if err != nil {
		return "", err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	opts, _ := json.Marshal(map[string]any{"deployOptions": map[string]any{
		"singlePackage": false, "rollbackOnError": true, "testLevel": "NoTestRun", "checkOnly": false, "ignoreWarnings": false,
	}})
	jsonPart, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="json"`}, "Content-Type": {"application/json"}})
	_, _ = jsonPart.Write(opts)
	filePart, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Disposition": {`form-data; name="file"; filename="deploy.zip"`}, "Content-Type": {"application/zip"}})
	_, _ = filePart.Write(zip)
	_ = mw.Close()
	payload, contentType := body.Bytes(), mw.FormDataContentType()
	var id string
	err = c.send(ctx, "metadata deploy", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/services/data/v"+s.APIVersion+"/metadata/deployRequest", bytes.NewReader(payload))
		if err == nil {
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Authorization", "Bearer "+s.AccessToken)
		}
		return req, err
	}, func(_ int, data []byte) error {
		var r struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(data, &r) != nil || r.ID == "" {
			return retryable(errors.New("malformed deployRequest answer (no id)"))
		}
		id = r.ID
		return nil
	})
	return id, err
}

// DeployStatus polls a deploy.
func (c *Client) DeployStatus(ctx context.Context, s Session, id string) (*DeployResult, error) {
	base, err := c.checkInstanceURL(s.InstanceURL, s.AllowNonSalesforceHost)
	if err != nil {
		return nil, err
	}
	var res DeployResult
	err = c.send(ctx, "deploy status", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			base+"/services/data/v"+s.APIVersion+"/metadata/deployRequest/"+url.PathEscape(id)+"?includeDetails=true", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+s.AccessToken)
		}
		return req, err
	}, func(_ int, data []byte) error {
		var r struct {
			DeployResult DeployResult `json:"deployResult"`
		}
		if json.Unmarshal(data, &r) != nil || r.DeployResult.Status == "" {
			return retryable(errors.New("malformed deploy status answer"))
		}
		res = r.DeployResult
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &res, nil
}
