package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Connect REST API resources that manage an External Client App's OAuth
// consumer key and secret (protocol §9): list the org's ECAs, read a
// consumer's credentials, and stage, rotate (promote) and delete a new pair.

// Available versions of the resources, from Salesforce's Connect REST reference.
const (
	minVersionUsage       = 59.0 // apps/oauth/usage
	minVersionCredentials = 60.0 // apps/oauth/credentials/{app}[/{consumer}]
	minVersionStaged      = 65.0 // …/{consumer}/staged[/{staged}], and stagedCredentialsUrl
)

// States of a staged credentials record.
const (
	stagedStateActive  = "Active"  // a new pair, staged and not yet promoted
	stagedStateRotated = "Rotated" // the previous pair after a rotation: still valid
	stagedStateExpired = "Expired" // past its lifetime: no longer valid
)

const (
	msgECAPermissions = "Insufficient privileges: managing OAuth credentials through the REST API requires the External Client App Developer and View Client Secret permissions."
	msgECASetting     = "Access to External Client App consumer secrets via REST API is not currently enabled for this org. Turn on the setting in External Client App Settings."
	msgECAPackaged    = "OAuth credentials can be managed through the REST API only for local external client apps, not for packaged ones."
	msgStagedExists   = "This OAuth consumer already has staged credentials. Delete them before you stage new credentials."
	msgStagedRotated  = "These credentials were already rotated."
	msgStagedExpired  = "These staged credentials have expired."
)

// stagedCred is a consumer's staged slot: a new pair waiting to be promoted
// or, after a rotation, the previous pair, valid until deleted or expired.
type stagedCred struct {
	id        string
	pair      credPair
	rotated   bool
	createdBy string // user ID
	created   time.Time
	expires   time.Time
}

func (s *stagedCred) stateAt(now time.Time) string {
	switch {
	case !now.Before(s.expires):
		return stagedStateExpired
	case s.rotated:
		return stagedStateRotated
	}
	return stagedStateActive
}

// connectDateLayout is the Connect REST API's date format.
const connectDateLayout = "2006-01-02T15:04:05.000Z"

func apiVersionNumber(ver string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimPrefix(ver, "v"), 64)
	return f
}

type restRefusal struct {
	status    int
	code, msg string
}

func (f *restRefusal) write(w http.ResponseWriter) {
	writeRESTError(w, f.status, f.code, f.msg)
}

var (
	refusedNotFound = &restRefusal{http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist"}
	refusedPackaged = &restRefusal{http.StatusForbidden, "INSUFFICIENT_ACCESS", msgECAPackaged}
)

// ecaRequest is what every usage and credentials resource shares: count,
// inject faults, authenticate, check the API version and the method, then
// the caller's permissions and the org setting. ok is false when the answer
// has been written.
func (e *Emulator) ecaRequest(w http.ResponseWriter, r *http.Request, endpoint string, count func(*Counters),
	minVersion float64, methods ...string) (authSession, bool) {
	e.count(count)
	if _, handled := e.injectFault(w, r, endpoint, ""); handled {
		return authSession{}, false
	}
	s, ok := e.apiCall(w, r)
	if !ok {
		return authSession{}, false
	}
	// Before its version a resource does not exist.
	if apiVersionNumber(r.PathValue("ver")) < minVersion {
		writeNotFound(w)
		return authSession{}, false
	}
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeRESTError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
			"HTTP Method '"+r.Method+"' not allowed. Allowed are "+strings.Join(methods, ","))
		return authSession{}, false
	}
	if !s.user.HasPermission(PermExternalClientAppDeveloper) || !s.user.HasPermission(PermViewClientSecret) {
		writeRESTError(w, http.StatusForbidden, "INSUFFICIENT_ACCESS", msgECAPermissions)
		return authSession{}, false
	}
	if !s.org.AllowECAConsumerSecretREST {
		writeRESTError(w, http.StatusForbidden, "FUNCTIONALITY_NOT_ENABLED", msgECASetting)
		return authSession{}, false
	}
	return s, true
}

// consumerLocked finds the ECA appID of the org and, unless consumerID is
// empty, checks that consumerID is its consumer.
// consumerApp is a copy of the app a credentials resource names, or false once the refusal has
// been written.
func (e *Emulator) consumerApp(w http.ResponseWriter, orgID, appID, consumerID string) (App, bool) {
	e.mu.Lock()
	st, refused := e.consumerLocked(orgID, appID, consumerID)
	var a App
	if refused == nil {
		a = cloneApp(st.def)
	}
	e.mu.Unlock()
	if refused != nil {
		refused.write(w)
		return App{}, false
	}
	return a, true
}

func (e *Emulator) consumerLocked(orgID, appID, consumerID string) (*appState, *restRefusal) {
	st, ok := e.appByIDLocked(appID)
	if !ok || st.def.Type != appTypeECA || !sameID(st.def.OrgID, orgID) {
		return nil, refusedNotFound
	}
	if st.def.Packaged {
		return nil, refusedPackaged
	}
	if consumerID != "" && !sameID(st.def.ConsumerID, consumerID) {
		return nil, refusedNotFound
	}
	return st, nil
}

// credentialsURL is the consumer's resource, under the version called.
func credentialsURL(ver string, a App) string {
	return "/services/data/" + ver + "/apps/oauth/credentials/" + a.ID + "/" + a.ConsumerID
}

// handleOAuthUsage is GET /services/data/vNN.N/apps/oauth/usage: the org's
// External Client Apps, paged with page (from 0) and pageSize (default 100).
func (e *Emulator) handleOAuthUsage(w http.ResponseWriter, r *http.Request) {
	s, ok := e.ecaRequest(w, r, "oauth_usage", func(c *Counters) { c.OAuthUsage++ }, minVersionUsage, http.MethodGet)
	if !ok {
		return
	}
	page, okPage := queryInt(r, "page", 0)
	size, okSize := queryInt(r, "pageSize", 100)
	if !okPage || !okSize || size < 1 {
		name, v := "page", r.URL.Query().Get("page")
		if okPage {
			name, v = "pageSize", r.URL.Query().Get("pageSize")
		}
		writeRESTError(w, http.StatusBadRequest, "ILLEGAL_QUERY_PARAMETER_VALUE", "Invalid value for parameter "+name+": "+v)
		return
	}
	e.mu.Lock()
	var apps []map[string]string
	for _, k := range e.appOrder {
		a := e.apps[k].def
		if a.Type == appTypeECA && sameID(a.OrgID, s.org.ID) {
			apps = append(apps, map[string]string{"developerName": a.Name, "identifier": a.ID, "label": a.Label})
		}
	}
	e.mu.Unlock()
	start := len(apps) // a page after the last one is empty
	if page == 0 || (page <= len(apps) && size <= len(apps)/page) {
		start = page * size // no overflow: at most len(apps)
	}
	end := start + min(size, len(apps)-start)
	base := "/services/data/" + r.PathValue("ver") + "/apps/oauth/usage"
	pageURL := func(p int) string { return base + "?page=" + strconv.Itoa(p) + "&pageSize=" + strconv.Itoa(size) }
	writeJSON(w, http.StatusOK, map[string]any{
		"apps":           append([]map[string]string{}, apps[start:end]...),
		"currentPageUrl": pageURL(page),
		// Salesforce returns a next page URL with every page, the last one too.
		"nextPageUrl": pageURL(page + 1),
	})
}

// queryInt reads a non-negative integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}

// consumerView is an App Oauth Credentials body. The secret is shown only
// when asked for; stagedCredentialsUrl only from v65.0.
func consumerView(ver string, a App, withKey, withSecret bool) map[string]string {
	u := credentialsURL(ver, a)
	m := map[string]string{"id": a.ConsumerID, "name": a.Name, "url": u}
	if withKey {
		m["key"] = a.ConsumerKey
	}
	if withSecret {
		m["secret"] = a.ConsumerSecret
	}
	if apiVersionNumber(ver) >= minVersionStaged {
		m["stagedCredentialsUrl"] = u + "/staged"
	}
	return m
}

// handleOAuthCredentials is GET …/apps/oauth/credentials/{app}: the app's
// consumers (an ECA has one), with their keys.
func (e *Emulator) handleOAuthCredentials(w http.ResponseWriter, r *http.Request) {
	s, ok := e.ecaRequest(w, r, "oauth_credentials", func(c *Counters) { c.OAuthCredentials++ }, minVersionCredentials, http.MethodGet)
	if !ok {
		return
	}
	a, ok := e.consumerApp(w, s.org.ID, r.PathValue("app"), "")
	if !ok {
		return
	}
	ver := r.PathValue("ver")
	writeJSON(w, http.StatusOK, map[string]any{
		"consumers":      []map[string]string{consumerView(ver, a, true, false)},
		"currentPageUrl": "/services/data/" + ver + "/apps/oauth/credentials/" + a.ID,
	})
}

// handleOAuthConsumer is GET …/apps/oauth/credentials/{app}/{consumer}?part=
// key|secret|keyandsecret; without part only the key is returned.
func (e *Emulator) handleOAuthConsumer(w http.ResponseWriter, r *http.Request) {
	s, ok := e.ecaRequest(w, r, "oauth_credentials", func(c *Counters) { c.OAuthCredentials++ }, minVersionCredentials, http.MethodGet)
	if !ok {
		return
	}
	var withKey, withSecret bool
	switch part := r.URL.Query().Get("part"); strings.ToLower(part) {
	case "", "key":
		withKey = true
	case "secret":
		withSecret = true
	case "keyandsecret":
		withKey, withSecret = true, true
	default:
		writeRESTError(w, http.StatusBadRequest, "ILLEGAL_QUERY_PARAMETER_VALUE",
			"Invalid value for parameter part: "+part+". Valid values are key, secret and keyandsecret.")
		return
	}
	a, ok := e.consumerApp(w, s.org.ID, r.PathValue("app"), r.PathValue("consumer"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, consumerView(r.PathValue("ver"), a, withKey, withSecret))
}

// stagedView is an App Oauth Staged Credentials body.
type stagedView struct {
	CreatedBy            string `json:"createdBy"`
	CreatedDate          string `json:"createdDate"`
	ExpirationDate       string `json:"expirationDate"`
	ID                   string `json:"id"`
	Key                  string `json:"key"`
	Secret               string `json:"secret"`
	StagedCredentialsURL string `json:"stagedCredentialsUrl"`
	State                string `json:"state"`
	URL                  string `json:"url"` // the record's own resource, which PATCH and DELETE take
}

func stagedViewOf(ver string, a App, sc *stagedCred, now time.Time) stagedView {
	coll := credentialsURL(ver, a) + "/staged"
	return stagedView{
		CreatedBy:            sc.createdBy,
		CreatedDate:          sc.created.UTC().Format(connectDateLayout),
		ExpirationDate:       sc.expires.UTC().Format(connectDateLayout),
		ID:                   sc.id,
		Key:                  sc.pair.key,
		Secret:               sc.pair.secret,
		StagedCredentialsURL: coll,
		State:                sc.stateAt(now),
		URL:                  coll + "/" + sc.id,
	}
}

// handleStagedCredentials is GET|POST …/{app}/{consumer}/staged: read the
// consumer's staged slot, or stage a new pair in it. POST takes no body and
// answers 201 with the new key and secret; it is refused while the slot holds
// a pair that is still valid (staged or rotated), so a consumer has at most
// one staged pair.
func (e *Emulator) handleStagedCredentials(w http.ResponseWriter, r *http.Request) {
	s, ok := e.ecaRequest(w, r, "staged_credentials", func(c *Counters) { c.StagedCredentials++ }, minVersionStaged,
		http.MethodGet, http.MethodPost)
	if !ok {
		return
	}
	ver := r.PathValue("ver")
	e.mu.Lock()
	now := e.now()
	st, refused := e.consumerLocked(s.org.ID, r.PathValue("app"), r.PathValue("consumer"))
	if refused != nil {
		e.mu.Unlock()
		refused.write(w)
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		if st.staged != nil && st.staged.stateAt(now) != stagedStateExpired {
			e.mu.Unlock()
			writeRESTError(w, http.StatusBadRequest, "INVALID_API_INPUT", msgStagedExists)
			return
		}
		st.staged = &stagedCred{
			id:        newID("0Sx"),
			pair:      credPair{newConsumerKey(), newConsumerSecret()},
			createdBy: s.user.ID,
			created:   now,
			expires:   now.Add(e.cfg.StagedCredentialLifetime),
		}
		status = http.StatusCreated
		e.counters.CredentialsStaged++
		e.logf("emulator: app %s: credentials staged", st.def.ConsumerKey)
	}
	a := cloneApp(st.def)
	items := []stagedView{}
	if st.staged != nil {
		items = append(items, stagedViewOf(ver, a, st.staged, now))
	}
	e.mu.Unlock()
	writeJSON(w, status, map[string]any{"stagedCredentials": items, "url": credentialsURL(ver, a) + "/staged"})
}

// handleStagedCredential is GET|PATCH|DELETE …/staged/{staged}. PATCH
// {"command":"rotate"} promotes a staged pair: it becomes the active pair and
// the previous one takes its place in the slot, Rotated and still valid for
// StagedCredentialLifetime. DELETE empties the slot: a staged pair is
// discarded, a rotated one stops authenticating at once.
func (e *Emulator) handleStagedCredential(w http.ResponseWriter, r *http.Request) {
	s, ok := e.ecaRequest(w, r, "staged_credentials", func(c *Counters) { c.StagedCredentials++ }, minVersionStaged,
		http.MethodGet, http.MethodPatch, http.MethodDelete)
	if !ok {
		return
	}
	if r.Method == http.MethodPatch {
		var body struct {
			Command string `json:"command"`
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = json.Unmarshal(b, &body)
		}
		if err != nil {
			writeRESTError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not valid JSON: "+err.Error())
			return
		}
		if !strings.EqualFold(body.Command, "rotate") {
			writeRESTError(w, http.StatusBadRequest, "INVALID_API_INPUT",
				"Invalid command: '"+body.Command+"'. The only supported command is rotate.")
			return
		}
	}
	ver := r.PathValue("ver")
	e.mu.Lock()
	now := e.now()
	st, refused := e.consumerLocked(s.org.ID, r.PathValue("app"), r.PathValue("consumer"))
	if refused == nil && (st.staged == nil || !sameID(st.staged.id, r.PathValue("staged"))) {
		refused = refusedNotFound
	}
	if refused != nil {
		e.mu.Unlock()
		refused.write(w)
		return
	}
	sc := st.staged
	switch r.Method {
	case http.MethodDelete:
		st.staged = nil
		e.logf("emulator: app %s: staged credentials (%s) deleted", st.def.ConsumerKey, sc.stateAt(now))
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPatch: // {"command":"rotate"}, checked above
		switch sc.stateAt(now) {
		case stagedStateRotated:
			e.mu.Unlock()
			writeRESTError(w, http.StatusBadRequest, "INVALID_API_INPUT", msgStagedRotated)
			return
		case stagedStateExpired:
			e.mu.Unlock()
			writeRESTError(w, http.StatusBadRequest, "INVALID_API_INPUT", msgStagedExpired)
			return
		}
		prev := credPair{st.def.ConsumerKey, st.def.ConsumerSecret}
		e.rekeyLocked(st, sc.pair.key)
		st.def.ConsumerSecret = sc.pair.secret
		sc.pair, sc.rotated, sc.expires = prev, true, now.Add(e.cfg.StagedCredentialLifetime)
		e.counters.CredentialRotations++
		e.logf("emulator: app %s: credentials rotated; previous key %s valid until %s",
			st.def.ConsumerKey, prev.key, sc.expires.UTC().Format(time.RFC3339))
	}
	view := stagedViewOf(ver, cloneApp(st.def), sc, now)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, view)
}

// rekeyLocked makes newKey the app's active consumer key: apps are keyed by it.
func (e *Emulator) rekeyLocked(st *appState, newKey string) {
	old := st.def.ConsumerKey
	delete(e.apps, old)
	e.apps[newKey] = st
	if i := slices.Index(e.appOrder, old); i >= 0 {
		e.appOrder[i] = newKey
	}
	st.def.ConsumerKey = newKey
}
