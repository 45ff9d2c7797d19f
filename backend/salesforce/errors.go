package salesforce

import (
	"errors"
	"fmt"
	"strings"
)

// OAuthError is a refusal from Salesforce's OAuth endpoints: an HTTP 4xx with an OAuth error
// body. It is the operator's to fix, so the plugin answers it with HTTP 400.
type OAuthError struct {
	Status      int    // HTTP status Salesforce answered with
	Code        string // the OAuth "error", e.g. invalid_grant
	Description string // the OAuth "error_description"
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("Salesforce refused the request: %s: %s", e.Code, e.Description)
	if h := e.Hint(); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

// hints maps Salesforce's refusals (code, lower-cased description or "" for any) to what the
// operator should check. Descriptions are compared case-insensitively: their casing varies.
var hints = []struct{ code, desc, hint string }{
	{"invalid_grant", "user hasn't approved this consumer",
		"the user is not pre-authorised for this app: assign the user's profile or permission set to the Connected App (Admin approved users are pre-authorized), and check the username exists in this org (sandbox usernames carry a suffix)"},
	{"invalid_app_access", "",
		"the app is admin-approved but this user's profile or permission set is not assigned to it: add it under the app's Manage > Profiles / Permission Sets"},
	{"invalid_grant", "audience is invalid",
		"the JWT aud does not match the org: set the connection's audience to https://login.salesforce.com for production, https://test.salesforce.com for a sandbox, or the My Domain URL"},
	{"invalid_grant", "expired authorization code",
		"Salesforce thinks the assertion has expired: check the Vault server's clock (NTP)"},
	{"invalid_grant", "invalid assertion",
		"Salesforce could not verify the signature with the certificate on the app: upload the certificate from connections/<name>/certificate under 'Use digital signatures'; a new certificate takes 2-10 minutes to take effect"},
	{"invalid_grant", "request not supported on this domain",
		"the client credentials flow is only served at the org's My Domain: set login_url to https://<name>.my.salesforce.com (or the sandbox or site variant), not login or test.salesforce.com"},
	{"invalid_grant", "no client credentials user enabled",
		"the app has no run-as user: enable the client credentials flow on the app and set its run-as user (an API Only user) under the app's OAuth policies"},
	{"invalid_client", "invalid client credentials",
		"the consumer secret does not match the consumer key: copy both from the app's consumer details and write consumer_secret again"},
	{"invalid_app_access", "user is not admin approved to access this app",
		"the app is admin-approved but its run-as user's profile or permission set is not assigned to it: add it under the app's policies"},
	{"invalid_scope", "",
		"the app grants no scope the client credentials flow can use: give the app the api scope (no valid scopes defined)"},
	{"invalid_client_id", "",
		"the consumer key is unknown to this org: check consumer_key and login_url; a new or changed app takes 2-10 minutes to take effect"},
	{"invalid_client", "",
		"the app is not usable in this org: for an External Client App, install or enable it in the org"},
	{"invalid_grant", "ip restricted or invalid login hours",
		"the user's login IP ranges or login hours, or the app's IP relaxation policy, block this login"},
	{"inactive_user", "", "the Salesforce user is inactive or frozen: reactivate it or use another username"},
	{"inactive_org", "", "the org is locked, closed or suspended"},
	{"rate_limit_exceeded", "",
		"the user hit Salesforce's limit of 3,600 logins an hour: use token_mode=shared so readers share one token, and wait up to an hour"},
	{"unsupported_grant_type", "", "the token endpoint did not take the JWT bearer grant: check login_url points at a Salesforce login host"},
}

// Hint is what the operator should check for this refusal, or "" when we know nothing useful.
func (e *OAuthError) Hint() string {
	desc := strings.ToLower(e.Description)
	if strings.Contains(desc, "external client app is not installed") {
		return "install or enable the External Client App in this org"
	}
	for _, h := range hints {
		if h.code == e.Code && (h.desc == "" || h.desc == desc) {
			return h.hint
		}
	}
	return ""
}

// KeyRefused reports whether Salesforce refused the assertion in a way a different key could fix:
// the signature did not verify, or the app is (momentarily) unknown during propagation.
func KeyRefused(err error) bool {
	var oe *OAuthError
	if !errors.As(err, &oe) {
		return false
	}
	return (oe.Code == "invalid_grant" && strings.EqualFold(oe.Description, "invalid assertion")) ||
		oe.Code == "invalid_client_id"
}

// UpstreamError means Salesforce could not be reached or did not answer usefully (transport
// failure, timeout, 5xx, 429, malformed body) after retries. The plugin answers it with 502.
type UpstreamError struct {
	Op       string // "token request", "revoke", …
	Attempts int
	Cause    string // never contains request bodies or tokens
	// Permanent marks an answer a retry would not change (a redirect, an unexpected 4xx):
	// still not the operator's refusal, but not worth retrying either.
	Permanent bool
	err       error // the last failure, for errors.As
}

func (e *UpstreamError) Unwrap() error { return e.err }

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("Salesforce %s failed after %d attempt(s): %s", e.Op, e.Attempts, e.Cause)
}

// Transient reports whether a failure may pass by itself (Salesforce unreachable, 5xx, 429,
// malformed answers); refusals and configuration problems need the operator.
func Transient(err error) bool {
	var ue *UpstreamError
	return errors.As(err, &ue) && !ue.Permanent
}
