package backend

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // OAEP with SHA-1 is a padding Salesforce accepts for BYOK (protocol §10)
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/keyutil"
	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/backend/salesforce"
)

// Shield Platform Encryption BYOK tenant secrets (protocol §10). A tenant secret is 32 random
// bytes born here, kept only under the seal-wrapped secrets/ prefix, wrapped with RSA-OAEP for
// the org's BYOK certificate and uploaded as a TenantSecret with the connection's own token.
// Nothing in the config entry is secret: the hash is SHA-256 of 256 random bits.

// tenantSecretsPrefix holds one entry per connection and type: the settings, the version table
// and the rotation in flight.
const tenantSecretsPrefix = "tenant-secrets/"

const (
	tenantSecretBytes = 32
	maxKeepArchived   = 50 // Salesforce: at most 50 active + archived per type; one is active
	defaultKeep       = 10

	tsActive    = "active"
	tsArchived  = "archived"
	tsDestroyed = "destroyed"

	// Rotation states, written before the call that leaves them.
	tsGenerated = "generated" // the secret is sealed here; the upload may or may not have happened
	tsUploaded  = "uploaded"  // Salesforce holds it (SalesforceID known); the export is not yet kept
)

// tenantSecretType is one :type of the path: Salesforce's Type and its minimum rotation
// intervals (production, sandbox).
type tenantSecretType struct {
	salesforce string
	minimum    [2]time.Duration
	oaep       bool // false: Salesforce takes it CKM_RSA_AES_KEY_WRAP wrapped (rsaAESKeyWrap)
}

// Database is absent from Salesforce's table of minimum intervals: Data's is assumed.
var tenantSecretTypes = map[string]tenantSecretType{
	"data":               {"Data", [2]time.Duration{24 * time.Hour, 4 * time.Hour}, true},
	"deterministic_data": {"DeterministicData", [2]time.Duration{7 * 24 * time.Hour, 4 * time.Hour}, true},
	"analytics":          {"Analytics", [2]time.Duration{24 * time.Hour, 4 * time.Hour}, true},
	"event_bus":          {"EventBus", [2]time.Duration{7 * 24 * time.Hour, 7 * 24 * time.Hour}, true},
	"search_index":       {"SearchIndex", [2]time.Duration{7 * 24 * time.Hour, 7 * 24 * time.Hour}, false},
	"database":           {"Database", [2]time.Duration{24 * time.Hour, 4 * time.Hour}, false},
}

// tsVersion is one row of the version table.
type tsVersion struct {
	Version      int       `json:"version"`
	Status       string    `json:"status"`
	SalesforceID string    `json:"salesforce_id"`
	Hash         string    `json:"hash_sha256"`
	CreatedAt    time.Time `json:"created_at"`
	ModifiedAt   time.Time `json:"modified_at"`
}

// tsRotation is the rotation in flight: written before each call to Salesforce.
type tsRotation struct {
	Version      int       `json:"version"`
	State        string    `json:"state"`
	Hash         string    `json:"hash_sha256"`
	SalesforceID string    `json:"salesforce_id,omitempty"`
	Trigger      string    `json:"trigger"`
	StartedAt    time.Time `json:"started_at"`
}

// tenantSecretConfig is a connection's settings and version table for one type.
type tenantSecretConfig struct {
	Connection      string        `json:"connection"`
	Type            string        `json:"type"`
	CertificateName string        `json:"certificate_name"`
	Certificate     string        `json:"certificate"` // PEM: read through the Tooling API or given
	KeyDerivation   bool          `json:"key_derivation"`
	OAEPHash        string        `json:"oaep_hash"`
	RotationPeriod  time.Duration `json:"rotation_period"`
	KeepArchived    int           `json:"keep_archived"`
	AutoDestroy     bool          `json:"auto_destroy"`
	Versions        []tsVersion   `json:"versions"`
	Pending         *tsRotation   `json:"pending,omitempty"`
	LastVersion     int           `json:"last_version"`
	LastRotatedAt   time.Time     `json:"last_rotated_at,omitempty"`
	LastError       string        `json:"last_error,omitempty"`
}

// tenantSecretValue is the only entry holding a tenant secret, and the export value Salesforce
// returned, which restore writes back.
type tenantSecretValue struct {
	Secret []byte `json:"secret"`
	Export string `json:"export,omitempty"`
}

func tenantSecretConfigPath(conn, typ string) string { return tenantSecretsPrefix + conn + "/" + typ }

func tenantSecretValuePath(conn, typ string, v int) string {
	return fmt.Sprintf("%s%s/tenant-secrets/%s/%d", secretsPrefix, conn, typ, v)
}

func getTenantSecretConfig(ctx context.Context, s logical.Storage, conn, typ string) (*tenantSecretConfig, error) {
	return getEntry[tenantSecretConfig](ctx, s, tenantSecretConfigPath(conn, typ))
}

func (c *tenantSecretConfig) version(v int) *tsVersion {
	for i := range c.Versions {
		if c.Versions[i].Version == v {
			return &c.Versions[i]
		}
	}
	return nil
}

func (c *tenantSecretConfig) active() *tsVersion {
	for i := range c.Versions {
		if c.Versions[i].Status == tsActive {
			return &c.Versions[i]
		}
	}
	return nil
}

func (c *tenantSecretConfig) activeVersion() int {
	if a := c.active(); a != nil {
		return a.Version
	}
	return 0
}

func (c *tenantSecretConfig) rotationKey() rotationKey {
	return rotationKey{kind: kindTenantSecret, connection: c.Connection, target: c.Type}
}

// minimumPeriod is Salesforce's minimum interval for the type in the connection's org kind.
func minimumPeriod(typ string, conn *connectionEntry) time.Duration {
	t := tenantSecretTypes[typ]
	if conn.audience() == "https://test.salesforce.com" {
		return t.minimum[1]
	}
	return t.minimum[0]
}

func oaepHash(name string) hash.Hash {
	if name == "sha512" {
		return sha512.New()
	}
	return sha1.New() //nolint:gosec // see the import
}

// newTenantSecret is 32 bytes from crypto/rand and its hash as Salesforce checks it.
func newTenantSecret() ([]byte, string, error) {
	secret := make([]byte, tenantSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(secret)
	return secret, base64.StdEncoding.EncodeToString(sum[:]), nil
}

// tsInFlight marks the (connection, type) pairs whose rotation is talking to Salesforce, so two
// requests never upload at once; no lock is held across the calls.
var tsInFlight sync.Map

// errRotationBusy is the answer to a rotation asked for while one runs.
var errRotationBusy = errors.New("a rotation of this tenant secret is already running: read the versions in a moment")

// rotateTenantSecret runs (or resumes) a rotation to its end. A refusal by Salesforce comes
// back as a *fieldError-like 400 text in userErr; err is for everything else.
func (b *backend) rotateTenantSecret(ctx context.Context, s logical.Storage, name, typ, trigger string) (cfg *tenantSecretConfig, userErr string, err error) {
	flight := fmt.Sprintf("%p/%s/%s", b, name, typ) // per backend: tests run several
	if _, busy := tsInFlight.LoadOrStore(flight, true); busy {
		return nil, errRotationBusy.Error(), nil
	}
	defer tsInFlight.Delete(flight)

	cfg, fresh, err := b.startTenantSecretRotation(ctx, s, name, typ, trigger)
	if err != nil || cfg == nil {
		return nil, "", err
	}
	k := cfg.rotationKey()
	b.metrics.rotation(k, cfg.Pending.State)
	dataPath := "connections/" + name + "/tenant-secrets/" + typ
	previous := cfg.activeVersion()
	b.events.rotationStarted(k, dataPath, trigger, cfg.Pending.Version, previous)
	cfg, userErr, err = b.finishTenantSecretRotation(ctx, s, cfg, fresh)
	if err != nil || userErr != "" {
		b.metrics.rotationFailed(k)
		b.metrics.rotation(k, "failed")
		pending := 0
		if cfg != nil && cfg.Pending != nil {
			pending = cfg.Pending.Version
		}
		b.events.rotationFailed(k, dataPath, pending, previous)
		return cfg, userErr, err
	}
	b.metrics.rotation(k, "idle")
	b.events.rotationCompleted(k, dataPath, cfg.activeVersion(), previous)
	return cfg, "", nil
}

// startTenantSecretRotation seals a new secret and records the rotation, or returns the one
// already recorded (a resume; fresh is false). nil: there is no config.
func (b *backend) startTenantSecretRotation(ctx context.Context, s logical.Storage, name, typ, trigger string) (cfg *tenantSecretConfig, fresh bool, err error) {
	defer b.lockConn(tenantSecretsPrefix + name + "/" + typ)()
	cfg, err = getTenantSecretConfig(ctx, s, name, typ)
	if err != nil || cfg == nil || cfg.Pending != nil {
		return cfg, false, err
	}
	secret, hash, err := newTenantSecret()
	if err != nil {
		return nil, false, err
	}
	v := cfg.LastVersion + 1
	// The secret first: a crash before the config write leaves an unreferenced entry that the
	// next start overwrites; after it, the rotation resumes with this very secret.
	if err := putJSON(ctx, s, tenantSecretValuePath(name, typ, v), &tenantSecretValue{Secret: secret}); err != nil {
		return nil, false, err
	}
	next := *cfg
	next.LastVersion = v
	next.Pending = &tsRotation{Version: v, State: tsGenerated, Hash: hash, Trigger: trigger, StartedAt: b.now().UTC()}
	if err := putJSON(ctx, s, tenantSecretConfigPath(name, typ), &next); err != nil {
		return nil, false, err
	}
	return &next, true, nil
}

// finishTenantSecretRotation drives a recorded rotation: upload (or find the upload of) the
// sealed secret, keep its export, record it active, then apply retention. A fresh rotation was
// recorded by this very call, so nothing of it can be at Salesforce yet.
func (b *backend) finishTenantSecretRotation(ctx context.Context, s logical.Storage, cfg *tenantSecretConfig, fresh bool) (*tenantSecretConfig, string, error) {
	p := cfg.Pending
	val, err := getEntry[tenantSecretValue](ctx, s, tenantSecretValuePath(cfg.Connection, cfg.Type, p.Version))
	if err != nil {
		return cfg, "", err
	}
	if val == nil {
		return cfg, "", fmt.Errorf("the sealed secret of pending version %d is missing", p.Version)
	}
	api, err := b.connectionAPI(ctx, s, cfg.Connection, "connection", defaultAPIVersion)
	var ue *salesforce.UpstreamError
	switch {
	case errors.As(err, &ue):
		return cfg, "", err // an outage: the rotation stays recorded and resumes
	case err != nil:
		return cfg, describeTenantSecretError(err), nil
	}
	defer api.close()
	if p.State == tsGenerated {
		// A resumed rotation may have crashed after the POST: look for its upload before making one.
		id := ""
		if !fresh {
			if id, err = api.client.TenantSecretByHash(ctx, api.sess, p.Hash); err != nil {
				var ae *salesforce.APIError
				if errors.As(err, &ae) {
					return cfg, "looking for the upload of the interrupted rotation: " + describeTenantSecretError(err), nil
				}
				return cfg, "", fmt.Errorf("looking for the upload of the interrupted rotation: %w", err)
			}
		}
		if id == "" {
			id, err = b.uploadTenantSecret(ctx, api, cfg, val.Secret, p.Hash)
			var ae *salesforce.APIError
			if errors.As(err, &ae) {
				// Refused: Salesforce does not hold it. Forget the rotation; the next one makes a new secret.
				msg := describeTenantSecretError(err)
				return cfg, msg, b.abandonTenantSecretRotation(ctx, s, cfg, msg)
			}
			if err != nil {
				return cfg, "", err
			}
		}
		if cfg, err = b.updateTenantSecretConfig(ctx, s, cfg, func(c *tenantSecretConfig) {
			c.Pending.State, c.Pending.SalesforceID = tsUploaded, id
		}); err != nil {
			return cfg, "", err
		}
	}
	rec, err := api.client.ReadTenantSecret(ctx, api.sess, cfg.Pending.SalesforceID)
	if err != nil {
		return cfg, "", fmt.Errorf("reading back the uploaded secret: %w", err)
	}
	val.Export = rec.SecretValue
	if err := putJSON(ctx, s, tenantSecretValuePath(cfg.Connection, cfg.Type, cfg.Pending.Version), val); err != nil {
		return cfg, "", err
	}
	now := b.now().UTC()
	if cfg, err = b.updateTenantSecretConfig(ctx, s, cfg, func(c *tenantSecretConfig) {
		for i := range c.Versions {
			if c.Versions[i].Status == tsActive {
				c.Versions[i].Status, c.Versions[i].ModifiedAt = tsArchived, now
			}
		}
		c.Versions = append(c.Versions, tsVersion{Version: c.Pending.Version, Status: tsActive, SalesforceID: c.Pending.SalesforceID,
			Hash: c.Pending.Hash, CreatedAt: now, ModifiedAt: now})
		c.Pending, c.LastRotatedAt, c.LastError = nil, now, ""
	}); err != nil {
		return cfg, "", err
	}
	b.Logger().Info("rotated a tenant secret", "connection", cfg.Connection, "type", cfg.Type, "version", cfg.activeVersion())
	cfg, err = b.applyTenantSecretRetention(ctx, s, api, cfg)
	return cfg, "", err
}

func (b *backend) uploadTenantSecret(ctx context.Context, api *credentialsAPI, cfg *tenantSecretConfig, secret []byte, hash string) (string, error) {
	cert, err := keyutil.ParseCertificatePEM(cfg.Certificate)
	if err != nil {
		return "", err
	}
	wrapped, err := wrapTenantSecret(cfg, cert.PublicKey.(*rsa.PublicKey), secret)
	if err != nil {
		return "", fmt.Errorf("wrapping the secret: %w", err)
	}
	mode := "PBKDF2"
	if !cfg.KeyDerivation {
		mode = "NONE"
	}
	return api.client.UploadTenantSecret(ctx, api.sess, salesforce.TenantSecretUpload{
		Type: tenantSecretTypes[cfg.Type].salesforce, SecretValue: base64.StdEncoding.EncodeToString(wrapped), SecretValueHash: hash,
		SecretValueCertificate: cfg.CertificateName, KeyDerivationMode: mode, Source: "UPLOADED",
		Description: fmt.Sprintf("Vault tenant secret v%d", cfg.Pending.Version)})
}

// wrapTenantSecret wraps secret for the BYOK certificate as Salesforce takes the type
// (protocol §10): RSA-OAEP directly, or for SearchIndex and Database CKM_RSA_AES_KEY_WRAP.
func wrapTenantSecret(cfg *tenantSecretConfig, pub *rsa.PublicKey, secret []byte) ([]byte, error) {
	if tenantSecretTypes[cfg.Type].oaep {
		return rsa.EncryptOAEP(oaepHash(cfg.OAEPHash), rand.Reader, pub, secret, nil)
	}
	return rsaAESKeyWrap(oaepHash(cfg.OAEPHash), pub, secret)
}

// rsaAESKeyWrap is PKCS#11's CKM_RSA_AES_KEY_WRAP (v2.40 §2.1.21): an ephemeral AES-256 key
// from crypto/rand, RSA-OAEP-wrapped under pub, then secret wrapped with it by AES Key Wrap
// with Padding (RFC 5649); the two concatenated, the RSA part (the modulus long) first. The
// ephemeral key is cleared once used and never stored: the sealed secret is what resumes.
func rsaAESKeyWrap(h hash.Hash, pub *rsa.PublicKey, secret []byte) ([]byte, error) {
	aesKey := make([]byte, 32)
	defer clear(aesKey)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	head, err := rsa.EncryptOAEP(h, rand.Reader, pub, aesKey, nil)
	if err != nil {
		return nil, err
	}
	tail, err := keyutil.WrapKeyWithPadding(aesKey, secret)
	if err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}

// abandonTenantSecretRotation drops a rotation Salesforce refused, and its sealed secret.
func (b *backend) abandonTenantSecretRotation(ctx context.Context, s logical.Storage, cfg *tenantSecretConfig, reason string) error {
	v := cfg.Pending.Version
	if _, err := b.updateTenantSecretConfig(ctx, s, cfg, func(c *tenantSecretConfig) { c.Pending, c.LastError = nil, reason }); err != nil {
		return err
	}
	return s.Delete(ctx, tenantSecretValuePath(cfg.Connection, cfg.Type, v))
}

// updateTenantSecretConfig re-reads the config under its lock, applies edit and writes it.
func (b *backend) updateTenantSecretConfig(ctx context.Context, s logical.Storage, cfg *tenantSecretConfig, edit func(*tenantSecretConfig)) (*tenantSecretConfig, error) {
	defer b.lockConn(tenantSecretsPrefix + cfg.Connection + "/" + cfg.Type)()
	cur, err := getTenantSecretConfig(ctx, s, cfg.Connection, cfg.Type)
	if err != nil {
		return cfg, err
	}
	if cur == nil {
		return cfg, errors.New("the tenant secret config was deleted during the rotation")
	}
	edit(cur)
	return cur, putJSON(ctx, s, tenantSecretConfigPath(cfg.Connection, cfg.Type), cur)
}

// applyTenantSecretRetention destroys, oldest first, the archived versions beyond keep_archived
// (only with auto_destroy): at Salesforce first, then here, secret and row.
func (b *backend) applyTenantSecretRetention(ctx context.Context, s logical.Storage, api *credentialsAPI, cfg *tenantSecretConfig) (*tenantSecretConfig, error) {
	if !cfg.AutoDestroy {
		return cfg, nil
	}
	var archived []tsVersion
	for _, v := range cfg.Versions {
		if v.Status == tsArchived {
			archived = append(archived, v)
		}
	}
	for len(archived) > cfg.KeepArchived {
		old := archived[0]
		archived = archived[1:]
		if err := api.client.UpdateTenantSecret(ctx, api.sess, old.SalesforceID, map[string]string{"Status": "Destroyed"}); err != nil {
			return cfg, fmt.Errorf("destroying archived version %d at Salesforce: %w", old.Version, err)
		}
		var err error
		if cfg, err = b.updateTenantSecretConfig(ctx, s, cfg, func(c *tenantSecretConfig) {
			kept := c.Versions[:0]
			for _, v := range c.Versions {
				if v.Version != old.Version {
					kept = append(kept, v)
				}
			}
			c.Versions = kept
		}); err != nil {
			return cfg, err
		}
		if err := s.Delete(ctx, tenantSecretValuePath(cfg.Connection, cfg.Type, old.Version)); err != nil {
			return cfg, err
		}
		b.Logger().Warn("destroyed an archived tenant secret (retention): data encrypted under it is unreadable", "connection", cfg.Connection, "type", cfg.Type, "version", old.Version)
	}
	return cfg, nil
}

// tenantSecretFailure is the answer to a rotation that failed other than by a refusal: 502 for
// Salesforce unreachable or failing (the rotation stays recorded), else as errorResponse.
func tenantSecretFailure(err error) (*logical.Response, error) {
	var ue *salesforce.UpstreamError
	if errors.As(err, &ue) {
		return nil, logical.CodedError(http.StatusBadGateway, "Salesforce did not complete the call; the rotation is recorded and resumes on the next rotate or periodic tick: "+ue.Error())
	}
	return errorResponse(err)
}

// describeTenantSecretError is the 400 text of a Salesforce refusal: its code and message (no
// secret travels in either) and what to do.
// byokCertificatePEM reads the BYOK certificate the org names name, with connection conn's
// login (Tooling API); resp is the 400 that says what went wrong. Tenant secrets and cache-only
// keys are both wrapped under such a certificate.
func (b *backend) byokCertificatePEM(ctx context.Context, s logical.Storage, conn, name string) (pemText string, resp *logical.Response) {
	api, err := b.connectionAPI(ctx, s, conn, "connection", defaultAPIVersion)
	if err != nil {
		return "", logical.ErrorResponse("reading the BYOK certificate needs a login: %s (or give certificate as PEM)", describeTenantSecretError(err))
	}
	defer api.close()
	if pemText, err = api.client.BYOKCertificatePEM(ctx, api.sess, name); err != nil {
		return "", logical.ErrorResponse("reading the BYOK certificate: %s", describeTenantSecretError(err))
	}
	if pemText == "" {
		return "", fieldErr("certificate_name", "names no certificate of the org: give the certificate's unique name (API name) from Setup > Certificate and Key Management").response()
	}
	return pemText, nil
}

func describeTenantSecretError(err error) string {
	msg := err.Error()
	if h := salesforce.TenantSecretHint(err); h != "" {
		msg += ": " + h
	}
	return msg
}

// tenantSecretsRefusal is the 400 of a connection delete while the connection manages tenant
// secret types, or nil. Their version tables hold the exports a restore needs and the
// schedule that rotates them: deleting the connection would strand both, and a connection
// made anew under the name would inherit them. The caller holds the connection's lock, which a
// type's write also takes.
func tenantSecretsRefusal(ctx context.Context, s logical.Storage, name string) (*logical.Response, error) {
	types, err := s.List(ctx, tenantSecretsPrefix+name+"/")
	if err != nil || len(types) == 0 {
		return nil, err
	}
	sort.Strings(types)
	return logical.ErrorResponse("connection %q manages tenant secret type(s) %s: delete each (vault delete <mount>/connections/%s/tenant-secrets/<type>; refused while Salesforce holds versions whose export only Vault keeps) before deleting the connection",
		name, strings.Join(types, ", "), name), nil
}
