package emulator

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault kinds.
const (
	FaultLatency          = "latency"            // wait Latency, then serve normally
	FaultStatus           = "status"             // answer Status with a Salesforce-like body
	FaultHang             = "hang"               // hold the request Latency long (or until the client leaves), never answer
	FaultReset            = "reset"              // hijack and reset the TCP connection
	FaultMalformed        = "malformed"          // 200 with a truncated body
	FaultWrongInstanceURL = "wrong_instance_url" // token: success, but instance_url is plain http
	FaultDeployFail       = "deploy_fail"        // deploy: ends Failed with errorMessage
	FaultComponentFailure = "component_failure"  // deploy: ends Failed with a componentFailures entry
	FaultStuck            = "stuck"              // deploy: stays InProgress forever
)

// Fault is an injected failure. JSON (admin API) is in json.go.
type Fault struct {
	Endpoint string        // "token","revoke","userinfo","identity","limits","read_metadata","deploy","deploy_status","oauth_usage","oauth_credentials","staged_credentials","tenant_secret" (TenantSecret and Tooling Certificate calls) or "*" ("" = "*")
	Kind     string        // one of the Fault* constants
	Status   int           // for "status"; default 503
	Latency  time.Duration // "latency" delay; "hang" hold time (0 = until the client leaves); "status" 429 Retry-After
	Count    int           // requests affected; 0 = every matching request until ClearFaults
	Username string        // optional: only token requests whose sub (JWT) or run-as user (client credentials) is this user
	Method   string        // optional: only requests with this HTTP method (e.g. PATCH: the rotate of staged credentials, not the reads of the slot)
}

type faultState struct {
	f         Fault
	remaining int // meaningful only when f.Count > 0
}

// AddFault queues a fault; the first matching fault in insertion order wins.
func (e *Emulator) AddFault(f Fault) {
	if f.Endpoint == "" {
		f.Endpoint = "*"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &faultState{f: f, remaining: f.Count})
	e.logf("emulator: fault added: %+v", f)
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// faultApplies decides whether f hits a request. Kinds that only mean
// something at one endpoint are kept for it, so a "*" wrong_instance_url
// fault is not used up by a userinfo call.
func faultApplies(f Fault, endpoint, username, method string) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, method) {
		return false
	}
	switch f.Kind {
	case FaultWrongInstanceURL:
		if endpoint != "token" {
			return false
		}
	case FaultDeployFail, FaultComponentFailure, FaultStuck:
		// Decided when the deploy is submitted; "deploy_status" is accepted
		// as a target because that is where the effect shows.
		if endpoint != "deploy" {
			return false
		}
		if f.Endpoint != "*" && f.Endpoint != "deploy" && f.Endpoint != "deploy_status" {
			return false
		}
		return f.Username == ""
	}
	if f.Endpoint != "*" && f.Endpoint != endpoint {
		return false
	}
	if f.Username != "" {
		return endpoint == "token" && strings.EqualFold(f.Username, username)
	}
	return true
}

func (e *Emulator) takeFault(endpoint, username, method string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, fs := range e.faults {
		if !faultApplies(fs.f, endpoint, username, method) {
			continue
		}
		if fs.f.Count > 0 {
			fs.remaining--
			if fs.remaining <= 0 {
				e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
			}
		}
		e.counters.FaultsInjected++
		f := fs.f
		return &f
	}
	return nil
}

// injectFault applies the first matching fault. handled means the response
// is done (or the connection gone); otherwise the handler carries on and
// acts on the returned fault if its kind concerns it.
func (e *Emulator) injectFault(w http.ResponseWriter, r *http.Request, endpoint, username string) (*Fault, bool) {
	f := e.takeFault(endpoint, username, r.Method)
	if f == nil {
		return nil, false
	}
	e.logf("emulator: injecting %s fault on %s", f.Kind, endpoint)
	switch f.Kind {
	case FaultLatency:
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
			return f, false
		case <-r.Context().Done():
			return f, true
		case <-e.done:
			return f, true
		}
	case FaultStatus:
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		if status == http.StatusTooManyRequests {
			secs := int(math.Ceil(f.Latency.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
		ct, body := faultBody(endpointStyle(endpoint, r), status)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return f, true
	case FaultHang:
		var timeout <-chan time.Time
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-timeout:
		case <-r.Context().Done():
		case <-e.done:
		}
		dropConnection(w, false)
		return f, true
	case FaultReset:
		dropConnection(w, true)
		return f, true
	case FaultMalformed:
		ct, body := malformedBody(endpointStyle(endpoint, r))
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
		return f, true
	}
	return f, false
}

// dropConnection closes the client's connection without an HTTP answer;
// with rst it sets SO_LINGER 0 so the peer sees a TCP reset.
func dropConnection(w http.ResponseWriter, rst bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2 or a recorder): abort the handler, which
		// net/http turns into a dropped connection or stream.
		panic(http.ErrAbortHandler)
	}
	if rst {
		raw := conn
		if tc, ok := conn.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = raw.Close()
		return
	}
	_ = conn.Close()
}

// endpointStyle is the error format of an endpoint: deploys answer in SOAP or REST depending
// on which API was called.
func endpointStyle(endpoint string, r *http.Request) string {
	if strings.Contains(r.URL.Path, "/services/Soap/") {
		return "soap"
	}
	switch endpoint {
	case "token", "revoke", "userinfo", "identity":
		return "oauth"
	case "read_metadata":
		return "soap"
	}
	return "rest"
}

// faultBody gives the body Salesforce's edge or application sends for
// status: an HTML page for gateway errors, otherwise the endpoint's own
// error format.
func faultBody(style string, status int) (string, string) {
	if status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		text := http.StatusText(status)
		return "text/html;charset=UTF-8", fmt.Sprintf("<!DOCTYPE html><html><head><title>%d %s</title></head><body><h1>%s</h1>"+
			"<p>The server is temporarily unable to service your request. Please try again later.</p></body></html>", status, text, text)
	}
	switch style {
	case "oauth":
		code, desc := "invalid_request", "injected fault"
		switch {
		case status == http.StatusTooManyRequests:
			code, desc = "rate_limit_exceeded", "too many requests"
		case status >= 500:
			code, desc = "unknown_error", "retry your request"
		}
		return contentTypeJSON, fmt.Sprintf(`{"error":%q,"error_description":%q}`, code, desc)
	case "soap":
		return "text/xml;charset=UTF-8", soapFaultXML("sf:UNKNOWN_EXCEPTION", "UNKNOWN_EXCEPTION: An unexpected error occurred (injected fault)")
	}
	code, msg := "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)"
	if status == http.StatusTooManyRequests {
		code, msg = "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
	}
	return contentTypeJSON, fmt.Sprintf(`[{"message":%q,"errorCode":%q}]`, msg, code)
}

func malformedBody(style string) (string, string) {
	switch style {
	case "soap":
		return "text/xml;charset=UTF-8", `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><readMetadataResponse><result><records`
	case "rest":
		return contentTypeJSON, `{"id":"0Af5g00000`
	}
	return contentTypeJSON, `{"access_token":"00D5g000004`
}
