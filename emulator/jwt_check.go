package emulator

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oauthError is a token endpoint refusal; every one is HTTP 400.
type oauthError struct{ code, desc string }

var (
	errInvalidAssertion = &oauthError{"invalid_grant", "invalid assertion"}
	errClientID         = &oauthError{"invalid_client_id", "client identifier invalid"}
	errNotInstalled     = &oauthError{"invalid_client_id", "External client app is not installed in this org"}
	errAudience         = &oauthError{"invalid_grant", "audience is invalid"}
	errExpired          = &oauthError{"invalid_grant", "expired authorization code"}
	errNotApproved      = &oauthError{"invalid_grant", "user hasn't approved this consumer"}
	errInactiveUser     = &oauthError{"inactive_user", "user is inactive"}
	errInactiveOrg      = &oauthError{"inactive_org", "org is locked, closed, or suspended"}
	errIPRestricted     = &oauthError{"invalid_grant", "ip restricted or invalid login hours"}
	errNotAdminApproved = &oauthError{"invalid_app_access", "user is not admin approved to access this app"}
	errRateLimit        = &oauthError{"rate_limit_exceeded", "number of logins exceeded"}
)

// grant is a fully checked token request: who gets a token from which app.
type grant struct {
	app    App
	user   User
	org    Org
	key    string // the app's active consumer key
	issuer string // JWT bearer: the iss as sent (the active key, or a rotated one still valid)
	secret []byte // signature key; nil: the app's active consumer secret
	signed bool   // always add issued_at and signature (client credentials)
}

// parseAssertion decodes the JWT without trusting it. json.Number keeps exp
// exact, whether it was sent in seconds or (as sfdx-core does) milliseconds.
func parseAssertion(assertion string) (*jwt.Token, []string, jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	tok, parts, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(assertion, claims)
	return tok, parts, claims, err
}

// peekSubject reads sub (or prn) before any check, so faults can target a
// user and TokenRequestsByUser can count attempts that later fail.
func peekSubject(assertion string) string {
	if assertion == "" {
		return ""
	}
	_, _, claims, err := parseAssertion(assertion)
	if err != nil {
		return ""
	}
	return subject(claims)
}

func subject(c jwt.MapClaims) string {
	if s, ok := c["sub"].(string); ok && s != "" {
		return s
	}
	s, _ := c["prn"].(string)
	return s
}

// checkAssertion runs Salesforce's checks in the order the brief fixes, so
// an assertion with several faults gets the same error as from Salesforce.
func (e *Emulator) checkAssertion(r *http.Request, assertion string) (*grant, *oauthError) {
	if assertion == "" {
		return nil, errInvalidAssertion
	}
	tok, parts, claims, err := parseAssertion(assertion)
	if err != nil || tok.Method != jwt.SigningMethodRS256 {
		return nil, errInvalidAssertion
	}
	iss, _ := claims["iss"].(string)

	// Snapshot what the checks need, then verify the RSA signature outside
	// the lock so concurrent logins do not queue behind each other.
	e.mu.Lock()
	now := e.now()
	st, _, ok := e.appByKeyLocked(iss, now)
	if !ok {
		e.mu.Unlock()
		return nil, errClientID
	}
	app := cloneApp(st.def)
	orgPtr, orgOK := e.orgLocked(app.OrgID)
	certs := e.acceptedLocked(st, now)
	e.mu.Unlock()
	if !orgOK {
		// An app with no org cannot be installed anywhere.
		return nil, errClientID
	}
	org := *orgPtr
	if app.NotInstalled {
		return nil, errNotInstalled
	}
	if !verifyRS256(parts, tok.Signature, certs) {
		return nil, errInvalidAssertion
	}
	if !e.audienceOK(r, claims["aud"], org) {
		return nil, errAudience
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, errInvalidAssertion
	}
	nowSec := float64(now.UnixNano()) / 1e9
	if exp <= nowSec-e.cfg.ExpSkew.Seconds() {
		return nil, errExpired
	}
	if e.cfg.MaxAssertionLifetime > 0 && exp > nowSec+e.cfg.MaxAssertionLifetime.Seconds() {
		return nil, errInvalidAssertion
	}
	sub := subject(claims)

	e.mu.Lock()
	defer e.mu.Unlock()
	up, ok := e.userLocked(sub)
	if !ok || sub == "" || !sameID(up.OrgID, org.ID) {
		return nil, errNotApproved
	}
	user := *up
	if err := loginAllowed(user, org, app); err != nil {
		return nil, err
	}
	if !app.AdminApproved && !containsFold(app.SelfAuthorizedUsers, user.Username) {
		return nil, errNotApproved
	}
	if !e.allowLoginLocked(user.ID, now) {
		return nil, errRateLimit
	}
	return &grant{app: app, user: user, org: org, key: app.ConsumerKey, issuer: iss}, nil
}

func verifyRS256(parts []string, sig []byte, certs []string) bool {
	signing := parts[0] + "." + parts[1]
	for _, c := range certs {
		key, err := rsaKeyOf(c)
		if err != nil {
			continue
		}
		if jwt.SigningMethodRS256.Verify(signing, sig, key) == nil {
			return true
		}
	}
	return false
}

// allowLoginLocked enforces the per-user login rate over a rolling hour and
// records the login. Refused attempts are not recorded, so waiting works.
func (e *Emulator) allowLoginLocked(userID string, now time.Time) bool {
	if e.cfg.LoginRateLimit < 0 {
		return true
	}
	cutoff := now.Add(-time.Hour)
	kept := e.logins[userID][:0]
	for _, t := range e.logins[userID] {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	if len(kept) >= e.cfg.LoginRateLimit {
		e.logins[userID] = kept
		return false
	}
	e.logins[userID] = append(kept, now)
	return true
}

// audienceOK accepts the login host matching the org type (login for
// production, test for sandboxes), the org's My Domain, and the emulator's
// own origin, which stands in for the My Domain host the client posted to.
func (e *Emulator) audienceOK(r *http.Request, raw any, org Org) bool {
	var aud string
	switch v := raw.(type) {
	case string:
		aud = v
	case []any:
		if len(v) != 1 {
			return false
		}
		aud, _ = v[0].(string)
	}
	aud = normalizeOrigin(aud)
	if aud == "" {
		return false
	}
	allowed := []string{"https://login.salesforce.com"}
	if org.Sandbox {
		allowed = []string{"https://test.salesforce.com"}
	}
	if org.MyDomainURL != "" {
		allowed = append(allowed, normalizeOrigin(org.MyDomainURL))
	}
	if u := e.URL(); u != "" {
		allowed = append(allowed, normalizeOrigin(u))
	}
	if r.Host != "" {
		allowed = append(allowed, normalizeOrigin("https://"+r.Host))
	}
	for _, a := range allowed {
		if aud == a {
			return true
		}
	}
	return false
}

// normalizeOrigin lower-cases, drops trailing slashes and the default port,
// and adds https:// to a bare host (restforce sends "login.salesforce.com").
func normalizeOrigin(s string) string {
	s = strings.TrimRight(strings.ToLower(strings.TrimSpace(s)), "/")
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	return strings.TrimSuffix(s, ":443")
}

// numericDate reads exp as a JSON number or a numeric string, in seconds
// as Salesforce does (a millisecond value is simply a far-future date).
func numericDate(v any) (float64, bool) {
	var s string
	switch t := v.(type) {
	case json.Number:
		s = t.String()
	case string:
		s = strings.TrimSpace(t)
	case float64:
		return t, !math.IsNaN(t) && !math.IsInf(t, 0)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// loginAllowed is what every flow checks of the user it logs in: active, in an unlocked org,
// inside its IP ranges, and pre-authorised on an admin-approved app.
func loginAllowed(user User, org Org, app App) *oauthError {
	switch {
	case user.Inactive:
		return errInactiveUser
	case org.Locked:
		return errInactiveOrg
	case user.IPRestricted:
		return errIPRestricted
	case app.AdminApproved && !containsFold(app.PreAuthorizedUsers, user.Username):
		return errNotAdminApproved
	}
	return nil
}
