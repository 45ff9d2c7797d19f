package backend

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-secure-stdlib/strutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// Defaults of the public API contract (docs/api.md).
const (
	defaultLoginURL               = "https://login.salesforce.com"
	defaultKeyType                = keyutil.RSA2048
	defaultCertificateTTL         = 8760 * time.Hour
	defaultCertificateRenewBefore = 720 * time.Hour
	defaultKeepArchivedKeys       = 2
	defaultPropagationTimeout     = 15 * time.Minute
	defaultAPIVersion             = "62.0"

	deployManual      = "manual"
	deployMetadataAPI = "metadata_api"

	appTypeConnectedApp      = "connected_app"
	appTypeExternalClientApp = "external_client_app"
	maxNameLength            = 128
	maxCACertBytes           = 256 << 10
	maxCertificateTTL        = 20 * 8760 * time.Hour
	minCertificateTTL        = 24 * time.Hour
	minKeyRotationPeriod     = time.Hour
	maxKeepArchivedKeys      = 100
	maxConsumerKeyLength     = 256
	minPropagationTimeout    = time.Minute
	maxPropagationTimeout    = 24 * time.Hour
)

// connectionEntry is one org reached through one app. It holds no key material: the key ring
// is stored apart (keyring.go) so that rotation never rewrites the operator's settings.
type connectionEntry struct {
	ConsumerKey            string        `json:"consumer_key"`
	ConsumerKeySetAt       time.Time     `json:"consumer_key_set_at"`
	LoginURL               string        `json:"login_url"`
	Audience               string        `json:"audience,omitempty"` // empty: derived from LoginURL
	AllowNonSalesforceHost bool          `json:"allow_non_salesforce_host"`
	CACert                 string        `json:"ca_cert,omitempty"`
	KeyType                string        `json:"key_type"`
	CertificateTTL         time.Duration `json:"certificate_ttl"`
	CertificateSubject     string        `json:"certificate_subject,omitempty"` // empty: default
	KeyRotationPeriod      time.Duration `json:"key_rotation_period"`
	CertificateRenewBefore time.Duration `json:"certificate_renew_before"`
	KeepArchivedKeys       int           `json:"keep_archived_keys"`
	Deploy                 string        `json:"deploy"`
	AppType                string        `json:"app_type"`
	AppName                string        `json:"app_name,omitempty"`
	ECAOAuthSettingsName   string        `json:"eca_oauth_settings_name,omitempty"`
	DeployUsername         string        `json:"deploy_username,omitempty"`
	VerifyUsername         string        `json:"verify_username,omitempty"`
	PropagationTimeout     time.Duration `json:"propagation_timeout"`
	APIVersion             string        `json:"api_version"`
	ConsumerKeyMaxAge      time.Duration `json:"consumer_key_max_age"`
	AllowCommunityLogin    bool          `json:"allow_community_login,omitempty"`
	AuthFlow               string        `json:"auth_flow,omitempty"` // empty: jwt_bearer
	// Vault's automated rotation settings beside KeyRotationPeriod (rotation_period).
	RotationSchedule         string        `json:"rotation_schedule,omitempty"`
	RotationWindow           time.Duration `json:"rotation_window,omitempty"`
	DisableAutomatedRotation bool          `json:"disable_automated_rotation,omitempty"`
	// PastOrigins are the origins a client-credentials connection's tokens may have been
	// issued at before its login_url last changed: their leases are revoked there. (A JWT
	// connection keeps them in its key ring.)
	PastOrigins []*origin `json:"past_origins,omitempty"` // newest first
	// Consumer key/secret rotation through the staged-credentials API (consumer_rotation_settings.go).
	CredentialsRotationConnection string        `json:"credentials_rotation_connection,omitempty"`
	ECAAppID                      string        `json:"eca_app_id,omitempty"`
	ECAConsumerID                 string        `json:"eca_consumer_id,omitempty"`
	CredentialsRotationPeriod     time.Duration `json:"credentials_rotation_period,omitempty"`
	CredentialsRotationSchedule   string        `json:"credentials_rotation_schedule,omitempty"`
	CredentialsRotationWindow     time.Duration `json:"credentials_rotation_window,omitempty"`
	CredentialsOverlap            time.Duration `json:"credentials_overlap,omitempty"` // 0: the default
	// Scoping: which roles may use the connection and for whom. Nil lists (entries written
	// before scoping existed) allow every name, as the contract's default ["*"] does.
	AllowedRoles         []string  `json:"allowed_roles,omitempty"`
	AllowedUsernames     []string  `json:"allowed_usernames,omitempty"`
	AllowPrivilegedRoles bool      `json:"allow_privileged_roles,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
}

func defaultConnection(now time.Time) *connectionEntry {
	return &connectionEntry{
		LoginURL:               defaultLoginURL,
		KeyType:                defaultKeyType,
		CertificateTTL:         defaultCertificateTTL,
		CertificateRenewBefore: defaultCertificateRenewBefore,
		KeepArchivedKeys:       defaultKeepArchivedKeys,
		Deploy:                 deployManual,
		AppType:                appTypeExternalClientApp,
		PropagationTimeout:     defaultPropagationTimeout,
		APIVersion:             defaultAPIVersion,
		CreatedAt:              now,
	}
}

// audience is the JWT aud: the operator's choice, or the one Salesforce expects for the host.
func (c *connectionEntry) audience() string {
	if c.Audience != "" {
		return c.Audience
	}
	return salesforce.DefaultAudience(c.LoginURL)
}

// maxCommonName is X.509's upper bound on a CN (RFC 5280 ub-common-name).
const maxCommonName = 64

func (c *connectionEntry) subject(name string) string {
	if c.CertificateSubject != "" {
		return c.CertificateSubject
	}
	cn := "vault-plugin-salesforce " + name
	if len(cn) > maxCommonName { // long connection names: the default must stay valid
		cn = cn[:maxCommonName]
	}
	return "CN=" + cn
}

// rotationEnabled reports whether the schedule rotates the key by itself.
func (c *connectionEntry) rotationEnabled() bool {
	return !c.DisableAutomatedRotation && (c.KeyRotationPeriod > 0 || c.RotationSchedule != "")
}

func getConnection(ctx context.Context, s logical.Storage, name string) (*connectionEntry, error) {
	c, err := getEntry[connectionEntry](ctx, s, connectionsPrefix+name)
	if c != nil && c.AppType == "" {
		// An entry written without app_type meant the default of its day, the Connected App
		// (the default became external_client_app later); it keeps that meaning.
		c.AppType = appTypeConnectedApp
	}
	return c, err
}

// putConnection writes a connection and drops its snapshot (after the write, failed or not:
// what storage holds is then unknown).
func (b *backend) putConnection(ctx context.Context, s logical.Storage, name string, c *connectionEntry) error {
	defer b.snaps.drop(name)
	defer b.orgUsage.forget(name) // its figures and logins may be another org's now
	return putJSON(ctx, s, connectionsPrefix+name, c)
}

// allowsRole reports whether a role of this name may mint for username on the connection, and
// if not, which field forbids it (for the 400).
func (c *connectionEntry) allowsRole(role, username string) *fieldError {
	if c.AllowedRoles != nil && !strutil.StrListContainsGlob(c.AllowedRoles, strings.ToLower(role)) {
		return fieldErr("connection", "does not allow this role: add the role's name (or a glob) to the connection's allowed_roles")
	}
	// username is "" for a client-credentials role: its run-as user is checked once a mint
	// has named it.
	if username != "" && c.AllowedUsernames != nil && !strutil.StrListContainsGlob(c.AllowedUsernames, strings.ToLower(username)) {
		return fieldErr("username", "is not in the connection's allowed_usernames: use an allowed user or ask the connection's admin to allow it")
	}
	if !c.AllowPrivilegedRoles && username != "" && (strings.EqualFold(username, c.DeployUsername) || strings.EqualFold(username, c.VerifyUsername)) {
		return fieldErr("username", "is the connection's deploy_username or verify_username, which roles may not mint for unless the connection sets allow_privileged_roles=true")
	}
	return nil
}

var (
	consumerKeyRe = regexp.MustCompile(`^[A-Za-z0-9._]+$`)
	apiVersionRe  = regexp.MustCompile(`^[1-9][0-9]\.0$`)
	appNameRe     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	// Salesforce usernames have the form of an email address (the domain need not exist).
	usernameRe = regexp.MustCompile(`^[^\s@]{1,64}@[^\s@]{1,255}$`)
)

// validate checks the settings as a whole, once every field has been applied, and names the
// field to fix.
func (c *connectionEntry) validate() *fieldError {
	if c.ConsumerKey == "" {
		return fieldErr("consumer_key", "is required: copy the Consumer Key from the Connected App (or External Client App) in Salesforce Setup")
	}
	if len(c.ConsumerKey) > maxConsumerKeyLength || !consumerKeyRe.MatchString(c.ConsumerKey) {
		return fieldErr("consumer_key", "must be the app's consumer key: up to %d letters, digits, dots or underscores", maxConsumerKeyLength)
	}
	if c.clientCredentials() {
		if u, err := url.Parse(c.LoginURL); err == nil && salesforce.IsGenericLoginHost(u.Hostname()) {
			return fieldErr("login_url", "must be the org's My Domain with auth_flow=client_credentials (https://<name>.my.salesforce.com, or its sandbox or site variant): Salesforce answers the flow at login and test.salesforce.com with \"request not supported on this domain\"")
		}
		return nil
	}
	if c.Deploy == deployMetadataAPI {
		if c.AppName == "" {
			return fieldErr("app_name", "is required with deploy=metadata_api: give the API name of the Connected App or External Client App (e.g. Vault_JWT)")
		}
		if c.DeployUsername == "" {
			return fieldErr("deploy_username", "is required with deploy=metadata_api: a Salesforce user with API Enabled, Modify Metadata, Customize Application and Manage Connected Apps (or Modify All Data), pre-authorised on the app; for an External Client App also the permission to view consumer secrets in metadata")
		}
	}
	if c.rotationEnabled() && c.CertificateRenewBefore >= c.CertificateTTL {
		return fieldErr("certificate_renew_before", "(%s) must be shorter than certificate_ttl (%s), or every new certificate would be due for renewal at once", c.CertificateRenewBefore, c.CertificateTTL)
	}
	return nil
}

// fieldError is a bad-input error that names its field; handlers turn it into an HTTP 400.
type fieldError struct {
	field string
	msg   string
}

func fieldErr(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

func (e *fieldError) Error() string { return fmt.Sprintf("%s %s", e.field, e.msg) }

func (e *fieldError) response() *logical.Response { return logical.ErrorResponse(e.Error()) }

func validUsername(field, v string) *fieldError {
	if !usernameRe.MatchString(v) || hasControlOrFormat(v) {
		return fieldErr(field, "must be a Salesforce username, which has the form of an email address (e.g. integration@acme.com)")
	}
	return nil
}

// hasControlOrFormat reports control characters (C0, DEL, C1 such as NEL) and invisible format
// characters (such as a right-to-left override), which have no place in names that reach
// logs, certificates and Salesforce.
func hasControlOrFormat(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return true
		}
	}
	return false
}

// component is the metadata component that holds the connection's certificate.
func (c *connectionEntry) component() (typ, fullName string) {
	if c.AppType == appTypeExternalClientApp {
		name := c.ECAOAuthSettingsName
		if name == "" {
			name = c.AppName + "_glbloauth"
		}
		return salesforce.TypeECAGlobalSettings, name
	}
	return salesforce.TypeConnectedApp, c.AppName
}

// rolesUsing lists the roles that name connection conn.
func (b *backend) rolesUsing(ctx context.Context, s logical.Storage, conn string) ([]string, error) {
	names, err := s.List(ctx, rolesPrefix)
	if err != nil {
		return nil, err
	}
	var users []string
	for _, n := range names {
		r, err := b.cachedRole(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if r != nil && r.Connection == conn {
			users = append(users, n)
		}
	}
	sort.Strings(users)
	return users, nil
}
