package emulator

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

const grantTypeClientCredentials = "client_credentials"

var (
	errLoginDomain  = &oauthError{"invalid_grant", "request not supported on this domain"}
	errNoCCUser     = &oauthError{"invalid_grant", "no client credentials user enabled"}
	errClientSecret = &oauthError{"invalid_client", "invalid client credentials"}
)

// clientAuth reads the client's consumer key and secret: from an HTTP Basic
// header (simple-salesforce sends base64(key:secret) with grant_type only),
// else from client_id and client_secret in the form.
func clientAuth(r *http.Request) (key, secret string) {
	if key, secret, ok := r.BasicAuth(); ok {
		return key, secret
	}
	return r.Form.Get("client_id"), r.Form.Get("client_secret")
}

// handleClientCredentials is the client credentials grant of POST
// /services/oauth2/token. handleToken has counted the request and checked the
// method and the body type.
func (e *Emulator) handleClientCredentials(w http.ResponseWriter, r *http.Request, fail func(code, desc string)) {
	e.count(func(c *Counters) { c.ClientCredentialsRequests++ })
	key, secret := clientAuth(r)
	// The run-as user is known before any check, so faults can target it and
	// TokenRequestsByUser counts attempts that later fail, as for a JWT's sub.
	runAs := e.peekRunAs(key)
	if runAs != "" {
		e.count(func(c *Counters) { c.TokenRequestsByUser[runAs]++ })
	}
	f, handled := e.injectFault(w, r, "token", runAs)
	if handled {
		return
	}
	g, oerr := e.checkClientCredentials(r, key, secret)
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}
	e.writeGrant(w, r, g, f)
}

// peekRunAs is the run-as username of the app a consumer key belongs to, "" if none.
func (e *Emulator) peekRunAs(key string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, _, ok := e.appByKeyLocked(key, e.now())
	if !ok {
		return ""
	}
	return st.def.RunAsUsername
}

// isLoginHost reports whether the request's Host (without its port) is one
// of Config.LoginHosts.
func (e *Emulator) isLoginHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	for _, l := range e.cfg.LoginHosts {
		if strings.EqualFold(host, l) {
			return true
		}
	}
	return false
}

// checkClientCredentials runs the client credentials checks: the host, the
// client (key, then secret), the app's flow set-up, then the run-as user as
// checkAssertion checks a JWT's subject. Both the active pair and a rotated
// pair that is neither deleted nor expired authenticate the client.
func (e *Emulator) checkClientCredentials(r *http.Request, key, secret string) (*grant, *oauthError) {
	if e.isLoginHost(r.Host) {
		return nil, errLoginDomain
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	st, pair, ok := e.appByKeyLocked(key, now)
	if !ok {
		return nil, errClientID
	}
	app := cloneApp(st.def)
	orgPtr, ok := e.orgLocked(app.OrgID)
	if !ok {
		return nil, errClientID
	}
	org := *orgPtr
	if app.NotInstalled {
		return nil, errNotInstalled
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(pair.secret)) != 1 {
		return nil, errClientSecret
	}
	if !app.ClientCredentialsEnabled || app.RunAsUsername == "" {
		return nil, errNoCCUser
	}
	up, ok := e.userLocked(app.RunAsUsername)
	// Setup accepts only an API Only user of the org as the run-as user; one
	// that is not (any more) is no client credentials user.
	if !ok || !sameID(up.OrgID, org.ID) || !up.APIOnly {
		return nil, errNoCCUser
	}
	user := *up
	if err := loginAllowed(user, org, app); err != nil {
		return nil, err
	}
	if !e.allowLoginLocked(user.ID, now) {
		return nil, errRateLimit
	}
	return &grant{app: app, user: user, org: org, key: app.ConsumerKey, secret: []byte(pair.secret), signed: true}, nil
}
