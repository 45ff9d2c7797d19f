package emulator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Org is a Salesforce org. The JSON names are the admin API's.
type Org struct {
	ID          string `json:"id"` // 18 chars; generated "00D…" if empty
	Name        string `json:"name"`
	Sandbox     bool   `json:"sandbox"`
	Locked      bool   `json:"locked"`
	MyDomainURL string `json:"my_domain_url"` // e.g. https://acme.my.salesforce.com; also accepted as JWT aud
	// AllowECAConsumerSecretREST is the External Client App setting "Allow access to External
	// Client App consumer secrets via REST API" (off by default, as Salesforce recommends).
	AllowECAConsumerSecretREST bool `json:"allow_eca_consumer_secret_rest,omitempty"`
}

// User is a Salesforce user. Usernames are unique across all orgs, as in
// Salesforce, and compared case-insensitively.
type User struct {
	ID                string `json:"id"`     // "005…" generated if empty
	OrgID             string `json:"org_id"` // empty: the first org added
	Username          string `json:"username"`
	Inactive          bool   `json:"inactive"`
	IPRestricted      bool   `json:"ip_restricted"`
	CanModifyMetadata bool   `json:"can_modify_metadata"`
	Email             string `json:"email"`
	DisplayName       string `json:"display_name"`
	APIOnly           bool   `json:"api_only,omitempty"` // the "API Only User" permission; required of a client credentials run-as user
	// Permissions are user permission API names, e.g. PermExternalClientAppDeveloper and
	// PermViewClientSecret (compared case-insensitively).
	Permissions []string `json:"permissions,omitempty"`
	// LacksViewSetup: the user has no View Setup and Configuration, so /limits refuses it.
	LacksViewSetup bool `json:"lacks_view_setup,omitempty"`
}

// User permissions the emulator checks.
const (
	PermExternalClientAppDeveloper = "ExternalClientAppDeveloper" // "External Client App Developer"
	PermViewClientSecret           = "ViewClientSecret"           // "View Client Secret"
)

// HasPermission reports whether the user holds the permission.
func (u User) HasPermission(perm string) bool { return containsFold(u.Permissions, perm) }

// App is a Connected App or External Client App. JSON is in json.go.
type App struct {
	Name                string            // API name, e.g. "Vault_JWT"
	Type                string            // "connected_app" (default) | "external_client_app"
	ID                  string            // record ID: "0H4…" (connected app) or "0xI…" (ECA); generated if empty
	OrgID               string            // empty: the first org added
	ConsumerKey         string            // active consumer key (the JWT iss, the client_id); generated if empty
	ConsumerSecret      string            // secret of the active pair; generated (64 hex characters) if empty
	ConsumerID          string            // the OAuth consumer's ID ("888…"); generated if empty
	CertificatePEM      string            // the single certificate on the app (may be empty)
	AdminApproved       bool              // true: only PreAuthorizedUsers may get tokens
	PreAuthorizedUsers  []string          // usernames whose profile/permission set is assigned
	SelfAuthorizedUsers []string          // AdminApproved=false: users who approved the app earlier
	NotInstalled        bool              // app not installed/enabled in the org (any Type)
	Label               string            // default Name
	ContactEmail        string            // default "admin@example.com"
	CallbackURL         string            // default https://login.salesforce.com/services/oauth2/callback
	Scopes              []string          // e.g. ["Api","RefreshToken"]
	SessionTimeout      time.Duration     // idle timeout of issued tokens; default 2h
	Extra               map[string]string // other metadata fields by dotted path; "\n" separates repeated values

	ClientCredentialsEnabled bool   // the client credentials flow is enabled on the app
	RunAsUsername            string // its run-as user (must exist in the app's org, be active and API Only)
	Packaged                 bool   // installed from a package (not local): no credentials REST API
}

// DemoSeed is what SeedDemo created.
type DemoSeed struct {
	Org      Org  `json:"org"`
	User     User `json:"user"`
	Deployer User `json:"deployer"`
	App      App  `json:"app"`
	RunAs    User `json:"run_as"` // the API Only run-as user of CCApp
	CCApp    App  `json:"cc_app"` // the External Client App with the client credentials flow
}

const (
	appTypeConnected = "connected_app"
	appTypeECA       = "external_client_app"
)

type appState struct {
	def       App
	prevPEM   string      // certificate fully in effect before the last change
	changedAt time.Time   // time of the last certificate change; zero: none
	staged    *stagedCred // the consumer's staged slot (staged credentials API); nil: empty
}

// credPair is a consumer key with its secret.
type credPair struct{ key, secret string }

// AddOrg creates or replaces an org (keyed by ID) and returns it as stored.
func (e *Emulator) AddOrg(o Org) Org {
	if o.ID == "" {
		o.ID = newID("00D")
	}
	o.ID = to18(o.ID)
	if o.Name == "" {
		o.Name = "Emulated Org"
	}
	o.MyDomainURL = strings.TrimRight(strings.ToLower(strings.TrimSpace(o.MyDomainURL)), "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.orgs[o.ID]; !ok {
		e.orgOrder = append(e.orgOrder, o.ID)
	}
	cp := o
	e.orgs[o.ID] = &cp
	e.logf("emulator: org %s %q sandbox=%v locked=%v", o.ID, o.Name, o.Sandbox, o.Locked)
	return o
}

// AddUser creates or replaces a user (keyed by username) and returns it.
func (e *Emulator) AddUser(u User) User {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u.Username == "" {
		u.Username = strings.ToLower(randomString(base62, 8)) + "@example.com"
	}
	if old, ok := e.users[strings.ToLower(u.Username)]; ok && u.ID == "" {
		u.ID = old.ID
	}
	if u.ID == "" {
		u.ID = newID("005")
	}
	u.ID = to18(u.ID)
	u.OrgID = e.defaultOrgLocked(u.OrgID)
	if u.Email == "" && strings.Contains(u.Username, "@") {
		u.Email = u.Username
	}
	if u.DisplayName == "" {
		u.DisplayName, _, _ = strings.Cut(u.Username, "@")
	}
	cp := u
	cp.Permissions = slices.Clone(u.Permissions)
	e.users[strings.ToLower(u.Username)] = &cp
	e.logf("emulator: user %s %s org=%s", u.ID, u.Username, u.OrgID)
	return u
}

// AddApp creates or replaces an app (keyed by its active consumer key) and
// returns it. Its certificate takes effect at once: AddApp is test setup,
// while SetAppCertificate and deploys model an admin change and propagate.
// Replacing an app keeps its ID, consumer ID and secret unless a is given
// others, and empties its staged credentials slot.
func (e *Emulator) AddApp(a App) App {
	e.mu.Lock()
	defer e.mu.Unlock()
	a = cloneApp(a)
	if a.Type == "" {
		a.Type = appTypeConnected
	}
	if a.ConsumerKey == "" {
		a.ConsumerKey = newConsumerKey()
	}
	old, replacing := e.apps[a.ConsumerKey]
	if replacing {
		if a.ID == "" {
			a.ID = old.def.ID
		}
		if a.ConsumerID == "" {
			a.ConsumerID = old.def.ConsumerID
		}
		if a.ConsumerSecret == "" {
			a.ConsumerSecret = old.def.ConsumerSecret
		}
	}
	if a.ID == "" {
		prefix := "0H4"
		if a.Type == appTypeECA {
			prefix = "0xI"
		}
		a.ID = newID(prefix)
	}
	a.ID = to18(a.ID)
	if a.ConsumerID == "" {
		a.ConsumerID = newID("888")
	}
	a.ConsumerID = to18(a.ConsumerID)
	if a.ConsumerSecret == "" {
		a.ConsumerSecret = newConsumerSecret()
	}
	if a.Name == "" {
		a.Name = "App_" + randomString(base62, 6)
	}
	a.OrgID = e.defaultOrgLocked(a.OrgID)
	if a.Label == "" {
		a.Label = a.Name
	}
	if a.ContactEmail == "" {
		a.ContactEmail = "admin@example.com"
	}
	if a.CallbackURL == "" {
		a.CallbackURL = "https://login.salesforce.com/services/oauth2/callback"
	}
	if a.SessionTimeout <= 0 {
		a.SessionTimeout = 2 * time.Hour
	}
	if a.Extra == nil {
		a.Extra = map[string]string{}
	}
	if !replacing {
		e.appOrder = append(e.appOrder, a.ConsumerKey)
	}
	e.apps[a.ConsumerKey] = &appState{def: cloneApp(a)}
	e.logf("emulator: app %s %q type=%s org=%s", a.ConsumerKey, a.Name, a.Type, a.OrgID)
	return a
}

// newConsumerKey is shaped like Salesforce's: 85 alphanumeric characters starting "3MVG9".
func newConsumerKey() string { return "3MVG9" + randomString(base62, 80) }

// newConsumerSecret is shaped like Salesforce's: 64 upper-case hex characters.
func newConsumerSecret() string { return randomString("0123456789ABCDEF", 64) }

func (e *Emulator) defaultOrgLocked(id string) string {
	if id == "" && len(e.orgOrder) > 0 {
		return e.orgOrder[0]
	}
	return to18(id)
}

// SetAppCertificate replaces the app's certificate like an admin uploading
// one in Setup: the change goes through PropagationDelay/Overlap. An empty
// certPEM removes the certificate.
func (e *Emulator) SetAppCertificate(consumerKey, certPEM string) error {
	if strings.TrimSpace(certPEM) != "" {
		if _, err := certDER(certPEM); err != nil {
			return fmt.Errorf("invalid certificate: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a, _, ok := e.appByKeyLocked(consumerKey, e.now())
	if !ok {
		return errors.New("unknown consumer key")
	}
	e.setCertLocked(a, certPEM, e.now())
	e.logf("emulator: app %s certificate changed", consumerKey)
	return nil
}

// AppByConsumerKey returns the stored definition; CertificatePEM is the
// latest saved certificate, whether or not it has propagated yet. key may be
// the active consumer key or a rotated one that is still valid.
func (e *Emulator) AppByConsumerKey(key string) (App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, _, ok := e.appByKeyLocked(key, e.now())
	if !ok {
		return App{}, false
	}
	return cloneApp(a.def), true
}

// AppByName returns the first app with that API name (case-insensitive).
func (e *Emulator) AppByName(name string) (App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range e.appOrder {
		if a := e.apps[k]; strings.EqualFold(a.def.Name, name) {
			return cloneApp(a.def), true
		}
	}
	return App{}, false
}

// AcceptedCertificates lists the certificates that validate a JWT right now.
func (e *Emulator) AcceptedCertificates(consumerKey string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, _, ok := e.appByKeyLocked(consumerKey, e.now())
	if !ok {
		return nil
	}
	return e.acceptedLocked(a, e.now())
}

// AcceptedConsumerKeys lists the consumer keys that authenticate the app
// right now: the active key, then a rotated one that is neither deleted nor
// expired. nil for an unknown key.
func (e *Emulator) AcceptedConsumerKeys(consumerKey string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	a, _, ok := e.appByKeyLocked(consumerKey, now)
	if !ok {
		return nil
	}
	keys := []string{a.def.ConsumerKey}
	if sc := a.staged; sc != nil && sc.stateAt(now) == stagedStateRotated {
		keys = append(keys, sc.pair.key)
	}
	return keys
}

// SetClientCredentials enables or disables the client credentials flow on an
// app and sets its run-as user, as an admin does in Setup. A non-empty
// runAsUsername must name a user of the app's org; whether that user is
// active and API Only is checked at token time.
func (e *Emulator) SetClientCredentials(consumerKey string, enabled bool, runAsUsername string) (App, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, _, ok := e.appByKeyLocked(consumerKey, e.now())
	if !ok {
		return App{}, errors.New("unknown consumer key")
	}
	if runAsUsername != "" {
		u, found := e.userLocked(runAsUsername)
		if !found || !sameID(u.OrgID, a.def.OrgID) {
			return App{}, errors.New("no user " + runAsUsername + " in the app's org")
		}
		runAsUsername = u.Username
	}
	a.def.ClientCredentialsEnabled, a.def.RunAsUsername = enabled, runAsUsername
	e.logf("emulator: app %s client credentials enabled=%v run-as=%q", a.def.ConsumerKey, enabled, runAsUsername)
	return cloneApp(a.def), nil
}

// SetAllowECAConsumerSecretREST switches the org's "Allow access to External
// Client App consumer secrets via REST API" setting.
func (e *Emulator) SetAllowECAConsumerSecretREST(orgID string, allow bool) (Org, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.orgLocked(orgID)
	if !ok {
		return Org{}, errors.New("unknown org")
	}
	o.AllowECAConsumerSecretREST = allow
	e.logf("emulator: org %s allow ECA consumer secrets via REST=%v", o.ID, allow)
	return *o, nil
}

// SetUserPermissions replaces the user's permissions (see PermExternalClientAppDeveloper).
func (e *Emulator) SetUserPermissions(username string, perms ...string) (User, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.userLocked(username)
	if !ok {
		return User{}, errors.New("no user " + username)
	}
	u.Permissions = slices.Clone(perms)
	e.logf("emulator: user %s permissions %v", u.Username, perms)
	return *u, nil
}

// appByKeyLocked finds the app a consumer key belongs to: its active key, or
// the previous key of a rotation that is neither deleted nor expired. pair
// is that key with the secret that goes with it.
func (e *Emulator) appByKeyLocked(key string, now time.Time) (*appState, credPair, bool) {
	if key == "" {
		return nil, credPair{}, false
	}
	if st, ok := e.apps[key]; ok {
		return st, credPair{st.def.ConsumerKey, st.def.ConsumerSecret}, true
	}
	for _, k := range e.appOrder {
		st := e.apps[k]
		if sc := st.staged; sc != nil && sc.pair.key == key && sc.stateAt(now) == stagedStateRotated {
			return st, sc.pair, true
		}
	}
	return nil, credPair{}, false
}

// appByIDLocked finds an app by its record ID, which survives credential rotations.
func (e *Emulator) appByIDLocked(id string) (*appState, bool) {
	for _, k := range e.appOrder {
		if st := e.apps[k]; sameID(st.def.ID, id) {
			return st, true
		}
	}
	return nil, false
}

func (e *Emulator) userLocked(username string) (*User, bool) {
	u, ok := e.users[strings.ToLower(username)]
	return u, ok
}

func (e *Emulator) userByIDLocked(id string) (*User, bool) {
	for _, u := range e.users {
		if sameID(u.ID, id) {
			return u, true
		}
	}
	return nil, false
}

func (e *Emulator) orgLocked(id string) (*Org, bool) {
	for _, oid := range e.orgOrder {
		if sameID(oid, id) {
			return e.orgs[oid], true
		}
	}
	return nil, false
}

func cloneApp(a App) App {
	a.PreAuthorizedUsers = slices.Clone(a.PreAuthorizedUsers)
	a.SelfAuthorizedUsers = slices.Clone(a.SelfAuthorizedUsers)
	a.Scopes = slices.Clone(a.Scopes)
	a.Extra = maps.Clone(a.Extra)
	return a
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
