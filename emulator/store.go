package emulator

import (
	"crypto/rand"
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
}

// App is a Connected App or External Client App. JSON is in json.go.
type App struct {
	Name                string            // API name, e.g. "Vault_JWT"
	Type                string            // "connected_app" (default) | "external_client_app"
	OrgID               string            // empty: the first org added
	ConsumerKey         string            // the JWT iss; generated if empty
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
}

// DemoSeed is what SeedDemo created.
type DemoSeed struct {
	Org      Org  `json:"org"`
	User     User `json:"user"`
	Deployer User `json:"deployer"`
	App      App  `json:"app"`
}

const (
	appTypeConnected = "connected_app"
	appTypeECA       = "external_client_app"
)

type appState struct {
	def       App
	prevPEM   string    // certificate fully in effect before the last change
	changedAt time.Time // time of the last certificate change; zero: none
	secret    []byte    // consumer secret, used only for the optional token signature
}

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
	e.users[strings.ToLower(u.Username)] = &cp
	e.logf("emulator: user %s %s org=%s", u.ID, u.Username, u.OrgID)
	return u
}

// AddApp creates or replaces an app (keyed by consumer key) and returns it.
// Its certificate takes effect at once: AddApp is test setup, while
// SetAppCertificate and deploys model an admin change and propagate.
func (e *Emulator) AddApp(a App) App {
	e.mu.Lock()
	defer e.mu.Unlock()
	a = cloneApp(a)
	if a.Type == "" {
		a.Type = appTypeConnected
	}
	if a.ConsumerKey == "" {
		// Real keys are 85 alphanumeric characters starting "3MVG9".
		a.ConsumerKey = "3MVG9" + randomString(base62, 80)
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
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if _, ok := e.apps[a.ConsumerKey]; !ok {
		e.appOrder = append(e.appOrder, a.ConsumerKey)
	}
	e.apps[a.ConsumerKey] = &appState{def: cloneApp(a), secret: secret}
	e.logf("emulator: app %s %q type=%s org=%s", a.ConsumerKey, a.Name, a.Type, a.OrgID)
	return a
}

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
	a, ok := e.apps[consumerKey]
	if !ok {
		return errors.New("unknown consumer key")
	}
	e.setCertLocked(a, certPEM, e.now())
	e.logf("emulator: app %s certificate changed", consumerKey)
	return nil
}

// AppByConsumerKey returns the stored definition; CertificatePEM is the
// latest saved certificate, whether or not it has propagated yet.
func (e *Emulator) AppByConsumerKey(key string) (App, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.apps[key]
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
	a, ok := e.apps[consumerKey]
	if !ok {
		return nil
	}
	return e.acceptedLocked(a, e.now())
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
