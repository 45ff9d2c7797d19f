package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// tokenResponse keeps Salesforce's field order. There is never an
// expires_in or refresh_token in a JWT bearer response.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Signature   string `json:"signature,omitempty"`
	Scope       string `json:"scope"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at,omitempty"`
}

// handleToken is POST /services/oauth2/token for the JWT bearer grant and,
// through handleClientCredentials, the client credentials grant.
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	e.count(func(c *Counters) { c.TokenRequests++ })
	var who string // the user the request logs in as, once known: its failures are in LoginHistory
	fail := func(code, desc string) {
		e.count(func(c *Counters) { c.TokenErrors[code]++ })
		e.logf("emulator: token refused: %s: %s", code, desc)
		e.recordLogin(r, who, "", "Failed: "+desc)
		writeOAuthError(w, http.StatusBadRequest, code, desc)
	}
	if r.Method != http.MethodPost {
		fail("invalid_request", "must use HTTP POST")
		return
	}
	// A JSON (or any non-form) body is refused as an unknown grant type;
	// an empty body with the parameters in the query string is tolerated.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			fail("unsupported_grant_type", "grant type not supported")
			return
		}
	}
	if err := r.ParseForm(); err != nil {
		fail("unsupported_grant_type", "grant type not supported")
		return
	}
	if r.Form.Get("grant_type") == grantTypeClientCredentials {
		e.handleClientCredentials(w, r, func(code, desc string) {
			key, _ := clientAuth(r)
			who = e.peekRunAs(key)
			fail(code, desc)
		})
		return
	}
	assertion := r.Form.Get("assertion")
	sub := peekSubject(assertion)
	who = sub
	if sub != "" {
		e.count(func(c *Counters) { c.TokenRequestsByUser[sub]++ })
	}
	f, handled := e.injectFault(w, r, "token", sub)
	if handled {
		return
	}
	if r.Form.Get("grant_type") != grantTypeJWTBearer {
		fail("unsupported_grant_type", "grant type not supported")
		return
	}
	// client_id, if sent, is ignored: Salesforce takes the app from iss.
	g, oerr := e.checkAssertion(r, assertion)
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}
	e.count(func(c *Counters) { c.JWTTokensByIssuer[g.issuer]++ })
	e.writeGrant(w, r, g, f)
}

// writeGrant issues the token of a checked grant and answers it; f is the
// fault taken for the request, if any.
func (e *Emulator) writeGrant(w http.ResponseWriter, r *http.Request, g *grant, f *Fault) {
	resp := e.issue(r, g)
	// Counted here, not in issue: LoginAs issues sessions too, and they are not logins of
	// the flow under test.
	e.count(func(c *Counters) { c.TokensIssued++ })
	e.recordLogin(r, g.user.Username, g.app.Name, loginHistorySuccess)
	if f != nil && f.Kind == FaultWrongInstanceURL {
		// Plain http: the plugin must refuse it rather than send the token
		// in clear. Same host and port, so a client that follows it anyway
		// fails fast (a TLS port answering plaintext) with no DNS lookup.
		resp.InstanceURL = "http://" + strings.TrimPrefix(resp.InstanceURL, "https://")
	}
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	writeJSON(w, http.StatusOK, resp)
}

// issue mints a new opaque token (a new one on every login) and records
// its session.
func (e *Emulator) issue(r *http.Request, g *grant) tokenResponse {
	base := e.baseURL(r)
	token := id15(g.org.ID) + "!AQ" + randomString(base62+"._", 94)
	idURL := base + "/id/" + g.org.ID + "/" + g.user.ID

	e.mu.Lock()
	now := e.now()
	e.sessions[token] = &session{
		token: token, userID: g.user.ID, orgID: g.org.ID, appKey: g.key,
		issued: now, lastUsed: now, timeout: g.app.SessionTimeout,
	}
	secret := g.secret
	if st, ok := e.apps[g.key]; ok && secret == nil {
		secret = []byte(st.def.ConsumerSecret)
	}
	e.mu.Unlock()

	resp := tokenResponse{
		AccessToken: token,
		Scope:       scopeString(g.app.Scopes),
		InstanceURL: base,
		ID:          idURL,
		TokenType:   "Bearer",
	}
	if e.cfg.IncludeIssuedAtAndSignature || g.signed {
		// As in Salesforce's other flows: base64 HMAC-SHA256 of id+issued_at
		// keyed with the consumer secret.
		resp.IssuedAt = strconv.FormatInt(now.UnixMilli(), 10)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(resp.ID + resp.IssuedAt))
		resp.Signature = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	e.logf("emulator: token issued to %s via %s", g.user.Username, g.app.Name)
	return resp
}

// metadataScopeNames maps the metadata names of OAuth scopes to the names a
// token response uses; unknown ones fall back to snake_case.
var metadataScopeNames = map[string]string{
	"api":                "api",
	"basic":              "id",
	"chatter":            "chatter_api",
	"customapplications": "visualforce",
	"custompermissions":  "custom_permissions",
	"full":               "full",
	"offlineaccess":      "refresh_token",
	"openid":             "openid",
	"pardot":             "pardot_api",
	"refreshtoken":       "refresh_token",
	"wave":               "wave_api",
	"web":                "web",
}

func scopeString(scopes []string) string {
	var out []string
	seen := map[string]bool{}
	for _, s := range scopes {
		name, ok := metadataScopeNames[strings.ToLower(s)]
		if !ok {
			name = snakeCase(s)
		}
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return strings.Join(out, " ")
}

func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
