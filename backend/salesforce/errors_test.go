package salesforce

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestParseOAuthErrorJSONAndForm(t *testing.T) {
	resp := &http.Response{StatusCode: 400, Header: http.Header{}}
	for _, body := range []string{
		`{"error":"invalid_grant","error_description":"audience is invalid"}`,
		`error=invalid_grant&error_description=audience+is+invalid`,
	} {
		oe := parseOAuthError(resp, []byte(body))
		if oe == nil || oe.Code != "invalid_grant" || oe.Description != "audience is invalid" {
			t.Errorf("parseOAuthError(%q) = %+v", body, oe)
		}
	}
	if oe := parseOAuthError(resp, []byte("<html>oops</html>")); oe != nil {
		t.Errorf("HTML body parsed as an OAuth error: %+v", oe)
	}
}

func TestHintsAndKeyRefused(t *testing.T) {
	cases := []struct {
		code, desc string
		hint       string
		keyRefused bool
	}{
		{"invalid_grant", "invalid assertion", "Use digital signatures", true},
		{"invalid_grant", "Invalid Assertion", "Use digital signatures", true},
		{"invalid_client_id", "client identifier invalid", "consumer key", true},
		{"invalid_grant", "user hasn't approved this consumer", "pre-authorised", false},
		{"invalid_app_access", "user is not admin approved to access this app", "Permission Sets", false},
		{"invalid_grant", "audience is invalid", "https://test.salesforce.com", false},
		{"invalid_grant", "expired authorization code", "clock", false},
		{"invalid_grant", "IP restricted or invalid login hours", "login IP", false},
		{"rate_limit_exceeded", "number of logins exceeded", "token_mode=shared", false},
		{"invalid_client_id", "External client app is not installed in this org", "install", true},
	}
	for _, tc := range cases {
		oe := &OAuthError{Status: 400, Code: tc.code, Description: tc.desc}
		if !strings.Contains(oe.Error(), tc.hint) {
			t.Errorf("%s/%s: message %q lacks hint %q", tc.code, tc.desc, oe.Error(), tc.hint)
		}
		wrapped := fmt.Errorf("minting: %w", oe)
		if KeyRefused(wrapped) != tc.keyRefused {
			t.Errorf("%s/%s: KeyRefused = %v", tc.code, tc.desc, !tc.keyRefused)
		}
	}
	if KeyRefused(errors.New("plain")) {
		t.Error("a plain error is not a key refusal")
	}
}

// FuzzParseErrors: Salesforce's error answers (OAuth JSON or form, REST error lists, SOAP
// faults) never panic the parsers, and what they return is well-formed.
func FuzzParseErrors(f *testing.F) {
	f.Add(`{"error":"invalid_grant","error_description":"audience is invalid"}`)
	f.Add(`error=invalid_token&error_description=x`)
	f.Add(`[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`)
	f.Add(`<soapenv:Envelope><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>x</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>`)
	f.Fuzz(func(t *testing.T, body string) {
		resp := &http.Response{StatusCode: 400, Header: http.Header{}}
		if oe := parseOAuthError(resp, []byte(body)); oe != nil && oe.Code == "" {
			t.Fatal("an OAuth error without a code")
		}
		if ae := parseAPIError(resp, []byte(body)); ae != nil && ae.Code == "" {
			t.Fatal("an API error without a code")
		}
		if isSOAPFault([]byte(body)) {
			var ae *APIError
			if err := parseSOAPFault([]byte(body)); !errors.As(err, &ae) || ae.Code == "" {
				t.Fatalf("a SOAP fault parsed to %v", err)
			}
		}
	})
}
